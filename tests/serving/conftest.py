"""A scoring service shared by the modules that test its HTTP contract (test_openapi.py,
test_http_contract.py): one real `bentoml serve` for both, started as test_service.py starts its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from training.train import TrainResult


@pytest.fixture(scope="package")
def contract_server(trained: TrainResult, feature_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The service with an API key, telemetry off and its decisions and audit database beside its log
    (`<log folder>/console.db`), the defaults otherwise, ready to answer."""
    from tests.serving.test_service import API_KEY, Server, _env, _free_port, _serve, _stop, _wait_ready

    port, log = _free_port(), tmp_path_factory.mktemp("contract") / "serve.log"
    proc = _serve(_env(trained, feature_dir, f"models:/seller-risk/{trained.version}", SELLER_RISK_API_KEY=API_KEY,
                       SELLER_RISK_DB=f"sqlite:///{log.parent / 'console.db'}"), port, log)  # the audit of served records
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url, log)
        yield Server(url, log, 0.0, -1)
    finally:
        _stop(proc)
