"""How many sellers will breach, as a number a leader can staff for: the expected breaches among a set of
sellers and an interval that holds the model's own error, not only the coin flips of a calibrated model.

Why not the sum of risks with a Bernoulli interval: that interval (±z·√Σp(1−p)) is what a *calibrated* model's
outcomes scatter by. A model that is off by 20% in a season sits outside it every week: with thousands of
sellers the Bernoulli spread is a few percent of the total, the model's error is tens of percent. So here the
realised count Y among sellers with calibrated risks p is modelled as

    Y | M  ~  Normal(M·E, M·V),     E = Σp, V = Σp(1−p)      (the Poisson-binomial spread, scaled)
    log M  ~  Normal(m, s²)                                   (the model's error this week)

where M is the week's realised/expected ratio. m and s come from the log ratios of earlier weeks whose labels
have matured, pooled with `prior_weeks` pseudo-weeks of a calibrated model (log ratio 0, spread `prior_sd`):

    m  = n·mean / (n + k)
    s² = [n·(var + (mean − m)²) + k·(prior_sd² + m²)] / (n + k) · (1 + 1/(n + k))

That is the variance of the pooled sample (real weeks and pseudo-weeks) about its own mean, widened by the
uncertainty of that mean for a week not yet seen (the usual predictive factor). With no matured week the
interval is the prior's: a ±~50% band at 90% (exp(±1.645·0.25·√1.25) is 0.63 to 1.58), wide on purpose;
with few weeks it is pulled toward 1 and stays wide; with many it follows what the weeks showed. A
parametric log-normal is used rather than the ratios' empirical quantiles, because with a dozen weeks an
empirical 5% tail is just the smallest ratio seen, which a new week undercuts one time in thirteen.

A season the model never trained on is another error, one no matured week can measure: the weeks before a
first holiday peak say nothing of how far the model will be off in it (on the simulated marketplaces, whose
training starts in January, realised over expected went from 1.0 to 3.2 within five weeks of the first peak,
then to 0.5 after it). So when the forecast week's calendar position was not in the model's training a year
(or more) earlier (`season_seen`), log M gets an independent seasonal term of spread `UNSEEN_SD`:
s² + UNSEEN_SD². The interval is then wide, and says why; a model with a year of history behind it is back
to what its matured weeks show.

The interval is the `level` central interval of the mixture over M (integrated on a quantile grid of log M),
floored at 0 and capped at the number of sellers. Expected is the mixture's mean, E·exp(m + s²/2): the raw
sum of risks corrected by what matured weeks showed, so a model that over-forecasts by a quarter gives a
planning figure a quarter lower. Scaling the variance by M (rather than Σ Mp(1−Mp)) is exact for small
risks, the early-warning population's, and never negative.

Pure functions: the batch job gathers the ratios (serving.batch.monitoring), the robustness runs import this."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist

import numpy as np
import pandas as pd

PRIOR_WEEKS = 4
"""Pseudo-weeks of a calibrated model the matured weeks are pooled with: four weeks of evidence weigh as
much as the prior, twelve weeks three times as much."""
PRIOR_SD = 0.25
"""The spread of log(realised/expected) assumed before any week has matured: a model a quarter off either
way is unremarkable week to week (the issue saw ratios of 0.64 to 0.86)."""
UNSEEN_SD = 0.6
"""The spread of the seasonal part of log(realised/expected) in a season the model never trained on: the first
holiday peak moved it by up to log 3.2 = 1.2 on the simulated marketplaces and by log 2.7 = 1.0 on the
independent one (issue 23: 24% of compliant sellers breached where the model expected 9%); a 90% interval
holds a shift of that size when the spread is near 0.6."""
YEAR_DAYS = 364
"""A year on the weekly grid: 52 weeks, so the same weekday a year earlier."""
GRID = 201
"""Quantile nodes of log M the mixture is integrated on (midpoints of equal-probability slices)."""
_STD = NormalDist()


@dataclass(frozen=True)
class ModelError:
    """The week's realised/expected ratio as the matured weeks show it: log M ~ Normal(mean, sd²)."""

    mean: float
    sd: float
    weeks: int  # matured weeks it was estimated from


def model_error(matured_ratios: Sequence[float], prior_weeks: int = PRIOR_WEEKS,
                prior_sd: float = PRIOR_SD) -> ModelError:
    """The log ratio's predictive mean and spread for a week not yet seen (see the module docstring)."""
    r = np.asarray([float(x) for x in matured_ratios], dtype="float64")
    bad = r[~np.isfinite(r) | (r <= 0)]
    if len(bad):
        raise ValueError(f"matured_ratios: realised/expected must be positive and finite, got {bad[:3].tolist()}")
    logs, n, k = np.log(r), len(r), prior_weeks
    if n + k == 0:
        raise ValueError("no matured weeks and no prior weeks: nothing to say how wrong the model may be")
    mean = float(logs.mean()) if n else 0.0
    var = float(logs.var()) if n else 0.0
    m = n * mean / (n + k)
    pooled = (n * (var + (mean - m) ** 2) + k * (prior_sd ** 2 + m ** 2)) / (n + k)
    return ModelError(m, math.sqrt(pooled * (1 + 1 / (n + k))), n)


def season_seen(trained: Sequence[date], week: date) -> bool:
    """Whether the model trained on the forecast week's place in the calendar: some whole number of years
    (`YEAR_DAYS`) before `week` lies within the span of its training as-of dates `trained`, so the same season
    (its strain, its peak) was in what it learnt from. False with no training dates."""
    days = sorted(pd.Timestamp(d).normalize() for d in trained)
    if not days:
        return False
    back, first = pd.Timestamp(week).normalize() - pd.Timedelta(days=YEAR_DAYS), days[0]
    while back >= first:
        if back <= days[-1]:
            return True
        back -= pd.Timedelta(days=YEAR_DAYS)
    return False


def breach_interval(risk: np.ndarray, matured_ratios: Sequence[float], level: float = 0.9, *,
                    prior_weeks: int = PRIOR_WEEKS, prior_sd: float = PRIOR_SD,
                    unseen_season: bool = False) -> tuple[float, float, float]:
    """(expected, low, high) breaches among the sellers whose calibrated risks are `risk`, the `level`
    interval holding both the Bernoulli spread and the model's error seen in `matured_ratios`
    (realised/expected of earlier matured weeks; none: the prior's wide interval), and, when the week lies in
    a season the model never trained on (`unseen_season`, see `season_seen`), a seasonal error of `UNSEEN_SD`."""
    p = np.asarray(risk, dtype="float64")
    if len(p) and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise ValueError("risk: calibrated risks must lie in [0, 1]")
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1, got {level}")
    err = model_error(matured_ratios, prior_weeks, prior_sd)
    expected_mult = math.exp(err.mean + err.sd ** 2 / 2)  # the planning figure: what the matured weeks say
    if unseen_season:  # a doubt either way, not a reason to plan for more: it widens, the figure stays
        err = ModelError(err.mean, math.hypot(err.sd, UNSEEN_SD), err.weeks)
    e, v = float(p.sum()), float((p * (1 - p)).sum())
    if e == 0:
        return 0.0, 0.0, 0.0
    mult = np.exp(err.mean + err.sd * np.array([_STD.inv_cdf((i + 0.5) / GRID) for i in range(GRID)]))
    tail = (1 - level) / 2
    low = _mixture_quantile(mult * e, mult * v, tail)
    high = _mixture_quantile(mult * e, mult * v, 1 - tail)
    expected = e * expected_mult
    return expected, max(0.0, low), min(float(len(p)), high)


def _mixture_quantile(means: np.ndarray, variances: np.ndarray, q: float) -> float:
    """The q-quantile of an equal-weight mixture of normals (a point mass where a variance is 0), by bisection."""
    sd = np.sqrt(variances)
    cdf = np.vectorize(_STD.cdf)

    def share_below(y: float) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sd > 0, (y - means) / np.where(sd > 0, sd, 1), np.where(y >= means, np.inf, -np.inf))
        return float(cdf(z).mean())

    lo = float((means - 10 * sd).min()) - 1e-9
    hi = float((means + 10 * sd).max()) + 1e-9
    for _ in range(100):
        mid = (lo + hi) / 2
        if share_below(mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9 * max(1.0, abs(hi)):
            break
    return (lo + hi) / 2
