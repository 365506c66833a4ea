"""The robustness run's metrics, each checked on a frame small enough to work out by hand, and one small run
end to end (two marketplaces) that must give the whole table with finite values."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.policy.definition import ReviewCapacity
from models.forecast import breach_interval
from training.backtest import LOGREG, MODEL, RULE
from training.folds import Fold
from training.robustness import (
    CEILING,
    RobustnessBounds,
    RobustnessConfig,
    extended,
    forecast_history,
    forecast_weeks,
    matured_ratios,
    ranking_and_queue,
    run_robustness,
    verdicts,
    weekly_breaches,
    with_slices,
    write_results,
)

W = [pd.Timestamp("2025-09-01") + pd.Timedelta(weeks=i) for i in range(12)]


def _rows(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    base = {"seller_id": [f"S{i}" for i in range(n)], "compliant_at_t": [True] * n, "after_intervention": [False] * n}
    return pd.DataFrame(base | cols)


def test_validation_weeks_are_scored_with_the_same_training_and_marked_apart() -> None:
    folds = [Fold("fold1", tuple(W[:3]), tuple(W[4:6]), tuple(W[8:10]))]
    ext = extended(folds)
    assert ext[0].train == folds[0].train and ext[0].valid == folds[0].valid
    assert ext[0].test == (W[4], W[5], W[8], W[9])
    scored = _rows(fold=["fold1"] * 4, as_of=[W[4], W[5], W[8], W[9]], score=[0.1] * 4, breach=[0] * 4)
    assert with_slices(scored, folds)["slice"].tolist() == ["valid", "valid", "test", "test"]


def test_weekly_breaches_count_compliant_sellers_only() -> None:
    rows = _rows(fold=["f"] * 5, slice=["test"] * 5, as_of=[W[0]] * 3 + [W[1]] * 2,
                 score=[0.1, 0.2, 0.9, 0.25, 0.5], breach=[0, 1, 1, 1, 0],
                 compliant_at_t=[True, True, False, True, True])
    weekly = weekly_breaches(rows)
    assert weekly[["sellers", "realised"]].to_numpy().tolist() == [[2, 1], [2, 1]]
    assert weekly["expected"].tolist() == pytest.approx([0.3, 0.75])


def test_only_weeks_whose_horizon_has_ended_count_and_a_week_without_breaches_counts_half_a_breach() -> None:
    history = pd.DataFrame({"as_of": [W[0], W[1], W[2], W[3], W[4]], "expected": [10.0, 8.0, 4.0, 0.0, 5.0],
                            "realised": [12, 0, 6, 3, 5]})
    # at W[6] (42 days after W[0]) with a 28-day horizon: W[0], W[1], W[2] have matured; W[3] expected nothing
    assert matured_ratios(history, W[6], 28) == pytest.approx([1.2, 0.5 / 8.0, 1.5])
    assert matured_ratios(history, W[4], 28) == pytest.approx([1.2])  # W[0] + 28 days = W[4]: matured that day
    assert matured_ratios(history, W[3], 28) == []


def test_a_forecast_learns_from_test_weeks_and_its_own_folds_validation_weeks_each_week_once() -> None:
    weekly = pd.DataFrame({
        "fold": ["fold1", "fold1", "fold2", "fold2", "fold1", "fold2"],
        "slice": ["valid", "valid", "valid", "valid", "test", "test"],
        "as_of": [W[0], W[1], W[2], W[4], W[4], W[8]],
        "expected": [1.0, 1.0, 1.0, 9.0, 2.0, 1.0], "realised": [1, 1, 1, 9, 1, 1]})
    fold2 = forecast_history(weekly, "fold2")
    assert list(zip(fold2["as_of"], fold2["slice"])) == [(W[2], "valid"), (W[4], "test"), (W[8], "test")]
    assert fold2.loc[fold2["as_of"] == W[4], "expected"].item() == 2.0  # the test week's score, not fold2's
    honest = forecast_history(weekly, "fold2", out_of_sample_only=True)
    assert honest["as_of"].tolist() == [W[4], W[8]]


def test_each_test_week_gets_the_interval_of_its_own_risks_and_of_the_weeks_matured_by_then() -> None:
    calls = []

    def interval(risk, ratios, level):
        calls.append((sorted(risk.tolist()), list(ratios), level))
        e = float(np.sum(risk))
        return e, e * 0.5, e * 1.5

    rows = _rows(fold=["fold1"] * 2 + ["fold1"] * 3, slice=["valid"] * 2 + ["test"] * 3,
                 as_of=[W[0], W[0], W[5], W[5], W[5]], score=[0.5, 0.5, 1.0, 1.0, 1.0], breach=[1, 0, 1, 1, 1],
                 compliant_at_t=[True, True, True, True, False])
    weeks = forecast_weeks(rows, 28, 0.9, interval)
    assert calls == [([1.0, 1.0], [1.0], 0.9)]  # W[0]: 1 breach of 1.0 expected; the non-compliant row left out
    assert weeks[["sellers", "realised", "low", "high", "matured_weeks"]].to_numpy().tolist() == [[2, 2, 1.0, 3.0, 1]]
    assert weeks["inside"].tolist() == [True]
    real = forecast_weeks(rows, 28, 0.9, breach_interval)
    expected, low, high = breach_interval(np.array([1.0, 1.0]), [1.0], 0.9)
    assert real[["expected", "low", "high"]].to_numpy().tolist()[0] == pytest.approx([expected, low, high])
    assert real["inside"].item() == (low <= 2 <= high)


def test_a_week_in_a_season_its_folds_model_never_trained_on_gets_the_unseen_season_interval() -> None:
    """Two folds' test weeks: fold1's model trained a year before its week (seen), fold2's only on the weeks
    just before (unseen); the interval of each is breach_interval's, told so, and the table says which."""
    rows = _rows(fold=["fold1", "fold1", "fold2", "fold2"], slice=["valid", "test", "valid", "test"],
                 as_of=[W[0], W[5], W[1], W[6]], score=[0.5, 0.5, 0.5, 0.5], breach=[1, 1, 1, 0])
    trained = {"fold1": [W[5] - pd.Timedelta(days=364 + 7 * k) for k in range(3)],
               "fold2": [W[0] - pd.Timedelta(weeks=1)]}
    weeks = forecast_weeks(rows, 28, 0.9, breach_interval, trained=trained).set_index("fold")
    assert weeks["unseen_season"].to_dict() == {"fold1": False, "fold2": True}
    for fold, unseen in (("fold1", False), ("fold2", True)):
        # each learns from its own validation week only (1 breach of 0.5 expected), matured by its test week
        want = breach_interval(np.array([0.5]), [2.0], 0.9, unseen_season=unseen)
        assert weeks.loc[fold, ["expected", "low", "high"]].tolist() == pytest.approx(list(want))


def test_ranking_and_queue_against_the_rule_and_the_regression_by_hand() -> None:
    # six compliant sellers in one week, two breach (S0, S1); reviewers look at two a week
    breach = [1, 1, 0, 0, 0, 0]
    ranks = {MODEL: [6, 5, 4, 3, 2, 1],  # breaches ranked 1st and 2nd: average precision 1
             RULE: [5, 3, 6, 4, 2, 1],  # breaches ranked 2nd and 4th: (1/2 + 2/4) / 2 = 0.5
             LOGREG: [6, 4, 5, 3, 2, 1]}  # 1st and 3rd: (1 + 2/3) / 2
    scored = pd.concat([_rows(as_of=[W[0]] * 6, breach=breach, score=[r / 10 for r in s], model=[m] * 6)
                        for m, s in ranks.items()], ignore_index=True)
    out = ranking_and_queue(scored, ReviewCapacity(sellers_per_week=2))
    assert out["pr_auc_model"] == pytest.approx(1.0)
    assert out["pr_auc_rule"] == pytest.approx(0.5)
    assert out["pr_auc_logreg"] == pytest.approx(5 / 6)
    assert (out["precision_model"], out["precision_rule"], out["precision_logreg"]) == (1.0, 0.5, 0.5)
    assert out["pr_auc_over_rule"] == pytest.approx(2.0)
    assert out["precision_over_rule"] == out["precision_over_logreg"] == 2.0
    assert out["early_warning_rows"] == 6 and out["early_warning_base_rate"] == pytest.approx(1 / 3)


def _row(**change) -> dict:
    row = {"pr_auc_over_rule": 1.6, "precision_over_rule": 1.3, "precision_model": 0.5, "precision_logreg": 0.49,
           "ece_pooled": 0.02, "ece_worst_week": 0.05, "interval_coverage": 0.8}
    return row | change


def test_verdicts_at_the_bounds_pass_and_just_past_them_or_nan_fail() -> None:
    bounds = RobustnessBounds()
    assert verdicts(_row(), bounds) == {"pass_pr_auc": True, "pass_queue": True, "pass_calibration": True,
                                        "pass_interval": True, "passed": True}
    assert not verdicts(_row(pr_auc_over_rule=1.59), bounds)["pass_pr_auc"]
    assert not verdicts(_row(precision_logreg=0.5), bounds)["pass_queue"]  # must be above the regression
    assert not verdicts(_row(ece_worst_week=0.051), bounds)["pass_calibration"]
    failed = verdicts(_row(interval_coverage=float("nan")), bounds)
    assert not failed["pass_interval"] and not failed["passed"]


@pytest.mark.slow
def test_a_small_run_on_two_marketplaces_gives_the_whole_table(tmp_path: Path) -> None:
    cfg = RobustnessConfig(out=tmp_path / "rob", regimes=("baseline", "carrier_outages"), sellers=300,
                           start=date(2025, 1, 6), weeks=56, threads=1, ceiling="at_t")
    stages = []
    result = run_robustness(cfg, lambda stage, done, total: stages.append(stage))
    table = result.table
    assert table["regime"].tolist() == ["baseline", "carrier_outages"]
    assert table.loc[1, "disruptions"] > 2 * table.loc[0, "disruptions"]
    numbers = ["breach_share", "early_warning_base_rate", "pr_auc_model", "pr_auc_rule", "pr_auc_logreg",
               "pr_auc_over_rule", "precision_model", "precision_rule", "precision_logreg", "precision_over_rule",
               "precision_over_logreg", "ece_pooled", "ece_worst_week", "interval_coverage",
               "interval_coverage_out_of_sample", "realised_over_expected", *CEILING.values()]
    assert all(math.isfinite(v) for v in table[numbers].to_numpy(dtype="float64").ravel())
    assert set(table["passed"]) <= {True, False}
    assert (table["test_weeks"] == 12).all()
    assert table["last_test_week"].max() >= pd.Timestamp("2025-12-22")  # the holiday peak is tested
    weeks = result.weeks
    assert len(weeks) == 24 and weeks.groupby("regime")["matured_weeks"].min().min() >= 4
    assert ((weeks["low"] <= weeks["expected"]) & (weeks["expected"] <= weeks["high"])).all()
    assert "Regimes" in stages and not (tmp_path / "rob" / "baseline").exists()  # work folders removed
    assert "baseline: ceiling (folds)" in stages
    # the ceiling is a second backtest with more inputs, not the model's figures copied
    assert not np.allclose(table["ceiling_pr_auc"], table["pr_auc_model"])
    written = write_results(result, tmp_path / "rob")
    assert pd.read_parquet(written[0])["regime"].tolist() == ["baseline", "carrier_outages"]
