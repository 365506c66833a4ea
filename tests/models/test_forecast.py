"""The breach forecast a leader staffs for: hand-computed values in the cases that have a closed form, and
coverage on simulated weeks of a model that is off by a varying amount (the issue's 64% to 86%)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from datetime import date, timedelta

from models.forecast import GRID, PRIOR_SD, UNSEEN_SD, _STD, breach_interval, model_error, season_seen

Z90 = 1.6448536269514722


def test_weeks_that_all_agree_and_no_prior_give_the_scaled_bernoulli_interval() -> None:
    """Five matured weeks at 0.8 and no prior: M is 0.8 for sure, so Y ~ Normal(0.8·Σp, 0.8·Σp(1−p))."""
    p = np.array([0.1, 0.5, 0.9, 0.2])
    expected, low, high = breach_interval(p, [0.8] * 5, prior_weeks=0)
    mean, var = 0.8 * 1.7, 0.8 * (0.09 + 0.25 + 0.09 + 0.16)
    assert expected == pytest.approx(1.36, rel=1e-12)
    assert low == pytest.approx(mean - Z90 * math.sqrt(var), rel=1e-7)
    assert high == pytest.approx(mean + Z90 * math.sqrt(var), rel=1e-7)


def test_the_model_error_pools_the_weeks_with_the_prior() -> None:
    """Ratios 0.5 and 2 (log ±ln 2) with two pseudo-weeks at sd 0.25: mean 0, pooled variance
    (2·ln²2 + 2·0.0625)/4, times the predictive 1 + 1/4."""
    err = model_error([0.5, 2.0], prior_weeks=2, prior_sd=0.25)
    assert err.mean == pytest.approx(0.0, abs=1e-15) and err.weeks == 2
    assert err.sd == pytest.approx(math.sqrt((2 * math.log(2) ** 2 + 2 * 0.0625) / 4 * 1.25), rel=1e-12)
    # weeks away from 1 pull the mean toward them in proportion n / (n + k) and widen the spread
    skewed = model_error([0.75] * 12)
    assert skewed.mean == pytest.approx(12 / 16 * math.log(0.75), rel=1e-12)
    m = skewed.mean
    pooled = (12 * (math.log(0.75) - m) ** 2 + 4 * (PRIOR_SD ** 2 + m ** 2)) / 16
    assert skewed.sd == pytest.approx(math.sqrt(pooled * (1 + 1 / 16)), rel=1e-12)


def test_with_no_matured_week_the_interval_is_the_prior_log_normal() -> None:
    """No Bernoulli spread (risks 0 and 1) and no weeks: Y = M, log M ~ Normal(0, 0.25²·1.25); the grid's
    quantiles are within a percent of the closed form."""
    sd = PRIOR_SD * math.sqrt(1.25)
    expected, low, high = breach_interval(np.array([0.0, 1.0, 0.0]), [])
    assert expected == pytest.approx(math.exp(sd ** 2 / 2), rel=1e-12)
    assert low == pytest.approx(math.exp(-Z90 * sd), rel=0.01)
    assert high == pytest.approx(math.exp(Z90 * sd), rel=0.01)


def test_the_fallback_is_wider_than_a_model_seen_to_be_right() -> None:
    p = np.full(5_000, 0.02)
    none = breach_interval(p, [])
    right = breach_interval(p, [1.02, 0.97, 1.01, 0.99, 1.0, 0.98, 1.03, 1.0] * 4)
    e, sd = p.sum(), math.sqrt((p * (1 - p)).sum())
    assert none[2] - none[1] > 2 * (right[2] - right[1]) > 2 * (2 * Z90 * sd)
    assert right[1] < e < right[2]
    assert breach_interval(np.zeros(4), [0.9]) == (0.0, 0.0, 0.0)
    assert breach_interval(np.full(3, 0.9), [], level=0.99)[2] <= 3.0  # never more breaches than sellers


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="matured_ratios"):
        breach_interval(np.array([0.1]), [0.8, 0.0])
    with pytest.raises(ValueError, match="risk"):
        breach_interval(np.array([1.2]), [])


def _rolling_coverage(log_m: np.ndarray, sellers: int, lag: int, rng: np.random.Generator) -> tuple[float, float]:
    """Week by week: risks drawn, realised breaches drawn with probabilities M·p, the interval built from the
    ratios of weeks matured `lag` weeks earlier. Coverage of the forecast and of the Bernoulli-only interval."""
    ratios, inside, bernoulli = [], [], []
    for t, lm in enumerate(log_m):
        p = rng.beta(0.6, 40, sellers)
        y = rng.binomial(1, np.minimum(1, p * math.exp(lm))).sum()
        _, low, high = breach_interval(p, ratios[:max(0, t - lag + 1)])
        sd = math.sqrt((p * (1 - p)).sum())
        if t >= 6:
            inside.append(low <= y <= high)
            bernoulli.append(abs(y - p.sum()) <= Z90 * sd)
        ratios.append(y / p.sum())
    return float(np.mean(inside)), float(np.mean(bernoulli))


def test_coverage_on_weeks_of_a_model_that_over_forecasts() -> None:
    """A model whose realised/expected wanders between about 0.6 and 0.9 (as the issue saw): the
    Bernoulli interval almost never holds the realised count, the forecast's holds it in >= 80% of weeks."""
    rng = np.random.default_rng(23)
    weeks = 60
    log_m = np.log(0.75) + 0.12 * rng.standard_normal(weeks)
    covered, bernoulli = _rolling_coverage(log_m, 20_000, lag=4, rng=rng)
    assert covered >= 0.80 and bernoulli < 0.3, (covered, bernoulli)


def test_coverage_when_the_error_drifts_with_the_season() -> None:
    """A slow seasonal swing of the model's error (±25% over a year) around calibration."""
    rng = np.random.default_rng(7)
    weeks = 60
    log_m = 0.25 * np.sin(np.arange(weeks) * 2 * math.pi / 52) + 0.05 * rng.standard_normal(weeks)
    covered, _ = _rolling_coverage(log_m, 4_000, lag=4, rng=rng)
    assert covered >= 0.80, covered


def _weeks(first: date, n: int) -> list[date]:
    return [first + timedelta(weeks=i) for i in range(n)]


def test_a_season_is_seen_when_its_place_a_year_or_more_back_lies_in_the_training_span() -> None:
    """Training from 2025-01-13 for 30 weeks (to 2025-08-04): a year of 364 days back from 2026-01-12 is
    2025-01-13, the first training week (seen); from 2026-01-05 it is 2025-01-06, a week before training
    began; 2025-11-24 has nothing a year back; two years back counts; no training dates see nothing."""
    trained = _weeks(date(2025, 1, 13), 30)
    assert season_seen(trained, date(2026, 1, 12))
    assert not season_seen(trained, date(2026, 1, 5))
    assert not season_seen(trained, date(2025, 11, 24))
    assert season_seen(trained, date(2026, 8, 3)) and not season_seen(trained, date(2026, 8, 17))
    assert season_seen(trained, date(2027, 1, 11))  # 728 days back: 2025-01-13
    assert not season_seen([], date(2026, 1, 12))


def test_an_unseen_season_adds_its_spread_to_the_interval_and_leaves_the_planning_figure() -> None:
    """Eight matured weeks at 1.0 and no prior: the matured error is 0, so in an unseen season log M ~
    Normal(0, UNSEEN_SD²) exactly; with risks of 0 or 1 the Bernoulli part is 0 and Y = M·Σp, whose 90%
    interval is Σp·exp(±z·UNSEEN_SD) up to the grid's quantile nodes (below the cap of 13 sellers); the
    planning figure stays Σp."""
    p = np.array([1.0, 0.0, 1.0, 1.0] + [0.0] * 9)
    seen = breach_interval(p, [1.0] * 8, prior_weeks=0)
    assert seen == pytest.approx((3.0, 3.0, 3.0))
    expected, low, high = breach_interval(p, [1.0] * 8, prior_weeks=0, unseen_season=True)
    assert expected == pytest.approx(3.0)
    # the mixture's 5% quantile lies between the nodes either side of it
    nodes = [UNSEEN_SD * _STD.inv_cdf((i + 0.5) / GRID) for i in range(GRID)]
    k = int(0.05 * GRID)
    assert 3 * math.exp(nodes[k - 1]) <= low <= 3 * math.exp(nodes[k + 1])
    assert 3 * math.exp(-nodes[k + 1]) <= high <= 3 * math.exp(-nodes[k - 1])
    assert low == pytest.approx(3 * math.exp(-Z90 * UNSEEN_SD), rel=0.02)
    assert high == pytest.approx(3 * math.exp(Z90 * UNSEEN_SD), rel=0.02)


def test_coverage_through_a_first_peak_only_with_the_unseen_season() -> None:
    """A model calibrated all year whose error jumps to 3x through a peak it never saw and falls to 0.5x after
    (the simulated marketplaces' first holiday peak): the matured weeks cannot see it coming, so the interval
    holds the peak weeks only when it is told the season is new to the model."""
    rng = np.random.default_rng(11)
    log_m = np.concatenate([0.08 * rng.standard_normal(40),
                            np.log([1.0, 1.1, 1.5, 2.2, 2.9, 3.2, 2.4, 1.8, 1.0, 0.65, 0.5, 0.5])])
    peak = range(40, 52)
    results = {}
    for unseen in (False, True):
        ratios, inside = [], []
        for t, lm in enumerate(log_m):
            p = rng.beta(0.6, 8, 1600)
            y = rng.binomial(1, np.minimum(1, p * math.exp(lm))).sum()
            _, low, high = breach_interval(p, ratios[:max(0, t - 3)], unseen_season=unseen and t in peak)
            if t in peak:
                inside.append(low <= y <= high)
            ratios.append(y / p.sum())
        results[unseen] = float(np.mean(inside))
    assert results[False] < 0.5 and results[True] >= 0.8, results
