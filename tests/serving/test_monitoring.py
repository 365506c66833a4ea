"""Monitoring from matured labels: each earlier week's queue precision, realised against expected breaches
and per-standard calibration equal the same figures counted by hand from small scored and labelled frames;
the intervals are the ones the week's forecast knew; reading the weeks back from a score table and a
features folder gives the same frames; two weeks running outside an interval is a warning, one is not."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.platform import layout
from features.policy.definition import load_policy
from models.forecast import breach_interval
from serving.batch.matured import due_weeks, matured_outcomes
from serving.batch.monitoring import forecast, monitor, outcomes, warnings, week_figures

STANDARDS = ["s1", "s2"]
A, B = date(2026, 1, 5), date(2026, 2, 9)  # B is five weeks after A: A's 28-day labels have matured by then


def scored_a() -> pd.DataFrame:
    return pd.DataFrame({"seller_id": list("abcdef"), "risk_score": [0.6, 0.4, 0.2, 0.1, 0.9, 0.3],
                         "queue": ["early_warning", "early_warning", None, None, "recovery", None],
                         "risk_s1": [0.5, 0.3, 0.1, 0.05, 0.8, 0.2], "risk_s2": [0.2, 0.1, 0.1, 0.05, 0.5, 0.1]})


def labels_a() -> pd.DataFrame:
    """a breaches both standards, c the second, e (missing a standard now) both; f has no label yet."""
    return pd.DataFrame({"seller_id": list("abcdef"), "breach": [True, False, True, False, True, None],
                         "breach_s1": [True, False, False, False, True, None],
                         "breach_s2": [True, False, True, False, True, None]})


def test_a_week_s_figures_equal_the_hand_count() -> None:
    week = outcomes(scored_a(), labels_a(), STANDARDS, A)
    assert list(week["seller_id"]) == list("abcde")  # f unlabelled: left out
    f = week_figures(week, STANDARDS, {}, 0.9)
    q = f["queue"]  # a and b queued, a breached
    assert (q["sellers"], q["realised"], q["expected"]) == (2, 1.0, pytest.approx(1.0))
    assert q["precision"] == 0.5 and q["expected_precision"] == pytest.approx(0.5)
    c = f["compliant"]  # a, b, c, d: a and c breached, 0.6 + 0.4 + 0.2 + 0.1 expected
    assert (c["sellers"], c["realised"]) == (4, 2.0) and c["expected"] == pytest.approx(1.3)
    assert c["ratio"] == pytest.approx(2 / 1.3)
    planned, low, high = breach_interval(np.array([0.6, 0.4, 0.2, 0.1]), [], 0.9)
    assert (c["planned"], c["low"], c["high"]) == (planned, low, high) and c["inside"] == (low <= 2 <= high)
    assert f["all"]["realised"] == 3.0 and f["all"]["expected"] == pytest.approx(2.2)
    s1, s2 = f["standards"]
    assert (s1["standard"], s1["realised"], s1["expected"]) == ("s1", 1.0, pytest.approx(0.95))
    assert (s2["standard"], s2["realised"], s2["expected"]) == ("s2", 2.0, pytest.approx(0.45))
    assert f["worst_standard"]["standard"] == "s2"  # 2 against 0.45 strays further than 1 against 0.95


def test_a_later_week_s_interval_knows_the_earlier_week_s_error() -> None:
    """B's intervals are built with A's realised/expected (A matured before B was scored); A's with none."""
    week_b = outcomes(scored_a().assign(risk_score=[0.5, 0.3, 0.2, 0.1, 0.8, 0.1]), labels_a(), STANDARDS, B)
    rows = monitor({B: week_b, A: outcomes(scored_a(), labels_a(), STANDARDS, A)}, STANDARDS, 28, 0.9)
    assert [r["as_of"] for r in rows] == [str(A), str(B)]
    assert rows[0]["matured_on"] == str(A + timedelta(days=28)) and rows[0]["compliant"]["matured_weeks"] == 0
    assert rows[1]["compliant"]["matured_weeks"] == 1
    _, low, high = breach_interval(np.array([0.5, 0.3, 0.2, 0.1]), [2 / 1.3], 0.9)
    assert (rows[1]["compliant"]["low"], rows[1]["compliant"]["high"]) == (low, high)
    _, low, high = breach_interval(np.array([0.2, 0.1, 0.1, 0.05]), [2 / 0.45], 0.9)  # s2's own error
    assert (rows[1]["standards"][1]["low"], rows[1]["standards"][1]["high"]) == (low, high)
    # a week within the horizon of A does not know A's error yet
    early = monitor({A: outcomes(scored_a(), labels_a(), STANDARDS, A),
                     A + timedelta(days=7): week_b}, STANDARDS, 28, 0.9)
    assert early[1]["compliant"]["matured_weeks"] == 0


def test_the_forecast_says_over_how_many_weeks() -> None:
    rows = monitor({A: outcomes(scored_a(), labels_a(), STANDARDS, A)}, STANDARDS, 28, 0.9)
    risk = np.full(100, 0.05)
    f = forecast(risk, rows, 0.9)
    assert (f["expected"], f["matured_weeks"]) == (pytest.approx(5.0), 1)
    assert (f["planned"], f["low"], f["high"]) == breach_interval(risk, [2 / 1.3], 0.9)
    assert "model's own error over 1 matured week " in f["interval_includes"]
    assert "no week has matured" in forecast(risk, [], 0.9)["interval_includes"]


def test_an_unseen_season_widens_the_forecast_and_says_why() -> None:
    rows = monitor({A: outcomes(scored_a(), labels_a(), STANDARDS, A)}, STANDARDS, 28, 0.9)
    risk = np.full(100, 0.05)
    seen, unseen = forecast(risk, rows, 0.9), forecast(risk, rows, 0.9, "a season the model never trained on")
    assert unseen["planned"] == seen["planned"]  # a doubt either way: the planning figure stays
    assert unseen["low"] < seen["low"] and unseen["high"] > seen["high"]
    assert (unseen["planned"], unseen["low"], unseen["high"]) == breach_interval(risk, [2 / 1.3], 0.9,
                                                                                 unseen_season=True)
    assert unseen["interval_includes"].endswith("; and a season the model never trained on")


def _row(as_of: str, inside: bool, low: float = 10.0, realised: float = 5.0) -> dict:
    fig = {"sellers": 100, "realised": realised if not inside else low, "low": low, "high": 20.0, "inside": inside,
           "ratio": 0.5, "expected": 10.0}
    return {"as_of": as_of, "queue": {**fig, "inside": True}, "compliant": fig, "all": fig,
            "standards": [{"standard": "s1", **fig, "inside": True}]}


def test_two_weeks_running_outside_is_a_warning_one_is_not() -> None:
    two = warnings([_row("2026-01-05", True), _row("2026-01-12", False), _row("2026-01-19", False)])
    assert [(w["figure"], w["weeks"], w["direction"]) for w in two] == [
        ("breaches among compliant sellers", ["2026-01-12", "2026-01-19"], "fewer")]
    assert warnings([_row("2026-01-05", False), _row("2026-01-12", True), _row("2026-01-19", False)]) == []
    assert warnings([_row("2026-01-19", False)]) == []
    assert len(warnings([_row("2026-01-12", False), _row("2026-01-19", False)], run=3)) == 0


def test_bad_frames_are_named() -> None:
    with pytest.raises(ValueError, match="score table of 2026-01-05: missing column.*risk_s2"):
        outcomes(scored_a().drop(columns="risk_s2"), labels_a(), STANDARDS, A)
    with pytest.raises(ValueError, match="snapshot labels of 2026-01-05: missing column.*breach_s1"):
        outcomes(scored_a(), labels_a().drop(columns="breach_s1"), STANDARDS, A)


# ------------------------------------------------------------------ read back from the tables


def _write_week(scores, features, as_of: date, policy, scored: pd.DataFrame, labels: pd.DataFrame | None) -> None:
    standards = list(policy.metrics)
    by = [[{"standard": s, "label": s, "risk": float(r[f"risk_{s}"]), "share": 0.0} for s in standards]
          for _, r in scored.iterrows()]
    part = layout.score_partition(scores, as_of)
    part.mkdir(parents=True)
    pq.write_table(pa.table({"seller_id": scored["seller_id"], "risk_score": scored["risk_score"],
                             "queue": pa.array(scored["queue"], pa.string(), from_pandas=True), "risk_by_standard": by}),
                   part / "part-00000.parquet")
    if labels is not None:
        snap = layout.snapshot_partition(features, as_of)
        snap.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(labels, preserve_index=False), snap / "part-00000.parquet")


def _policy_frames(policy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The hand frames with the policy's standards: the first two carry s1 and s2, the rest nothing."""
    scored, labels = scored_a(), labels_a()
    names = list(policy.metrics)
    for i, s in enumerate(names):
        scored[f"risk_{s}"] = scored[f"risk_s{i + 1}"] if i < 2 else 0.0
        labels[f"breach_{s}"] = labels[f"breach_s{i + 1}"] if i < 2 else pd.Series([False] * 5 + [None], dtype=object)
    return scored.drop(columns=["risk_s1", "risk_s2"]), labels.drop(columns=["breach_s1", "breach_s2"])


def test_matured_weeks_read_from_the_score_table_and_the_snapshots(tmp_path) -> None:
    policy = load_policy("walmart-us-2026")
    scores, features = tmp_path / "scores", tmp_path / "features"
    scored, labels = _policy_frames(policy)
    _write_week(scores, features, A, policy, scored, labels)
    late = A + timedelta(days=21)  # scored, but its horizon has not passed by B
    _write_week(scores, features, late, policy, scored, labels)
    unlabelled = A + timedelta(days=7)  # horizon passed, labels not in the snapshot yet
    _write_week(scores, features, unlabelled, policy, scored, labels.assign(breach=None))
    assert due_weeks(scores, B, policy) == [A, unlabelled]
    found = matured_outcomes(scores, features, B, policy)
    assert list(found) == [A]
    expected = outcomes(scored, labels, list(policy.metrics), A)
    pd.testing.assert_frame_equal(found[A][expected.columns], expected, check_dtype=False)
    rows = monitor(found, list(policy.metrics), policy.horizon_days, 0.9)
    assert rows[0]["compliant"]["realised"] == 2.0 and rows[0]["queue"]["precision"] == 0.5
    json.dumps(rows)  # the summary and MLflow take them as they are
    assert math.isfinite(rows[0]["compliant"]["high"])
