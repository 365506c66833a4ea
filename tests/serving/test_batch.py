"""The weekly batch job as its users rely on it: one partition per week, replaced whole on a re-run,
left intact by a killed run, the same records the service gives, and a summary whose figures add up."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features.platform import layout
from features.platform.atomic import staged
from features.policy.definition import ReviewCapacity, load_policy
from serving.batch.table import BATCH_ARROW, BATCH_FILE_ARROW, read_record, read_scores
from serving.main import app
from serving.batch.summary import (Bins, capacity_coverage, expected_breaches, psi, psi_level, reference_bins, risers)

CLI = str(Path(sys.executable).with_name("seller-risk"))


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def models_dir(trained) -> Path:
    return Path(trained.tracking_uri.removeprefix("sqlite:///")).parent


@pytest.fixture(scope="module")
def model_uri(trained) -> str:
    return f"models:/seller-risk/{trained.version}"


@pytest.fixture(scope="module")
def latest(feature_dir: Path) -> date:
    return date.fromisoformat(json.loads(layout.manifest_file(feature_dir).read_text())["as_of_dates"][-1])


def score(out: Path, feature_dir: Path, events: Path | None, models_dir: Path, model_uri: str, *extra: str):
    args = ["score", "--out", str(out), "--features", str(feature_dir), "--models", str(models_dir),
            "--model", model_uri, *extra]
    if events is not None:
        args += ["--events", str(events)]
    return CliRunner().invoke(app, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, feature_dir, marketplace, models_dir, model_uri):
    """The latest week scored once with the CLI (no --as-of: the latest complete week)."""
    out = tmp_path_factory.mktemp("scores") / "scores"
    res = score(out, feature_dir, marketplace[0], models_dir, model_uri)
    assert res.exit_code == 0, res.output
    return out, res


def content(partition: Path) -> dict[str, str]:
    """Every file of a partition by name, with a digest of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(partition.iterdir())}


def rows_without_run(partition: Path) -> pd.DataFrame:
    t = pa.concat_tables([pq.read_table(f) for f in layout.partition_files(partition)])
    df = t.drop(["run_id", "scored_at"]).to_pandas()
    for column in ("standards_missed_now", "reasons", "lowering_reasons", "context", "contributions", "recovery"):
        df[column] = df[column].map(lambda r: json.dumps(list(r), default=str))
    return df.sort_values("seller_id").reset_index(drop=True)


def same_record(batch: dict, served: dict) -> None:
    """A batch record equals the scorer's (the service's) bit for bit, but for band_meaning of a seller
    in this week's lists: the batch says so first, then the band's own meaning."""
    from serving.batch.table import QUEUE_WORDS

    if batch["band_meaning"] != served["band_meaning"]:
        assert batch["band_meaning"].endswith(f": {served['band_meaning']}")
        assert any(batch["band_meaning"].startswith(w) for w in QUEUE_WORDS.values())
        batch = {**batch, "band_meaning": served["band_meaning"]}
    assert batch == served


# ------------------------------------------------------------------ the partition


def test_scores_every_active_seller_into_one_partition(first_run, feature_dir, latest, trained) -> None:
    out, res = first_run
    summary = json.loads(layout.summary_file(out, latest).read_text())
    table = read_scores(out, latest)
    snapshot = pq.read_table(layout.snapshot_partition(feature_dir, latest)).num_rows
    assert table.schema.equals(BATCH_ARROW)
    files = layout.score_files(out, latest)
    assert files and all(pq.read_schema(f).equals(BATCH_FILE_ARROW) for f in files)  # as_of only in the path
    assert "as_of" not in BATCH_FILE_ARROW.names
    assert table.num_rows == snapshot == summary["sellers_scored"]
    assert len(set(table.column("seller_id").to_pylist())) == snapshot
    df = table.select(["as_of", "model_version", "policy_version", "run_id", "model_run_id"]).to_pandas()
    assert (df["as_of"] == latest).all()
    assert (df["model_version"] == trained.version).all() and (df["model_run_id"] == trained.run_id).all()
    assert (df["policy_version"] == "walmart-us-2026").all() and (df["run_id"] == summary["run_id"]).all()
    # no reason is noise: each accounts for at least the policy's minimum effect, none at a perfect rate
    policy = load_policy("walmart-us-2026")
    for reasons in table.column("reasons").to_pylist()[:500]:
        for x in reasons:
            best = 0.0 if policy.metrics[x["standard"]].direction == "at_most" else 1.0
            assert x["probability_change"] >= policy.reasons.min_effect and x["value"] != best
    # printed: the summary table, the top of the early-warning queue and of the recovery list
    assert "expected breaches within 28 days" in res.output and "Early-warning queue" in res.output
    assert "Recovery list" in res.output and "recovery path" in res.output
    compliant = table.filter(pc.equal(table.column("population"), "compliant_now"))
    riskiest = compliant.sort_by([("risk_score", "descending")]).column("seller_id").to_pylist()[0]
    assert riskiest in res.output


def test_rerun_replaces_the_partition_whole(first_run, feature_dir, marketplace, models_dir, model_uri, latest) -> None:
    out, _ = first_run
    part = layout.score_partition(out, latest)
    before = rows_without_run(part)
    run_before = json.loads(layout.summary_file(out, latest).read_text())["run_id"]
    res = score(out, feature_dir, marketplace[0], models_dir, model_uri, "--as-of", str(latest))
    assert res.exit_code == 0, res.output
    after = rows_without_run(part)
    assert sorted(p.name for p in out.iterdir()) == [part.name]  # the table holds its partitions, nothing else
    assert not layout.staging_dir(out).exists()  # no temporary leftovers
    pd.testing.assert_frame_equal(before, after)  # same content, no duplicates
    assert after["seller_id"].is_unique
    run_after = read_scores(out, latest, ["run_id"]).column("run_id").unique().to_pylist()
    assert run_after == [json.loads(layout.summary_file(out, latest).read_text())["run_id"]] and run_after != [run_before]


def test_a_batch_record_equals_the_scorers(first_run, feature_dir, models_dir, model_uri, latest) -> None:
    from features.pipeline.snapshots import read_snapshots
    from serving.bands import CutoffsReader
    from serving.scoring import Scorer

    out, _ = first_run
    scorer = Scorer.load(model_uri, models_dir)
    scorer = scorer.ranked(CutoffsReader(out, scorer.ref.run_id))  # placed in bands as the run placed them
    frame = read_snapshots(feature_dir, latest)
    # DuckDB hands the date over as a pandas Timestamp, which Scorer passes through as it is (a
    # Timestamp is a date); the record's as_of is a date, as the service's snapshot gives it
    frame["as_of"] = latest
    scores = read_scores(out, latest, ["seller_id", "risk_score", "queue", "queue_rank"]).to_pandas()
    scores = scores.sort_values("risk_score")
    picks = [scores["seller_id"].iloc[0], scores["seller_id"].iloc[len(scores) // 2], scores["seller_id"].iloc[-1],
             *[scores.loc[scores["queue"] == q].sort_values("queue_rank")["seller_id"].iloc[0]
               for q in ("early_warning", "recovery")]]
    expected = scorer.records(scorer.score_frame(frame[frame["seller_id"].isin(picks)]))
    assert {r["population"] for r in expected} == {"missing_now", "compliant_now"}
    for rec in expected:
        same_record(read_record(out, latest, rec["seller_id"]), rec)  # bit for bit, reasons and all
    assert read_record(out, latest, "no-such-seller") is None


# ------------------------------------------------------------------ the summary


def test_summary_figures_add_up(first_run, latest, policy) -> None:
    out, _ = first_run
    s = json.loads(layout.summary_file(out, latest).read_text())
    p = read_scores(out, latest, ["risk_score"]).column("risk_score").to_numpy()
    eb = s["expected_breaches"]
    assert eb["expected"] == pytest.approx(p.sum(), rel=1e-12)
    assert eb["std"] == pytest.approx(np.sqrt((p * (1 - p)).sum()), rel=1e-12)
    assert eb["low"] < eb["expected"] < eb["high"] and eb["interval_level"] == 0.90
    assert [b["band"] for b in s["bands"]] == [b.name for b in policy.risk_bands]
    assert sum(b["sellers"] for b in s["bands"]) == s["sellers_scored"] == len(p)
    assert sum(b["expected_breaches"] for b in s["bands"]) == pytest.approx(p.sum())
    cap = s["review_capacity"]
    assert cap["sellers"] == int(np.ceil(0.03 * len(p)))
    assert cap["expected_breaches_in_queue"] == pytest.approx(np.sort(p)[-cap["sellers"]:].sum())
    assert s["risers"]["sellers"] and "snapshot scored now" in s["risers"]["compared_with"]
    assert s["drift"]["reference"].startswith("training weeks")
    assert s["drift"]["variables"][0]["variable"] == "risk_score" and len(s["drift"]["variables"]) == 11


def test_a_season_the_champion_never_trained_on_widens_the_forecast(first_run, latest, models_dir, model_uri) -> None:
    """The test marketplace holds under a year: the champion's training weeks never held the scored week's
    season, so both forecasts say so and their intervals hold the seasonal error (models.forecast)."""
    from models.forecast import breach_interval, season_seen
    from models.registry import fitted_weeks
    from serving.scoring import Scorer

    out, _ = first_run
    s = json.loads(layout.summary_file(out, latest).read_text())
    weeks = fitted_weeks(Scorer.load(model_uri, models_dir).ref)
    first, last = weeks.first, weeks.last
    assert first < last < latest and not season_seen([first, last], latest)
    p = read_scores(out, latest, ["risk_score"]).column("risk_score").to_numpy()
    eb, f = s["expected_breaches"], s["breach_forecast"]
    assert (eb["planned"], eb["low"], eb["high"]) == breach_interval(p, [], 0.9, unseen_season=True)
    assert f"a season the model never trained on (it learnt from {first} to {last})" in eb["interval_includes"]
    assert "a season the model never trained on" in f["interval_includes"]
    _, narrow_low, narrow_high = breach_interval(p, [], 0.9)
    assert eb["low"] < narrow_low and eb["high"] > narrow_high


def test_the_weekly_lists(first_run, latest, policy) -> None:
    """The early-warning queue: compliant sellers only, as many as the capacity, riskiest first, each with
    a reason by standard; the recovery list: exactly the sellers missing a standard now, with their way back."""
    out, _ = first_run
    s = json.loads(layout.summary_file(out, latest).read_text())
    t = read_scores(out, latest, ["seller_id", "risk_score", "population", "standards_missed_now", "reasons",
                                  "recovery", "queue", "queue_rank", "risk_band", "band_meaning"]).to_pandas()
    early = t[t["queue"] == "early_warning"].sort_values("queue_rank")
    recovery = t[t["queue"] == "recovery"].sort_values("queue_rank")
    missing = t["population"] == "missing_now"
    capacity = policy.review_capacity.sellers_for(len(t))
    assert (~missing).sum() >= capacity and len(early) == capacity == s["early_warning"]["sellers"]
    assert (early["population"] == "compliant_now").all()  # 0 sellers missing a standard now
    assert list(early["queue_rank"]) == list(range(1, capacity + 1))
    assert early["risk_score"].is_monotonic_decreasing
    rest = t[(t["queue"].isna())]
    assert (rest["population"] == "compliant_now").all() and rest["risk_score"].max() <= early["risk_score"].min()
    assert all(len(r) >= 1 and all(x["standard"] in policy.metrics for x in r) for r in early["reasons"])
    assert early["band_meaning"].str.startswith("In this week's early-warning queue").all()
    # the recovery list is exactly the sellers missing a standard now, most standards missed first
    assert set(recovery["seller_id"]) == set(t.loc[missing, "seller_id"]) and len(recovery) == s["recovery"]["sellers"]
    assert list(recovery["queue_rank"]) == list(range(1, len(recovery) + 1))
    assert recovery["standards_missed_now"].map(len).is_monotonic_decreasing
    assert all([x["standard"] for x in rec] == list(m) for rec, m in zip(t["recovery"], t["standards_missed_now"]))
    assert all(len(r) == 0 for r in t.loc[~missing, "recovery"])
    assert s["recovery"]["by_standard"] == {m: int(t["standards_missed_now"].map(lambda x, m=m: m in x).sum())
                                            for m in policy.metrics}
    # bands are places in this ranking: review is the queue itself, next the following queue's worth,
    # watch up to five queues' worth, recovery the recovery list; the summary keeps the cut-offs
    assert set(t.loc[t["risk_band"] == "review", "seller_id"]) == set(early["seller_id"])
    assert set(t.loc[t["risk_band"] == "recovery", "seller_id"]) == set(recovery["seller_id"])
    ranked = t[~missing].sort_values("risk_score", ascending=False)["risk_band"].tolist()
    assert ranked == (["review"] * capacity + ["next"] * capacity + ["watch"] * 3 * capacity
                      + ["low"] * (len(ranked) - 5 * capacity))
    cut = s["band_cutoffs"]
    assert cut["as_of"] == str(latest) and cut["capacity"] == capacity and cut["compliant_sellers"] == (~missing).sum()
    assert [(c["band"], c["within"]) for c in cut["cutoffs"]] == [("review", capacity), ("next", 2 * capacity),
                                                                  ("watch", 5 * capacity)]
    assert cut["cutoffs"][0]["lowest_score"] == pytest.approx(early["risk_score"].min(), abs=1e-9)
    assert [b["sellers"] for b in s["bands"]] == [int(missing.sum()), capacity, capacity, 3 * capacity,
                                                  len(ranked) - 5 * capacity]
    eb = s["early_warning"]
    assert eb["expected_breaches"] == pytest.approx(early["risk_score"].sum(), rel=1e-12)
    assert eb["lowest_score"] == early["risk_score"].min()
    print(f"week {latest}: {len(t):,} sellers, early-warning queue {len(early)} (expected breaches "
          f"{eb['expected_breaches']:.1f}, {eb['share_of_expected_breaches_of_compliant']:.1%} of the compliant "
          f"sellers'), recovery list {len(recovery)}")


def test_expected_breaches_and_its_interval() -> None:
    p = np.array([0.1, 0.5, 0.9, 0.2])
    eb = expected_breaches(p, 0.95)
    assert eb.expected == pytest.approx(1.7)
    assert eb.std == pytest.approx(np.sqrt(0.09 + 0.25 + 0.09 + 0.16))
    assert eb.high - eb.expected == pytest.approx(1.959964 * eb.std, rel=1e-6)
    assert expected_breaches(np.zeros(3)).low == 0.0


def test_capacity_coverage() -> None:
    p = np.array([0.9, 0.1, 0.5, 0.05, 0.3])
    cov = capacity_coverage(p, ReviewCapacity(sellers_per_week=2))
    assert (cov.capacity, cov.expected_in_queue, cov.lowest_score_in_queue) == (2, pytest.approx(1.4), 0.5)
    assert cov.share_of_expected == pytest.approx(1.4 / 1.85)
    assert capacity_coverage(p, ReviewCapacity(share_of_active_sellers=0.03)).capacity == 1


def test_risers_are_the_largest_increases() -> None:
    now = pd.DataFrame({"seller_id": ["a", "b", "c", "d"], "risk_score": [0.5, 0.2, 0.9, 0.3],
                        "risk_band": ["critical", "watch", "critical", "high"]})
    before = pd.DataFrame({"seller_id": ["a", "b", "c"], "risk_score": [0.1, 0.3, 0.6], "risk_band": ["watch"] * 3})
    r = risers(now, before, n=5)
    assert r["seller_id"].tolist() == ["a", "c"]  # b fell, d is new
    assert r["change"].tolist() == pytest.approx([0.4, 0.3])


def test_psi() -> None:
    assert psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0)
    e, a = np.array([50, 50]), np.array([80, 20])
    assert psi(e, a) == pytest.approx((0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5))
    assert (psi_level(0.05), psi_level(0.1), psi_level(0.3)) == ("stable", "watch", "alert")
    rng = np.random.default_rng(0)
    ref = rng.normal(size=20_000)
    bins = reference_bins("x", ref)
    assert psi(bins.counts(ref), bins.counts(rng.normal(size=20_000))) < 0.01
    assert psi(bins.counts(ref), bins.counts(rng.normal(0.5, 1, size=20_000))) > 0.1
    cats = Bins("c", "category", levels=("a", "b"))
    assert cats.counts(pd.Series(["a", "b", "z", None, "a"])).tolist() == [2, 1, 1, 1]


# ------------------------------------------------------------------ refusals


def _copy_features(feature_dir: Path, dest: Path, as_of: date, change) -> Path:
    """A copy of the features folder whose as-of partition went through `change` (a table -> table)."""
    shutil.copytree(feature_dir, dest)
    for f in layout.snapshot_files(dest, as_of):
        pq.write_table(change(pq.read_table(f)), f)
    return dest


@pytest.mark.parametrize("change, words", [
    (lambda t: t.drop(["orders_30d"]), "lacks feature column(s) of spec"),
    (lambda t: t.append_column("loyalty_points", pa.array(np.zeros(t.num_rows))), "does not define: loyalty_points"),
], ids=["missing-column", "extra-column"])
def test_a_snapshot_that_does_not_match_the_spec_is_refused(change, words, tmp_path, feature_dir, models_dir,
                                                           model_uri, latest) -> None:
    features = _copy_features(feature_dir, tmp_path / "features", latest, change)
    out = tmp_path / "scores"
    res = score(out, features, None, models_dir, model_uri)
    assert res.exit_code == 2
    assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not out.exists()


@pytest.mark.parametrize("change, words", [
    (lambda t: t.drop(["orders_30d"]), "lacks feature column(s) of spec"),
    (lambda t: t.append_column("loyalty_points", pa.array(np.zeros(t.num_rows))), "does not define: loyalty_points"),
    ("spec", "was built with feature spec 0123456789abcdef"),
], ids=["missing-column", "extra-column", "other-spec"])
def test_the_service_refuses_the_same_snapshots_as_the_job(change, words, tmp_path, feature_dir, models_dir,
                                                           model_uri) -> None:
    """One check for both: the service's latest snapshot is refused for what the job refuses."""
    from models.risk_model import ModelSpecMismatch
    from serving.scoring import Scorer, Snapshot

    features = shutil.copytree(feature_dir, tmp_path / "features")
    if change == "spec":
        layout.spec_file(features).write_text(json.dumps({"hash": "0123456789abcdef"}))
    else:
        latest = layout.latest_snapshot(features)
        pq.write_table(change(pq.read_table(latest)), latest)
    scorer = Scorer.load(model_uri, models_dir)
    with pytest.raises(ModelSpecMismatch, match=re.escape(words)):
        Snapshot.load(features, scorer)


def test_a_model_for_another_feature_spec_is_refused(tmp_path, first_run, trained, feature_dir, marketplace,
                                                     models_dir, latest) -> None:
    import mlflow

    from models.registry import use_store

    use_store(models_dir)
    meta = {**trained.model.metadata(), "feature_spec_hash": "0123456789abcdef"}
    (tmp_path / "boosters").mkdir()
    with mlflow.start_run():
        info = mlflow.lightgbm.log_model(trained.model.booster, name="model", metadata=meta,
                                         extra_files=trained.model.save_standards(tmp_path / "boosters"),
                                         registered_model_name="seller-risk-other-spec")
    out, _ = first_run
    before = content(layout.score_partition(out, latest))
    res = score(out, feature_dir, marketplace[0], models_dir, f"models:/seller-risk-other-spec/{info.registered_model_version}")
    assert res.exit_code == 2
    assert "0123456789abcdef" in res.stderr and "feature spec" in res.stderr and "Traceback" not in res.output
    assert content(layout.score_partition(out, latest)) == before  # nothing written
    unknown = score(tmp_path / "scores", feature_dir, None, models_dir, "models:/seller-risk@nobody")
    assert unknown.exit_code == 2 and "nobody" in unknown.stderr and not (tmp_path / "scores").exists()


# ------------------------------------------------------------------ interruption


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_an_interrupted_run_leaves_the_previous_partition_intact(sig, first_run, feature_dir, marketplace,
                                                                 models_dir, model_uri, latest, tmp_path) -> None:
    out, _ = first_run
    part = layout.score_partition(out, latest)
    before = content(part)
    cmd = [CLI, "score", "--out", str(out), "--features", str(feature_dir), "--events", str(marketplace[0]),
           "--models", str(models_dir), "--model", model_uri, "--chunk-rows", "10"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "160"})
    deadline = time.monotonic() + 120
    tmp = staged(part, layout.staging_dir(out), proc.pid)
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(tmp.glob("part-*.parquet"))) >= 3:  # mid-way through writing the new partition
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.stderr.read()!r}"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert content(part) == before  # the previous partition, byte for byte
    assert read_scores(out, latest).num_rows == json.loads(layout.summary_file(out, latest).read_text())["sellers_scored"]
    assert sorted(p.name for p in out.iterdir()) == [part.name]  # the run's staging sits outside the table
    if sig == signal.SIGINT:
        assert not tmp.exists()  # cleaned up on the way out
    # the next run clears whatever a killed one left behind, and no MLflow run stays RUNNING
    from mlflow import MlflowClient

    from models.registry import ensure_experiment, use_store
    from serving.batch.table import clear_stale_staging
    from serving.batch.tracking import SCORING_EXPERIMENT, close_dead_runs

    clear_stale_staging(part)
    assert not tmp.exists()
    use_store(models_dir)
    experiment = ensure_experiment(SCORING_EXPERIMENT, models_dir)
    [killed] = MlflowClient().search_runs([experiment], f"tags.pid = '{proc.pid}'")
    if sig == signal.SIGKILL:
        assert killed.info.status == "RUNNING"  # nothing could run on the way out
        assert close_dead_runs(experiment) == [killed.info.run_id]
    assert MlflowClient().get_run(killed.info.run_id).info.status == "KILLED"
    assert close_dead_runs(experiment) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_python_swallowed_still_stops_the_run(sig) -> None:
    """A signal that lands in a finalizer is only printed as "Exception ignored": the run checks again
    between chunks, so it still stops (seen once in CI: a SIGINTed run finished and exited 0)."""
    from serving.batch.signals import stop_signals

    before = signal.getsignal(sig)
    with stop_signals() as check:
        check()  # nothing received yet
        try:
            os.kill(os.getpid(), sig)
            for _ in range(1000):  # the handler runs on the main thread at the next bytecode
                pass
        except KeyboardInterrupt:
            pass  # swallowed, as a finalizer would
        with pytest.raises(KeyboardInterrupt):
            check()
    assert signal.getsignal(sig) is before


# ------------------------------------------------------------------ the golden week

GOLDEN_WEEK = Path(__file__).with_name("golden_week.json")
RUN_COLUMNS = ("run_id", "scored_at", "model_run_id")  # this run's MLflow ids and clock: new on every run


def column_digests(table: pa.Table) -> dict[str, str]:
    """Every column of a week's score table but the run's own ids and time, sorted by seller, as a digest
    of its values (Arrow's IPC bytes of the column alone), with the column's type: a change of any value,
    type or order of columns shows as a different digest."""
    import pyarrow.ipc as ipc

    table = table.sort_by("seller_id").drop([c for c in RUN_COLUMNS if c in table.column_names])
    digests = {}
    for name in table.column_names:
        one = table.select([name]).combine_chunks()
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, one.schema) as writer:
            writer.write_table(one)
        digests[name] = f"{one.schema.field(name).type} {hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()}"
    return digests


def test_golden_week_is_unchanged(first_run, latest) -> None:
    """The session marketplace's latest week, scored by the session model (seed 7, one training thread per
    worker as `make test` sets), equals the golden week every column: a refactor changes no value. When a
    change means to change the scores, rewrite the file with SELLER_RISK_UPDATE_GOLDEN=1 (the test then
    fails once, saying so) and say why in the commit."""
    out, _ = first_run
    digests = {"columns": list(read_scores(out, latest).column_names), **column_digests(read_scores(out, latest))}
    if os.environ.get("SELLER_RISK_UPDATE_GOLDEN") == "1":
        GOLDEN_WEEK.write_text(json.dumps(digests, indent=1) + "\n")
        pytest.fail(f"golden week rewritten to {GOLDEN_WEEK}: commit it and say why the scores changed")
    golden = json.loads(GOLDEN_WEEK.read_text())
    assert digests["columns"] == golden["columns"]
    changed = [c for c in golden if c != "columns" and digests.get(c) != golden[c]]
    assert not changed, f"columns whose values changed against the golden week: {changed}"
