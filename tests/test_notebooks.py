"""The analyst notebooks keep working: each runs top to bottom on the session's simulated marketplace,
its feature snapshots, a registered model and four weeks of batch scores (and the deep-dive and
cohort notebooks on a single week), and every committed notebook is stored without outputs."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import nbformat
import pytest

from features.platform import layout
from serving.batch.job import BatchConfig, run_batch

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
BOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))
WEEKS = 4
TIMEOUT_S = 600  # per cell; a notebook takes well under a minute on 2,000 sellers


def test_there_are_notebooks() -> None:
    names = [b.stem for b in BOOKS]
    assert names == ["01_explanations_overview", "02_seller_deep_dive", "03_cohorts_and_model_health"]


@pytest.mark.parametrize("book", BOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_have_no_outputs(book: Path) -> None:
    nb = nbformat.read(book, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{book.name}: cells {dirty} hold outputs or execution counts; strip them before committing"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.fixture(scope="module")
def models_dir(trained) -> Path:
    return Path(trained.tracking_uri.removeprefix("sqlite:///")).parent


@pytest.fixture(scope="module")
def scores(tmp_path_factory, feature_dir: Path, trained, models_dir: Path) -> tuple[Path, list[date]]:
    """The batch job's score table for the last WEEKS weeks of the marketplace (without an MLflow
    run per week: the summaries beside the partitions are what the notebooks read)."""
    out = tmp_path_factory.mktemp("notebook-scores") / "scores"
    dates = [date.fromisoformat(d) for d in json.loads(layout.manifest_file(feature_dir).read_text())["as_of_dates"]]
    weeks = dates[-WEEKS:]
    for week in weeks:
        run_batch(BatchConfig(out=out, features_dir=feature_dir, as_of=week, model_uri=f"models:/seller-risk/{trained.version}",
                              models_dir=models_dir, log_mlflow=False))
    return out, weeks


@pytest.fixture(scope="module")
def one_week(tmp_path_factory, scores: tuple[Path, list[date]]) -> Path:
    """A score table holding only the latest week (what a fresh `make demo` leaves)."""
    out = tmp_path_factory.mktemp("notebook-one-week") / "scores"
    latest = scores[1][-1]
    shutil.copytree(layout.score_partition(scores[0], latest), layout.score_partition(out, latest))
    return out


def execute(book: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a notebook top to bottom in a fresh python3 kernel (the venv's); fails on any error.
    (How long they take is benchmarks/bench_notebooks.py's question.)"""
    from nbclient import NotebookClient

    for k, v in {"MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore", **env}.items():
        monkeypatch.setenv(k, v)  # the kernel process inherits this environment
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for k in ("SELLER_RISK_SELLER", "SELLER_RISK_WEEK", "SELLER_RISK_DATA"):
        if k not in env:
            monkeypatch.delenv(k, raising=False)
    nb = nbformat.read(book, as_version=4)
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()


def inputs(marketplace, feature_dir: Path, scores_dir: Path, models_dir: Path, trained) -> dict[str, str]:
    return {"SELLER_RISK_EVENTS": str(marketplace[0]), "SELLER_RISK_FEATURES": str(feature_dir),
            "SELLER_RISK_SCORES": str(scores_dir), "SELLER_RISK_MODELS": str(models_dir),
            "SELLER_RISK_MODEL_URI": f"models:/seller-risk/{trained.version}"}


@pytest.mark.notebook
@pytest.mark.parametrize("book", BOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_several_weeks(book: Path, marketplace, feature_dir, scores, models_dir, trained,
                                        monkeypatch) -> None:
    execute(book, inputs(marketplace, feature_dir, scores[0], models_dir, trained), monkeypatch)


@pytest.mark.notebook
@pytest.mark.parametrize("book", [b for b in BOOKS if not b.stem.startswith("01")], ids=lambda p: p.stem)
def test_notebook_copes_with_one_week(book: Path, marketplace, feature_dir, scores, one_week, models_dir, trained,
                                      monkeypatch) -> None:
    env = inputs(marketplace, feature_dir, one_week, models_dir, trained)
    if book.stem.startswith("02"):  # a seller picked by id, not the riskiest: the quiet cases must draw too
        import pyarrow.parquet as pq

        ids = sorted(pq.read_table(layout.score_partition(one_week, scores[1][-1])).column("seller_id").to_pylist())
        env["SELLER_RISK_SELLER"] = ids[len(ids) // 2]
    execute(book, env, monkeypatch)
