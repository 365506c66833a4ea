"""How `seller-risk serve` starts BentoML: the command line and the environment that
`serving.api.service` reads, with the model pinned to the version resolved at launch so every worker
loads the same one even if the alias moves meanwhile."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from features.platform.settings import Settings
from serving.scoring import Scorer

SERVICE = "serving.api.service:SellerRisk"


def bentoml_command(host: str, port: int, scorer: Scorer, features_dir: Path, models_dir: Path,
                    workers: int, db: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) for `bentoml serve` of the scoring service; `db` (the decisions and audit
    database URL) wins over SELLER_RISK_DB."""
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    # the decisions and audit database, the data folder and the console's key as this shell sets them,
    # with the data folder made absolute: a worker runs in another folder (--working-dir)
    here = Settings.from_env()
    data = here.data.resolve()
    settings = Settings(model_uri=scorer.ref.uri, models=Path(models_dir).resolve(),
                        features=Path(features_dir).resolve(), policy=scorer.policy.version, workers=workers,
                        data=data, db=db or here.db or Settings(data=data).db_url, secret_key=here.secret_key)
    env = {**os.environ, **settings.to_env("model_uri", "models", "features", "policy", "workers", "data", "db",
                                           "secret_key"),
           # no usage analytics sent from a risk service (the caller's own setting wins)
           "BENTOML_DO_NOT_TRACK": os.environ.get("BENTOML_DO_NOT_TRACK", "True")}
    # import the service from this installation, not from whatever `serving/` the current folder holds
    root = str(Path(__file__).resolve().parents[2])
    return [bentoml, "serve", SERVICE, "--working-dir", root, "--host", host, "--port", str(port)], env
