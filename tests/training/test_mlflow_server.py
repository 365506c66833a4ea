"""The whole flow against a real `mlflow server` process on a loopback port: `seller-risk train`
and `promote` as a person runs them, then the champion loaded back from the server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.platform import layout
from models.registry import load_risk_model
from models.risk_model import model_frame
from features.pipeline.spec import feature_spec
from tests.conftest import TRAIN_SEED as SEED, TRAIN_TRIALS as TRIALS
from training.dataset import load_training_set
from training.train import TrainResult

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, uri: str, cwd: Path, threads: int = 2) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "MLFLOW_TRACKING_URI": uri, "COLUMNS": "200", "HOME": os.environ.get("HOME", "/tmp"),
           "SELLER_RISK_TRAIN_THREADS": str(threads),
           # the machine's BLAS kernel choice: another kernel changes a regression's last bits, and the test
           # compares this process's training with the command's bit for bit
           **{k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "OMP_", "MKL_"))}}
    return subprocess.run([str(BIN / "seller-risk"), *args], capture_output=True, text=True, timeout=900, env=env, cwd=cwd)


@pytest.mark.server
def test_train_and_promote_against_a_real_tracking_server(
    mlflow_server, feature_dir: Path, trained: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = _cli("train", "--features", str(feature_dir), "--trials", str(TRIALS), "--budget", "600",
                "--seed", str(SEED), uri=mlflow_server.url, cwd=tmp_path,
                threads=trained.params["num_threads"])  # the thread count the session model was trained with
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Promotion gate" in done.stdout and "seller-risk v1" in done.stdout
    assert not (tmp_path / "models").exists()  # everything went to the server, nothing to the embedded store
    promoted = _cli("promote", uri=mlflow_server.url, cwd=tmp_path)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert "promote done" in promoted.stdout

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_registry_uri(mlflow_server.url)
    model, ref = load_risk_model("models:/seller-risk@champion")
    assert ref.version == "1"
    X = model_frame(pd.read_parquet(layout.latest_snapshot(feature_dir)),
                    feature_spec(load_training_set(feature_dir).policy))
    # the same data, seed and trials in another process and another store give the same model, bit for bit,
    # and the same backtest (this is the test that training is deterministic for a seed)
    np.testing.assert_array_equal(model.probability(X), trained.model.probability(X))
    logged = mlflow.MlflowClient().get_run(ref.run_id).data.metrics
    assert {k: logged[k] for k in trained.backtest.metrics} == pytest.approx(trained.backtest.metrics, nan_ok=True)
    again = _cli("promote", uri=mlflow_server.url, cwd=tmp_path)
    assert again.returncode == 1 and "already the champion" in again.stdout
