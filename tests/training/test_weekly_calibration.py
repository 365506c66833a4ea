"""Calibration week by week: the per-week table and metrics the backtest computes from scored rows
(`calibration_by_week`, `weekly_metrics`) against hand counts; the promotion gate fed those metrics refuses
a model that is off in one week and names the week and its error; the training summary prints them."""

from __future__ import annotations

import pandas as pd
import pytest

from training.backtest import MODEL
from training.metrics import calibration_by_week, weekly_metrics
from training.promotion import GateBounds, decide

QUIET, PEAK = pd.Timestamp("2026-10-05"), pd.Timestamp("2026-12-07")


def _scored(peak_breaches: int, n: int = 1000) -> pd.DataFrame:
    """Two weeks of 1,000 sellers all scored 0.10: the quiet week has 100 breaches (calibrated), the
    peak week `peak_breaches` (sellers s0000 onwards); every tenth seller misses a standard at t."""
    weeks = []
    for as_of, breaches in ((QUIET, 100), (PEAK, peak_breaches)):
        weeks.append(pd.DataFrame({"seller_id": [f"s{i:04d}" for i in range(n)], "as_of": as_of, "score": 0.10,
                                   "breach": [1 if i < breaches else 0 for i in range(n)],
                                   "compliant_at_t": [i % 10 != 0 for i in range(n)]}))
    return pd.concat(weeks, ignore_index=True)


def _gate(scored: pd.DataFrame, bounds: GateBounds | None = None) -> dict:
    metrics = {f"{MODEL}.{k}": v for k, v in weekly_metrics(calibration_by_week(scored)).items()}
    no_segments = pd.DataFrame(columns=["population", "segment_type", "segment", "positives", "roc_auc", "model"])
    gate = decide(metrics, no_segments, {}, None, bounds or GateBounds())
    (check,) = [c for c in gate.checks if c["check"] == "calibrated every week"]
    return check


def test_calibration_by_week_matches_hand_counts():
    weekly = calibration_by_week(_scored(300)).set_index(["population", "as_of"])
    assert len(weekly) == 4
    # all sellers, peak week: 300 of 1,000 breached, every score 0.10 -> one bin, error |0.30 - 0.10|
    peak = weekly.loc[("all", PEAK)]
    assert (peak["n"], peak["positives"]) == (1000, 300)
    assert (peak["base_rate"], peak["mean_score"], peak["ece"]) == pytest.approx((0.30, 0.10, 0.20))
    # early-warning sellers: 900 a week; of the 300 breached in the peak, 30 missed a standard at t
    assert weekly.loc[("early_warning", PEAK), "positives"] == 270
    assert weekly.loc[("early_warning", PEAK), "ece"] == pytest.approx(0.20)
    assert weekly.loc[("early_warning", QUIET), "positives"] == 90
    assert weekly.loc[("early_warning", QUIET), "ece"] == pytest.approx(0.0)
    assert weekly.loc[("all", QUIET), "ece"] == pytest.approx(0.0)


def test_weekly_metrics_key_each_week_and_the_worst():
    m = weekly_metrics(calibration_by_week(_scored(300)))
    assert m["week.2026-12-07.all.ece"] == pytest.approx(0.20)
    assert m["week.2026-10-05.all.base_rate"] == pytest.approx(0.10)
    assert m["pooled.all.worst_week_ece"] == pytest.approx(0.20)
    assert m["pooled.early_warning.worst_week_ece"] == pytest.approx(0.20)


def test_the_gate_refuses_a_model_whose_worst_week_exceeds_the_bound_and_names_it():
    check = _gate(_scored(300))
    assert not check["passed"]
    assert "all sellers: worst of 2 weeks 2026-12-07, calibration error 0.2000" in check["detail"]
    assert "early-warning sellers: worst of 2 weeks 2026-12-07, calibration error 0.2000" in check["detail"]
    assert "(bound 0.05)" in check["detail"]


def test_the_gate_passes_a_week_within_the_bound_and_the_bound_is_the_gates():
    # the peak week: 140 of 1,000 breached (126 of the 900 early-warning sellers), 0.10 expected: error 0.04
    assert _gate(_scored(140))["passed"]
    assert "worst of 2 weeks 2026-12-07, calibration error 0.0400" in _gate(_scored(140))["detail"]
    assert not _gate(_scored(140), GateBounds(max_week_ece=0.03))["passed"]
    assert _gate(_scored(100))["passed"]


def test_the_bound_is_declared_with_the_other_bounds():
    assert GateBounds().max_week_ece == 0.05


def test_the_training_summary_prints_each_week_the_pooled_figure_and_the_worst_week():
    from rich.console import Console

    from training.backtest import Backtest
    from training.cli import calibration_table
    from training.folds import Fold

    scored = _scored(300)
    weekly = calibration_by_week(scored).assign(model=MODEL)
    metrics = {f"{MODEL}.{k}": v for k, v in weekly_metrics(calibration_by_week(scored)).items()}
    metrics |= {f"{MODEL}.pooled.all.ece": 0.1, f"{MODEL}.pooled.early_warning.ece": 0.1}
    bt = Backtest(scored.assign(model=MODEL), metrics, pd.DataFrame(), {}, weekly)
    folds = [Fold("fold1", (), (), (QUIET,)), Fold("fold2", (), (), (PEAK,))]
    out = Console(width=200, record=True)
    out.print(calibration_table(folds, bt))
    lines = out.export_text().splitlines()
    peak = next(line for line in lines if line.startswith("│ 2026-12-07"))
    assert "fold2" in peak and "30.0%" in peak and "10.0%" in peak and "0.2000" in peak
    pooled = next(line for line in lines if line.startswith("│ pooled"))
    assert "20.0%" in pooled and "0.1000" in pooled  # 400 of 2,000 breached, 10% expected
    worst = next(line for line in lines if line.startswith("│ worst week"))
    assert worst.count("2026-12-07") == 2 and worst.count("0.2000") == 2
