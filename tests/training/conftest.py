"""One trained model per test session, on the shared simulated marketplace, in its own embedded
MLflow store; tests that change the registry train their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.train import TrainConfig, TrainResult, train

TRIALS, SEED = 3, 7  # the CLI test against a real MLflow server trains with the same settings


@pytest.fixture(scope="session")
def trained(feature_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    models = tmp_path_factory.mktemp("models")
    return train(TrainConfig(feature_dir, models, seed=SEED, n_trials=TRIALS, budget_s=600.0))
