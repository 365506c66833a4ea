"""The `seller-risk` command as a person runs it: a real process, real files, exit statuses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

CLI = str(Path(sys.executable).with_name("seller-risk"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "160"})


def test_simulate_then_validate(tmp_path: Path) -> None:
    out = tmp_path / "events"
    sim = run("simulate", "--sellers", "300", "--weeks", "10", "--seed", "3", "--out", str(out))
    assert sim.returncode == 0, sim.stderr
    assert "breach within horizon share" in sim.stdout and "late delivery rate" in sim.stdout
    assert "Simulating sellers: 300/300 (100%)" in sim.stdout  # plain progress when not a terminal
    for table in ("sellers", "orders", "returns", "refunds", "feedback", "contacts", "policy_actions"):
        assert list((out / table).glob("part-*.parquet")), table
    assert (tmp_path / "events-latent" / "sellers").is_dir()
    ok = run("validate", "--events", str(out))
    assert ok.returncode == 0 and "OK" in ok.stdout


def test_validate_names_every_problem_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "events"
    assert run("simulate", "--sellers", "200", "--weeks", "8", "--out", str(out), "--no-latent").returncode == 0
    part = next((out / "feedback").glob("*.parquet"))
    feedback = pq.read_table(part)
    ratings = feedback.column("rating").to_pylist()
    ratings[3] = 6
    pq.write_table(feedback.set_column(feedback.schema.get_field_index("rating"), "rating",
                                       pa.array(ratings, pa.int64())), part)
    shutil.rmtree(out / "returns")
    bad = run("validate", "--events", str(out))
    assert bad.returncode == 1
    assert "feedback" in bad.stdout and "rating" in bad.stdout and "6" in bad.stdout
    assert "returns" in bad.stdout
    assert "2 problem(s)" in bad.stdout


def test_simulate_will_not_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    res = run("simulate", "--sellers", "10", "--weeks", "2", "--out", str(tmp_path / "mine"))
    assert res.returncode == 2
    assert "holds something this command did not write" in res.stderr
    assert "Traceback" not in res.stderr
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"


def test_unknown_policy_is_a_clear_error(tmp_path: Path) -> None:
    res = run("simulate", "--sellers", "10", "--weeks", "2", "--policy", "nope", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "nope" in res.stderr and "walmart-us-2026" in res.stderr


def test_features_builds_snapshots_and_reports_the_base_rate(tmp_path: Path) -> None:
    events, out = tmp_path / "events", tmp_path / "features"
    assert run("simulate", "--sellers", "300", "--weeks", "12", "--out", str(events), "--no-latent").returncode == 0
    res = run("features", "--events", str(events), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "base rate: breach within the horizon" in res.stdout and "early-warning set" in res.stdout
    assert len(list((out / "snapshots").glob("as_of=*"))) == 12  # weekly, 2025-01-13 to 2025-03-31
    assert (out / "latest.parquet").exists() and (out / "feature_spec.json").exists()
    one = run("features", "--events", str(events), "--out", str(out), "--as-of", "2025-03-03")
    assert one.returncode == 0 and [p.name for p in (out / "snapshots").glob("as_of=*")] == ["as_of=2025-03-03"]


def test_features_on_bad_events_is_a_clear_error(tmp_path: Path) -> None:
    events = tmp_path / "events"
    assert run("simulate", "--sellers", "100", "--weeks", "6", "--out", str(events), "--no-latent").returncode == 0
    shutil.rmtree(events / "feedback")
    res = run("features", "--events", str(events), "--out", str(tmp_path / "features"))
    assert res.returncode == 2 and "feedback" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "features").exists()


@pytest.mark.mlflow
def test_train_without_snapshots_is_a_clear_error(tmp_path: Path) -> None:
    res = run("train", "--features", str(tmp_path / "nothing"), "--models", str(tmp_path / "models"))
    assert res.returncode == 2 and "seller-risk features" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.mlflow
def test_train_on_too_short_a_history_says_so(tmp_path: Path) -> None:
    events, out = tmp_path / "events", tmp_path / "features"
    assert run("simulate", "--sellers", "100", "--weeks", "12", "--out", str(events), "--no-latent").returncode == 0
    assert run("features", "--events", str(events), "--out", str(out)).returncode == 0
    res = run("train", "--features", str(out), "--models", str(tmp_path / "models"))
    assert res.returncode == 2 and "not enough weekly as-of dates" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.mlflow
def test_promote_and_rollback_with_no_model_say_why(tmp_path: Path) -> None:
    res = run("promote", "--models", str(tmp_path / "models"))
    assert res.returncode == 1 and "no challenger" in res.stdout and "Traceback" not in res.stderr
    back = run("rollback", "--models", str(tmp_path / "models"))  # nothing to do is an error, one line
    assert back.returncode == 2 and "no earlier champion" in back.stderr and "Traceback" not in back.stderr
