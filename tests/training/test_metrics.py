"""Evaluation at reviewer capacity, calibration and segments, checked against hand counts on
two small weeks of scored sellers; and the figures built from them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from models.cohorts import expected_calibration_error
from features.policy.definition import ReviewCapacity
from training import plots
from training.metrics import (
    at_capacity,
    by_segment,
    evaluate,
    segments,
    weekly_capacity,
)

SHARE_20 = ReviewCapacity(share_of_active_sellers=0.2)
W1, W2 = pd.Timestamp("2025-03-03"), pd.Timestamp("2025-03-10")

# seller, as_of, score, breach, compliant_at_t, tenure_days, orders_90d, category
ROWS = [
    # week 1: top 2 of all = s00 (breach), s01; top 2 of the early-warning set = s01, s02 (breach)
    ("s00", W1, 0.90, 1, False, np.nan, 500, "toys"),
    ("s01", W1, 0.80, 0, True, 89.0, 500, "toys"),
    ("s02", W1, 0.70, 1, True, 90.0, 500, "home"),
    ("s03", W1, 0.60, 0, True, 400.0, 500, "home"),
    ("s04", W1, 0.50, 1, True, 400.0, 500, "home"),
    ("s05", W1, 0.15, 0, True, 400.0, 10, "home"),
    ("s06", W1, 0.14, 0, True, 400.0, 10, "home"),
    ("s07", W1, 0.13, 0, True, 400.0, 10, "home"),
    ("s08", W1, 0.12, 0, True, 400.0, 10, "home"),
    ("s09", W1, 0.05, 1, True, 400.0, 10, "home"),
    # week 2: s13, s12, s11 tie at the top; seller_id order puts s11 and s12 in the queue, not s13
    ("s13", W2, 0.60, 1, True, 400.0, 50, "home"),
    ("s12", W2, 0.60, 0, True, 400.0, 50, "home"),
    ("s11", W2, 0.60, 0, True, 400.0, 50, "toys"),
    ("s10", W2, 0.20, 0, True, 400.0, 50, "home"),
    ("s14", W2, 0.20, 0, True, 400.0, 50, "home"),
    ("s15", W2, 0.20, 1, False, 400.0, 5000, "home"),
    ("s16", W2, 0.10, 0, True, 400.0, 5000, "home"),
    ("s17", W2, 0.10, 0, True, 400.0, 5000, "home"),
    ("s18", W2, 0.10, 0, True, 400.0, 5000, "home"),
    ("s19", W2, 0.10, 0, True, 400.0, 5000, "home"),
]


@pytest.fixture
def scored() -> pd.DataFrame:
    cols = ["seller_id", "as_of", "score", "breach", "compliant_at_t", "tenure_days", "orders_90d", "category"]
    return pd.DataFrame(ROWS, columns=cols)


def test_weekly_capacity_is_a_share_rounded_up_or_a_fixed_number_and_at_least_one():
    assert weekly_capacity(10, SHARE_20) == 2
    assert weekly_capacity(11, SHARE_20) == 3
    assert weekly_capacity(30, ReviewCapacity(share_of_active_sellers=0.1)) == 3  # not 4 from 3.0000000000000004
    assert weekly_capacity(10, ReviewCapacity(share_of_active_sellers=0.01)) == 1
    assert weekly_capacity(0, SHARE_20) == 1
    assert weekly_capacity(1000, ReviewCapacity(sellers_per_week=25)) == 25


def test_at_capacity_all_sellers_matches_hand_counts(scored):
    weekly = at_capacity(scored, SHARE_20)
    assert list(weekly.columns) == ["as_of", "k", "flagged", "true_positives", "positives", "rows",
                                    "precision", "recall", "base_rate", "lift"]
    w1, w2 = weekly.iloc[0], weekly.iloc[1]
    assert (w1["as_of"], w1["k"], w1["flagged"], w1["true_positives"], w1["positives"], w1["rows"]) == (W1, 2, 2, 1, 4, 10)
    assert (w1["precision"], w1["recall"], w1["base_rate"]) == pytest.approx((0.5, 0.25, 0.4))
    assert w1["lift"] == pytest.approx(1.25)
    assert (w2["k"], w2["flagged"], w2["true_positives"], w2["positives"], w2["rows"]) == (2, 2, 0, 2, 10)
    assert (w2["precision"], w2["recall"], w2["base_rate"], w2["lift"]) == pytest.approx((0.0, 0.0, 0.2, 0.0))


def test_early_warning_queue_is_picked_among_compliant_sellers_only(scored):
    weekly = at_capacity(scored, SHARE_20, population="early_warning")
    w1, w2 = weekly.iloc[0], weekly.iloc[1]
    # week 1: s00 (the top score) already misses a standard; the queue is s01 and s02 (breach)
    assert (w1["k"], w1["flagged"], w1["true_positives"], w1["positives"], w1["rows"]) == (2, 2, 1, 3, 9)
    assert (w1["precision"], w1["recall"], w1["base_rate"], w1["lift"]) == pytest.approx((0.5, 1 / 3, 1 / 3, 1.5))
    assert (w2["true_positives"], w2["positives"], w2["rows"]) == (0, 1, 9)


def test_early_warning_queue_is_sized_on_all_active_sellers(scored):
    week = scored[scored["as_of"] == W1].assign(compliant_at_t=[False] * 6 + [True] * 4)
    row = at_capacity(week, ReviewCapacity(share_of_active_sellers=0.3), "early_warning").iloc[0]
    assert (row["k"], row["flagged"], row["rows"]) == (3, 3, 4)  # ceil(0.3 * 10), not ceil(0.3 * 4) = 2
    few = week.assign(compliant_at_t=[False] * 9 + [True])
    row = at_capacity(few, ReviewCapacity(share_of_active_sellers=0.3), "early_warning").iloc[0]
    assert (row["k"], row["flagged"], row["true_positives"], row["precision"]) == (3, 1, 1, 1.0)


def test_ties_are_broken_by_seller_id_whatever_the_row_order(scored):
    capacity = ReviewCapacity(sellers_per_week=1)
    week2 = scored[scored["as_of"] == W2]
    # s11 (no breach) comes before s13 (breach) among the three tied at 0.60
    for frame in (week2, week2.iloc[::-1], week2.sample(frac=1.0, random_state=3)):
        assert at_capacity(frame, capacity)["true_positives"].tolist() == [0]
    renamed = week2.replace({"seller_id": {"s13": "s00"}})  # now the breaching seller sorts first
    assert at_capacity(renamed, capacity)["true_positives"].tolist() == [1]


def test_expected_calibration_error_by_hand():
    # one seller per bin: (|0-.1| + |0-.2| + |1-.7| + |1-.9|) / 4
    assert expected_calibration_error(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.7, 0.9])) == pytest.approx(0.175)
    # bin [.1,.2): y .5 vs p .15 (2 sellers); bin [.8,.9): 1 vs .85; bin [.9,1]: 0 vs .95 (a score of 1 is in it)
    y, p = np.array([0, 1, 1, 0]), np.array([0.12, 0.18, 0.85, 0.95])
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.35 + 0.25 * 0.15 + 0.25 * 0.95)
    assert expected_calibration_error(np.array([1, 1]), np.array([1.0, 0.5]), bins=2) == pytest.approx(0.25)
    assert expected_calibration_error(np.array([0, 1]), np.array([0.5, 0.5])) == 0.0


def test_evaluate_pools_the_weeks_for_both_populations(scored):
    m = evaluate(scored, SHARE_20)
    names = ["n", "positives", "base_rate", "roc_auc", "pr_auc", "precision_at_capacity",
             "recall_at_capacity", "lift_at_capacity", "brier", "ece"]
    assert set(m) == {f"{pop}.{n}" for pop in ("all", "early_warning") for n in names}
    assert all(isinstance(v, float) for v in m.values())
    # all: TP 1 + 0 of 4 flagged, 6 breaches among 20 rows
    assert (m["all.n"], m["all.positives"]) == (20, 6)
    assert m["all.precision_at_capacity"] == pytest.approx(0.25)
    assert m["all.recall_at_capacity"] == pytest.approx(1 / 6)
    assert m["all.lift_at_capacity"] == pytest.approx(0.25 / 0.3)
    # early warning: TP 1 + 0 of 4 flagged, 4 breaches among 18 compliant rows
    assert (m["early_warning.n"], m["early_warning.positives"]) == (18, 4)
    assert m["early_warning.precision_at_capacity"] == pytest.approx(0.25)
    assert m["early_warning.recall_at_capacity"] == pytest.approx(0.25)
    assert m["early_warning.lift_at_capacity"] == pytest.approx(0.25 / (4 / 18))


def test_evaluate_ranking_is_nan_for_a_single_class_population():
    one_week = pd.DataFrame({
        "as_of": [W1] * 4, "seller_id": ["a", "b", "c", "d"], "breach": [0, 0, 1, 1],
        "score": [0.1, 0.2, 0.7, 0.9], "compliant_at_t": [True, True, False, False],
        "tenure_days": [10.0] * 4, "orders_90d": [1] * 4, "category": ["toys"] * 4,
    })
    m = evaluate(one_week, ReviewCapacity(share_of_active_sellers=0.25))  # k = 1
    assert m["all.roc_auc"] == 1.0 and m["all.pr_auc"] == 1.0
    assert m["all.brier"] == pytest.approx((0.01 + 0.04 + 0.09 + 0.01) / 4)
    assert m["all.ece"] == pytest.approx(0.175)
    assert (m["all.precision_at_capacity"], m["all.recall_at_capacity"], m["all.lift_at_capacity"]) == pytest.approx((1.0, 0.5, 2.0))
    # the early-warning set (a, b) never breaches: no ranking, no recall, no lift
    assert math.isnan(m["early_warning.roc_auc"]) and math.isnan(m["early_warning.pr_auc"])
    assert m["early_warning.positives"] == 0 and m["early_warning.precision_at_capacity"] == 0.0
    assert math.isnan(m["early_warning.recall_at_capacity"]) and math.isnan(m["early_warning.lift_at_capacity"])


def test_segments_label_tenure_and_volume_bands(scored):
    labelled = segments(scored).set_index("seller_id")
    assert labelled.loc[["s00", "s01", "s02", "s03"], "tenure_band"].tolist() == ["new", "new", "established", "established"]
    assert labelled.loc[["s05", "s10", "s00", "s15"], "volume_band"].tolist() == ["<30", "30-299", "300-2999", ">=3000"]
    edges = segments(scored.assign(orders_90d=[29, 30, 299, 300, 2999, 3000, 0, 0, 0, 0] * 2))["volume_band"]
    assert edges.tolist()[:6] == ["<30", "30-299", "30-299", "300-2999", "300-2999", ">=3000"]
    assert labelled["category"].equals(scored.set_index("seller_id")["category"])
    assert "tenure_band" not in scored.columns  # a new frame, the input is untouched


def test_by_segment_counts_the_whole_weeks_queue_within_each_segment(scored):
    seg = by_segment(scored, SHARE_20).set_index(["population", "segment_type", "segment"])
    assert list(seg.columns) == ["n", "positives", "base_rate", "roc_auc", "pr_auc", "precision_at_capacity",
                                 "recall_at_capacity", "brier", "ece"]
    # all sellers, queue s00, s01 (week 1), s11, s12 (week 2)
    toys = seg.loc[("all", "category", "toys")]
    assert (toys["n"], toys["positives"]) == (3, 1)
    assert toys["precision_at_capacity"] == pytest.approx(1 / 3) and toys["recall_at_capacity"] == 1.0
    home = seg.loc[("all", "category", "home")]
    assert (home["n"], home["positives"], home["precision_at_capacity"], home["recall_at_capacity"]) == (17, 5, 0.0, 0.0)
    # nobody with fewer than 30 or at least 3,000 orders was in the queue
    assert math.isnan(seg.loc[("all", "volume_band", "<30"), "precision_at_capacity"])
    assert seg.loc[("all", "volume_band", ">=3000"), "recall_at_capacity"] == 0.0
    assert seg.loc[("all", "volume_band", "300-2999"), "precision_at_capacity"] == pytest.approx(0.5)
    assert seg.loc[("all", "tenure_band", "new"), "precision_at_capacity"] == pytest.approx(0.5)
    # early warning, queue s01, s02 (week 1), s11, s12 (week 2)
    ew_toys = seg.loc[("early_warning", "category", "toys")]
    assert (ew_toys["n"], ew_toys["positives"], ew_toys["precision_at_capacity"]) == (2, 0, 0.0)
    assert math.isnan(ew_toys["recall_at_capacity"]) and math.isnan(ew_toys["roc_auc"])
    ew_home = seg.loc[("early_warning", "category", "home")]
    assert (ew_home["precision_at_capacity"], ew_home["recall_at_capacity"]) == (0.5, 0.25)
    # bands in reading order
    assert seg.loc["all"].loc["volume_band"].index.tolist() == ["<30", "30-299", "300-2999", ">=3000"]


# ------------------------------------------------------------------ figures


def _labelled(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_title()
    for ax in fig.axes[:1]:
        assert ax.get_xlabel() and ax.get_ylabel()


def test_pr_curves_figure(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    fig = plots.pr_curves({"lightgbm": (y, y * 0.5 + rng.random(200) * 0.5), "rule": (y, rng.random(200))},
                          "Precision-recall")
    _labelled(fig)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("lightgbm (PR AUC") for label in labels) and any("base rate" in t for t in labels)
    fig.savefig(tmp_path / "pr.png")
    assert (tmp_path / "pr.png").stat().st_size > 0


def test_calibration_curve_figure(tmp_path):
    rng = np.random.default_rng(1)
    p = rng.random(300)
    y = (rng.random(300) < p).astype(int)
    fig = plots.calibration_curve(y, p, "Calibration")
    _labelled(fig)
    assert "ECE" in fig.axes[0].get_title() and len(fig.axes) == 2
    assert fig.axes[1].get_xlabel() and fig.axes[1].get_ylabel()
    fig.savefig(tmp_path / "calibration.png")


def test_lift_by_week_figure(tmp_path, scored):
    weekly = {"lightgbm": at_capacity(scored, SHARE_20), "rule": at_capacity(scored, SHARE_20, "early_warning")}
    fig = plots.lift_by_week(weekly, "Lift at capacity")
    _labelled(fig)
    assert len(fig.axes[0].get_legend().get_texts()) == 3
    fig.savefig(tmp_path / "lift.png")


def test_shap_summary_figure(tmp_path):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(2)
    X = pd.DataFrame({"late_rate": rng.random(60), "orders": rng.integers(0, 100, 60).astype(float),
                      "category": pd.Categorical(rng.choice(["toys", "home", None], 60))})
    fig = plots.shap_summary(rng.normal(size=(60, 3)), X, "What drives the score", max_display=3)
    try:
        _labelled(fig)
        assert X["category"].dtype == "category"  # the caller's frame is untouched
        fig.savefig(tmp_path / "shap.png")
    finally:
        plt.close(fig)
