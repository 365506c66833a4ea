"""Shared fixtures: one simulated marketplace per test session, small enough to be quick and
large enough for its rates to mean something."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from features.policy.definition import Policy, load_policy
from features.simulation.run import SimulationConfig, SimulationSummary, simulate_marketplace

MARKETPLACE = SimulationConfig(n_sellers=2000, start=date(2025, 1, 6), weeks=46, seed=11, workers=1)
"""The marketplace the software is tested on: 46 weeks, so its labelled test weeks (Aug 11 to Oct 27) end
before the holiday ramp. A model with one year of history cannot be calibrated through its first holiday
peak (worst week 0.087 against the gate's 0.05 with 52 weeks, and 0.090 with a previous peak at the start
of 61 weeks): the gate refuses it, as it should, and the robustness run (benchmarks/bench_robustness.py)
is where that peak is judged, not the fixture every software test trains on."""

# Test lanes. `slow` is the one marker the fast lane (`make test-fast`, `pytest -m "not slow"`) leaves
# out; the finer markers say why a test is slow, and each implies `slow`. They are added here by fixture,
# without a decorator: tests using `trained` are training tests, tests using an `mlflow_server` fixture
# server tests, and tests using `marketplace` (so also `feature_dir`) marketplace tests: the fixtures
# take about 10 s once a session, but what the tests do on 2,000 sellers costs minutes together.
HEAVY = ("server", "spark", "notebook", "training", "marketplace", "mlflow", "postgres", "browser")
HEAVY_FIXTURES = {"trained": "training", "mlflow_server": "server", "marketplace": "marketplace",
                  "postgres_cluster": "postgres"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the xdist_group marks added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in HEAVY_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
        if any(item.get_closest_marker(m) for m in HEAVY) and not item.get_closest_marker("slow"):
            item.add_marker("slow")
        item.add_marker(pytest.mark.xdist_group(work_unit(item)))
    # the two units on the trained model first: they are the longest, and each worker starts one
    items.sort(key=lambda item: not work_unit(item).startswith(TRAINED_UNIT))


TRAINED_UNIT = "trained-"
SERVING_UNIT = ("tests/serving/", "tests/test_notebooks.py")  # the rest holds the long training tests


def work_unit(item: pytest.Item) -> str:
    """What runs whole on one xdist worker (`make test` runs two, `--dist loadgroup`): a session
    fixture is built once per worker that needs it, so the tests on the session's trained model form
    two units (the serving tests and the notebooks; the rest), each training it once, side by side on
    the two workers (with one thread each, SELLER_RISK_TRAIN_THREADS=1 in `make test`); any other test
    runs with the rest of its module (its module fixtures built once; the marketplace, about 10 s, is
    built by each worker that needs it)."""
    if "trained" in getattr(item, "fixturenames", ()):
        return TRAINED_UNIT + ("serving" if item.nodeid.startswith(SERVING_UNIT) else "rest")
    return item.nodeid.split("::")[0]


def pytest_configure(config: pytest.Config) -> None:
    # each xdist worker's BentoML servers keep their files apart (BentoML clears its folders at start)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and "BENTOML_HOME" not in os.environ:
        os.environ["BENTOML_HOME"] = os.path.join(os.path.expanduser("~"), ".cache", "seller-risk-tests",
                                                  f"bentoml-{worker}")


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy("walmart-us-2026")


@pytest.fixture(scope="session")
def marketplace(tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> tuple[Path, SimulationSummary]:
    """A year of a 2,000-seller marketplace: (events directory, run summary)."""
    out = tmp_path_factory.mktemp("marketplace") / "events"
    summary = simulate_marketplace(MARKETPLACE, policy, out)
    return out, summary


@pytest.fixture(scope="session")
def feature_dir(marketplace: tuple[Path, SimulationSummary], policy: Policy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The marketplace's feature snapshots and labels, as `seller-risk features` writes them."""
    from features.pipeline.snapshots import build_snapshots

    out = tmp_path_factory.mktemp("features") / "features"
    build_snapshots(marketplace[0], out, policy)
    return out


TRAIN_TRIALS, TRAIN_SEED = 3, 7  # the CLI test against a real MLflow server trains with the same settings


@pytest.fixture(scope="session")
def trained(feature_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One model trained on the marketplace's snapshots (search, backtest, gate) in its own embedded
    MLflow store; tests that change the registry train their own."""
    from training.train import TrainConfig, train

    models = tmp_path_factory.mktemp("models")
    return train(TrainConfig(feature_dir, models, seed=TRAIN_SEED, n_trials=TRAIN_TRIALS, budget_s=600.0))


@dataclass(frozen=True)
class TrackingServer:
    """A real `mlflow server` on a loopback port, in a session of its own (so it can be killed whole)."""

    port: int
    url: str
    process: subprocess.Popen


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[TrackingServer]:
    """A real tracking server with a SQLite store and an artifact folder of its own, ready when
    /health answers; killed (with its workers) at the end."""
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield TrackingServer(port, url, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
