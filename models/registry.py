"""Where models live: the MLflow tracking store and model registry, and how a model URI becomes a
`RiskModel`. The embedded default is a SQLite file and an artifact folder under `models/` (no server
to start); `MLFLOW_TRACKING_URI` points everything at a real tracking server instead. Shared by
training (which writes) and serving (which reads); nothing happens at import time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from features.settings import CHALLENGER, CHAMPION, MODELS_DIR, MODEL_NAME
from models.risk_model import RiskModel

__all__ = ["CHALLENGER", "CHAMPION", "EXPERIMENT", "MODEL_NAME", "ModelRef", "ensure_experiment", "load_risk_model",
           "resolve", "tracking_uri", "use_store"]
EXPERIMENT = MODEL_NAME
DEFAULT_MODELS_DIR = MODELS_DIR


_EMBEDDED: set[str] = set()
"""Embedded store URIs this process chose. MLflow copies whatever URI it is given into the
MLFLOW_TRACKING_URI variable (for child processes), so a value found there that we put there
ourselves is not a user's choice of server."""


def _embedded_uri(models_dir: Path | str) -> str:
    return f"sqlite:///{Path(models_dir).resolve() / 'mlflow.db'}"


def tracking_uri(models_dir: Path | str = DEFAULT_MODELS_DIR) -> str:
    """MLFLOW_TRACKING_URI when a user set it, else the embedded SQLite store under `models_dir`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env and env not in _EMBEDDED:
        return env
    return _embedded_uri(models_dir)


def use_store(models_dir: Path | str = DEFAULT_MODELS_DIR) -> str:
    """Point MLflow's tracking and registry at the store; returns its URI."""
    import mlflow

    uri = tracking_uri(models_dir)
    if uri == _embedded_uri(models_dir):
        Path(models_dir).mkdir(parents=True, exist_ok=True)
        _EMBEDDED.add(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_experiment(name: str, models_dir: Path | str = DEFAULT_MODELS_DIR) -> str:
    """The experiment's id, created on first use; on the embedded store its artifacts go under
    `models_dir/artifacts` (a server decides for itself)."""
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if tracking_uri(models_dir) in _EMBEDDED:
        location = (Path(models_dir).resolve() / "artifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


@dataclass(frozen=True)
class ModelRef:
    """A registered model version, pinned."""

    name: str
    version: str
    run_id: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def resolve(model_uri: str) -> ModelRef:
    """Pin `models:/name@alias` or `models:/name/version` to a version of the registry."""
    from mlflow import MlflowClient

    if not model_uri.startswith("models:/"):
        raise ValueError(f"expected a registry URI like models:/{MODEL_NAME}@{CHAMPION}, got {model_uri!r}")
    rest = model_uri.removeprefix("models:/")
    client = MlflowClient()
    if "@" in rest:
        name, alias = rest.split("@", 1)
        try:
            mv = client.get_model_version_by_alias(name, alias)
        except Exception as err:  # the registry says "not found" in several ways
            raise LookupError(f"no model version has the alias {alias!r} in {name!r}: "
                              f"train and promote one first ({err.__class__.__name__})") from None
    else:
        name, _, version = rest.partition("/")
        mv = client.get_model_version(name, version)
    return ModelRef(mv.name, str(mv.version), mv.run_id)


def load_risk_model(model_uri: str) -> tuple[RiskModel, ModelRef]:
    """Download a registered model version once and read it natively (no pickle)."""
    import mlflow

    ref = resolve(model_uri)
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # a progress bar per file is noise in logs
    with tempfile.TemporaryDirectory(prefix="seller-risk-model-") as tmp, _env(quiet):
        local = mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=tmp)
        return RiskModel.load_dir(local), ref


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
