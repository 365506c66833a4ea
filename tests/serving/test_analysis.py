"""What the notebooks compute, on small frames with values worked out by hand."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.policy.definition import load_policy
from features.pipeline.spec import feature_spec
from serving import analysis as an


@pytest.fixture(scope="module")
def policy():
    return load_policy("walmart-us-2026")


@pytest.fixture(scope="module")
def spec(policy):
    return feature_spec(policy)


def test_inputs_default_to_the_demo_folders_from_a_notebook_folder(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    got = an.inputs_from_env({}, tmp_path / "notebooks")
    assert got.root == tmp_path.resolve()
    assert got.features == tmp_path.resolve() / "data" / "features"
    assert got.scores == tmp_path.resolve() / "data" / "scores"
    assert got.models == tmp_path.resolve() / "models"
    assert got.model_uri == "models:/seller-risk@champion"
    assert got.seller is None and got.week is None


def test_inputs_follow_the_environment(tmp_path: Path) -> None:
    env = {"SELLER_RISK_DATA": "elsewhere", "SELLER_RISK_SCORES": "/abs/scores", "SELLER_RISK_SELLER": "S0000042",
           "SELLER_RISK_WEEK": "2025-12-29", "SELLER_RISK_MODEL_URI": "models:/seller-risk/3"}
    got = an.inputs_from_env(env, tmp_path)
    assert got.events == tmp_path.resolve() / "elsewhere" / "events"
    assert got.scores == Path("/abs/scores")
    assert (got.seller, got.week, got.model_uri) == ("S0000042", date(2025, 12, 29), "models:/seller-risk/3")


def test_every_feature_is_grouped_by_the_standard_it_measures(spec, policy) -> None:
    groups = an.feature_groups(spec, policy)
    assert set(groups) == set(spec.names)
    assert groups["on_time_delivery_rate_30d"] == "on_time_delivery_rate"
    assert groups["return_rate_wilson"] == "return_rate"
    assert groups["orders_30d"] == groups["category"] == groups["warnings_90d"] == an.GENERAL
    assert set(groups.values()) == {*policy.metrics, an.GENERAL}


def test_threshold_lines_sit_where_the_standard_is_crossed(policy, spec) -> None:
    assert an.threshold_line("on_time_delivery_rate_7d", policy) == 0.90
    assert an.threshold_line("cancellation_rate_wilson", policy) == 0.02
    assert an.threshold_line("refund_rate_gap", policy) == 0.0
    assert an.threshold_line("return_rate_volume", policy) == 100.0
    assert an.threshold_line("return_rate_trend", policy) is None
    assert an.threshold_line("orders_30d", policy) is None
    assert an.threshold_label("cancellation_rate_volume", policy) == "evaluated from 50 (seller cancellations)"
    assert an.threshold_label("on_time_delivery_rate_30d", policy) == "standard: at least 90%"
    assert an.threshold_label("orders_30d", policy) is None
    assert an.is_rate("refund_rate_30d", spec) and not an.is_rate("orders_30d", spec)
    assert an.axis_label("refund_rate_30d", spec) == "refund_rate_30d (%)"
    assert an.axis_label("orders_30d", spec) == "orders_30d (count)"


def test_share_by_standard_adds_up_and_ranks_by_raising_push() -> None:
    c = np.array([[0.3, -0.1, 0.1], [0.1, 0.2, -0.2]])
    out = an.share_by_standard(c, ["a_1", "a_2", "b_1"], {"a_1": "a", "a_2": "a", "b_1": "b"}, {"a": "A"})
    assert list(out["group"]) == ["a", "b"] and list(out["label"]) == ["A", "b"]
    assert out["share_raising"].tolist() == pytest.approx([0.6 / 0.7, 0.1 / 0.7])
    assert out["share_abs"].tolist() == pytest.approx([0.7 / 1.0, 0.3 / 1.0])


def scores_frame() -> pd.DataFrame:
    r = lambda rank, f, c: {"rank": rank, "standard": f, "label": f.upper(), "contribution": c,  # noqa: E731
                            "probability_change": c / 10, "direction": "raises", "value": 0.1, "volume": 80,
                            "headroom": 2, "text": f"{f} text"}
    return pd.DataFrame({
        "seller_id": ["S1", "S2", "S3"], "as_of": [date(2025, 6, 2)] * 3, "risk_score": [0.6, 0.3, 0.01],
        "risk_band": ["recovery", "next", "low"],
        "reasons": [[r(1, "x", 0.5), r(2, "y", 0.2)], [r(1, "y", 0.4)], []]})


def test_reasons_long_and_their_frequency() -> None:
    long = an.reasons_long(scores_frame())
    assert list(long["seller_id"]) == ["S1", "S1", "S2"]
    assert list(long["standard"]) == ["x", "y", "y"] and list(long["volume"]) == [80, 80, 80]
    freq = an.reason_frequency(long, {"x": "Metric x", "y": "Metric y"})
    assert list(freq["standard"]) == ["y", "x"] and list(freq["label"]) == ["Metric y", "Metric x"]
    assert freq.set_index("standard").loc["y", ["sellers", "first_reason"]].tolist() == [2, 1]
    assert freq.set_index("standard").loc["y", "share_of_sellers"] == 1.0
    assert an.top_band(scores_frame(), load_policy("walmart-us-2026")) == "next"  # recovery is not ranked
    assert an.riskiest_seller(scores_frame()) == "S1"


def test_served_agreement_pairs_each_reason_with_the_same_cell() -> None:
    long = an.reasons_long(scores_frame())
    contributions = np.array([[0.5, 0.2], [0.0, 0.4], [0.0, 0.0]])
    agree = an.served_agreement(long, contributions, np.array(["S1", "S2", "S3"]), ["x", "y"])
    assert agree["difference"].abs().max() == 0 and list(agree["standard"]) == ["x", "y", "y"]
    with pytest.raises(KeyError):
        an.served_agreement(long, contributions[:, :1], np.array(["S1", "S2", "S3"]), ["x"])


def test_standards_history_reads_each_metric_over_its_own_window(policy, spec) -> None:
    row = {n: 0.0 for n in spec.names}
    row.update({"seller_id": "S1", "as_of": date(2025, 6, 2), "return_rate_60d": 0.08, "return_rate_30d": 0.01})
    for m in policy.metrics:
        row[f"evaluated_{m}"], row[f"miss_{m}"] = True, m == "return_rate"
    hist = an.standards_history(pd.DataFrame([row]), policy).set_index("metric")
    assert len(hist) == len(policy.metrics)
    assert hist.loc["return_rate", ["value", "threshold", "window_days", "missed"]].tolist() == [0.08, 0.06, 60, True]


def test_segment_scores_measure_calibration_and_ranking_per_cohort() -> None:
    rng = np.random.default_rng(0)
    n = 400
    p = rng.uniform(0, 0.5, n)
    frame = pd.DataFrame({"tenure_days": np.where(np.arange(n) % 2, 30.0, 400.0), "orders_90d": rng.integers(0, 5000, n),
                          "category": "toys", "region": "west", "risk_score": p, "breach": (rng.uniform(0, 1, n) < p) * 1.0})
    out = an.segment_scores(an.with_segments(frame)).set_index(["segment_type", "segment"])
    new = frame[frame["tenure_days"] < 90]
    assert out.loc[("tenure_band", "new"), "sellers"] == len(new)
    assert out.loc[("tenure_band", "new"), "roc_auc"] == pytest.approx(roc_auc_score(new["breach"], new["risk_score"]))
    assert out.loc[("tenure_band", "new"), "calibration_gap"] == pytest.approx(new["risk_score"].mean() - new["breach"].mean())
    assert out.loc[("category", "toys"), "sellers"] == n
    assert an.calibration_error([0, 1], [0.05, 0.95]) == pytest.approx(0.05)


def test_summaries_become_tables_over_time() -> None:
    summary = {"as_of": "2025-06-02", "sellers_scored": 10, "model": {"version": "1"},
               "expected_breaches": {"expected": 2.0, "low": 1.0, "high": 3.0},
               "review_capacity": {"sellers": 1, "expected_breaches_in_queue": 0.5, "share_of_expected_breaches": 0.25},
               "bands": [{"band": "low", "sellers": 8}, {"band": "high", "sellers": 2}],
               "drift": {"reference": "ref", "variables": [{"variable": "risk_score", "psi": 0.02, "level": "stable"}]}}
    cap = an.capacity_over_time([summary])
    assert cap.iloc[0][["expected_breaches", "capacity", "share_in_queue"]].tolist() == [2.0, 1, 0.25]
    assert an.drift_over_time([summary]).iloc[0]["psi"] == 0.02
    assert an.bands_over_time([summary]).columns.tolist() == ["low", "high"]
