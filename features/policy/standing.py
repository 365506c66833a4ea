"""Where a seller stands against each standard at t, from its snapshot features alone (so the HTTP
service, which is sent features, and the batch job, which reads snapshots, agree): the rate over the
standard's window and the volume it is judged on, whether it is evaluated and missed now, its trend
and its rate over the last 30 days, the headroom (how many more misses at this volume would break it)
and, for a standard missed now, the recovery: how many good orders in a row bring it back, and when it
stops being missed if every outcome from t on is good (back within it by that run or by its bad
outcomes leaving the window, or no longer judged once too few outcomes remain in the window),
together with the evaluation date that lands on. The words for all this live with the reasons
(`models.reasons.words`); here is the policy's arithmetic, pure functions of the features.

Counts are exact: thresholds are read as the decimals the policy file gives (0.02 = 1/50), so "one
more cancellation would miss it" is integer arithmetic, never a rounding accident. Column-wise over
numpy arrays, so a million sellers cost a few array passes.

What the recovery estimate assumes. The feature vector has no dates of single orders, so the window's
volume V and bad outcomes B are taken as spread evenly over its W days: they leave it at V / W and
B / W a day. New outcomes arrive at the seller's recent pace P per D days: its orders of the last 7
days (`orders_7d`, P / 7; all channels, so for a standard judged on the seller's own channel an
upper bound) for a standard whose volume counts orders, else (messages, or features sent
without `orders_7d`) the window's own V / W. After d days of good outcomes the window holds
V (W - d) / W + P d / D outcomes, B (W - d) / W of them bad; with p / q the share of bad outcomes
allowed (at most a/b: a/b; at least a/b: (b - a)/b):

- back within the standard once q B (W - d) <= p (V (W - d) + P W d / D), i.e.
  d >= W D (q B - p V) / (D (q B - p V) + p W P)   (at the window's pace: W (1 - (p/q) V / B));
- the good run alone (`recovery` outcomes, exact if nothing left the window) takes recovery * D / P
  days; under an even spread the outcomes leaving are worse than the standard, so the window turning
  over is never later than the run, and the run is shown when it lands on the same day (it is the
  concrete thing to ask for);
- no longer judged once at most min_count - 1 outcomes remain, when the pace is below the window's
  (V D > P W): d >= W D (V - min_count + 1) / (V D - P W). A seller with no recent orders (P = 0)
  keeps its bad share as the window empties, so it is never back, only no longer judged after
  W (V - min_count + 1) / V days.

The recovery is the soonest of these (back, when it ties with leaving judgement). Whatever the spread,
the window has fully turned over W days after t: that bound assumes only steady volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pandas as pd

from features.policy.definition import Metric, Policy
from features.policy.measures import MEASURES

UNITS = {"orders": "orders", "shipped_orders": "shipped orders", "delivered_orders": "delivered orders",
         "contacts_due": "customer messages"}
"""What a standard's volume counts, in a reviewer's words (by the policy's denominator measure)."""

PER_STANDARD = ("volume", "gap", "trend", "30d")
"""What a standing reads of each standard's features, `<metric>_<column>`: the volume it is judged on,
how far past the threshold it lies, its trend, and its rate over the last 30 days (optional)."""

RECENT_ORDERS = "orders_7d"
"""The seller's recent pace (optional): orders placed in the last 7 days, all channels."""
RECENT_DAYS = 7


def units(metric: Metric) -> str:
    """What the standard's volume counts: "orders", "delivered orders", "customer messages"."""
    return UNITS.get(metric.denominator, metric.denominator.replace("_", " "))


def counts_orders(metric: Metric) -> bool:
    """The standard's volume counts orders (placed, shipped, delivered), so the seller's recent orders
    are its recent pace; customer messages are not."""
    return MEASURES[metric.denominator].table == "orders"


def standing_inputs(policy: Policy) -> list[str]:
    """The features a standing is read from, every standard's then the seller's recent orders: the one
    list scorers select from the model inputs."""
    return [f"{m}_{c}" for m in policy.metrics for c in PER_STANDARD] + [RECENT_ORDERS]


@dataclass(frozen=True)
class Standing:
    """One standard for n sellers, column-wise. `count` is the numerator over the window: misses for
    an at-most standard (cancellations), good outcomes for an at-least one (on-time deliveries).
    `headroom`, `recovery` and `recovery_days` are -1 where they do not apply. The recovery assumes new
    outcomes at `pace` per `pace_days` (the module's docstring)."""

    metric: Metric
    rate: np.ndarray  # float, NaN without volume
    volume: np.ndarray  # int
    count: np.ndarray  # int
    evaluated: np.ndarray  # bool: volume at least the policy's minimum
    missing: np.ndarray  # bool: evaluated and past the threshold
    trend: np.ndarray  # float: last 30 days minus the 30 before, NaN when unknown
    recent: np.ndarray  # float: the rate over the last 30 days (`<metric>_30d`), NaN when unknown
    pace: np.ndarray  # int: new outcomes per `pace_days` the recovery assumes (recent orders, else the window's)
    pace_days: np.ndarray  # int: 7 where the recent orders give the pace, else the window's days
    headroom: np.ndarray  # int: more misses at this volume that would miss the standard (evaluated, not missing)
    recovery: np.ndarray  # int: good outcomes in a row that bring it back (missing now)
    recovery_days: np.ndarray  # int: days until no longer missed if every outcome from t is good (missing now)
    recovery_by_run: np.ndarray  # bool: back by the good run, as soon as the window turning over (missing now)
    recovery_unjudged: np.ndarray  # bool: too few outcomes remain to judge it before it is back (missing now)

    def __len__(self) -> int:
        return len(self.rate)


@lru_cache
def _fraction(threshold: float) -> tuple[int, int]:
    """The threshold as a/b, exactly as the policy writes it (0.02 -> 1/50, 0.9 -> 9/10)."""
    f = Fraction(repr(threshold))
    return f.numerator, f.denominator


Columns = pd.DataFrame | Mapping[str, np.ndarray]
"""A standing's inputs: a frame (a snapshot, request features) or numeric columns by name (a scorer's
rows of model inputs, float64, so one seller costs no pandas)."""

_NEVER = np.iinfo("int64").max  # days: does not happen
_LARGEST = np.finfo("float64").max


@dataclass(frozen=True)
class _Terms:
    """The policy's numbers for K standards, one row each (K x 1, to broadcast over the sellers), so
    every standard is worked out in the same array operations: a request's one seller pays numpy's
    per-call cost once, not once per standard. a / b: the threshold as a fraction."""

    threshold: np.ndarray  # float
    at_most: np.ndarray  # bool
    a: np.ndarray  # int
    b: np.ndarray  # int
    window_days: np.ndarray  # int
    min_count: np.ndarray  # int
    by_orders: np.ndarray  # bool: `counts_orders`


@lru_cache(maxsize=64)
def _terms(key: tuple[tuple[str, float, int, int, bool], ...]) -> _Terms:
    """The terms of the standards keyed (direction, threshold, window days, minimum count, counts orders)."""
    def col(values: list, dtype: str) -> np.ndarray:
        return np.asarray(values, dtype=dtype).reshape(-1, 1)
    fractions = [_fraction(t) for _, t, _, _, _ in key]
    return _Terms(col([t for _, t, _, _, _ in key], "float64"), col([d == "at_most" for d, *_ in key], "bool"),
                  col([a for a, _ in fractions], "int64"), col([b for _, b in fractions], "int64"),
                  col([w for _, _, w, _, _ in key], "int64"), col([m for *_, m, _ in key], "int64"),
                  col([o for *_, o in key], "bool"))


def _column(frame: Columns, name: str, n: int) -> np.ndarray:
    """A float feature column, all NaN when the frame does not carry it."""
    if name not in frame:
        return np.full(n, np.nan)
    col = frame[name]
    if isinstance(col, np.ndarray) and col.dtype == np.float64:
        return col
    return pd.to_numeric(col).to_numpy(dtype="float64", na_value=np.nan)


def _stacked(frame: Columns, names: list[str], n: int) -> np.ndarray:
    """Feature columns as K x n rows (a standard per row)."""
    return np.stack([_column(frame, c, n) for c in names]) if names else np.empty((0, n))


def _no_nan(x: np.ndarray) -> np.ndarray:
    """`np.nan_to_num(x)` (NaN: 0, an infinity: the largest float) in three array operations."""
    return np.minimum(np.maximum(np.where(np.isnan(x), 0.0, x), -_LARGEST), _LARGEST)


def standing(frame: Columns, metric: Metric) -> Standing:
    """Where each seller of `frame` (snapshot or request features) stands against `metric`; the 30-day
    rate and the recent orders are optional (NaN, and the window's own pace, without them)."""
    return _standings(frame, [metric])[0]


def standings(frame: Columns, policy: Policy) -> dict[str, Standing]:
    """Every standard of the policy, in policy order."""
    return dict(zip(policy.metrics, _standings(frame, list(policy.metrics.values()))))


def _standings(frame: Columns, metrics: list[Metric]) -> list[Standing]:
    """`standing` of each metric, worked out together (K x n arrays, one row per standard)."""
    if not metrics:
        return []
    t = _terms(tuple((m.direction, m.threshold, m.window_days, m.min_count, counts_orders(m)) for m in metrics))
    names = [m.name for m in metrics]
    n = len(frame[f"{names[0]}_volume"])
    volume = _stacked(frame, [f"{m}_volume" for m in names], n)
    volume = np.where(np.isnan(volume), 0, volume).astype("int64")
    gap = _stacked(frame, [f"{m}_gap" for m in names], n)
    # the pipeline's own rule: a rate past the threshold is a gap above zero, exactly (see features.pipeline.spec)
    rate = np.where(t.at_most, t.threshold + gap, t.threshold - gap)
    rate = np.where(volume > 0, rate, np.nan)
    count = np.where(volume > 0, np.rint(_no_nan(rate) * volume), 0).astype("int64")
    evaluated = volume >= t.min_count
    missing = evaluated & (gap > 0)  # NaN: not past it
    # at most a/b misses: count / volume <= a / b; at least a/b good outcomes: count / volume >= a / b
    room = np.where(t.at_most, t.a * volume - t.b * count, t.b * count - t.a * volume)
    headroom = room // t.b + 1  # least k more misses past the threshold
    den = np.where(t.at_most, t.a, t.b - t.a)  # least g good outcomes back within it (none when den is 0)
    recovery = np.where(den != 0, -(room // np.maximum(den, 1)), -1)
    headroom = np.where(evaluated & ~missing, headroom, -1).astype("int64")
    recovery = np.where(missing, recovery, -1).astype("int64")
    recent = np.where(t.by_orders, _column(frame, RECENT_ORDERS, n), np.nan)
    known = ~np.isnan(recent)
    pace = np.where(known, _no_nan(recent), volume).astype("int64")
    pace_days = np.where(known, RECENT_DAYS, t.window_days).astype("int64")
    days, by_run, unjudged = _recovery_days(t, volume, count, missing, recovery, pace, pace_days)
    trend, recent_rate = _stacked(frame, [f"{m}_trend" for m in names], n), _stacked(frame, [f"{m}_30d" for m in names], n)
    return [Standing(m, rate[k], volume[k], count[k], evaluated[k], missing[k], trend[k], recent_rate[k], pace[k],
                     pace_days[k], headroom[k], recovery[k], days[k], by_run[k], unjudged[k])
            for k, m in enumerate(metrics)]


def _ceil_div(num: np.ndarray, den: np.ndarray | int) -> np.ndarray:
    return -(-num // den)


def _recovery_days(t: _Terms, volume: np.ndarray, count: np.ndarray, missing: np.ndarray,
                   recovery: np.ndarray, pace: np.ndarray, pace_days: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole days (at least one) until a missed standard is no longer missed if every outcome from t on
    is good, new outcomes arriving at `pace` per `pace_days`: the soonest of the good run, the window
    turning over and the window leaving judgement (the module's docstring, in exact integers); and
    whether that is the run, or leaving judgement."""
    a, q = t.a, t.b
    p = np.where(t.at_most, a, q - a)
    bad = np.where(t.at_most, count, volume - count)
    w, m, dd = t.window_days, t.min_count, pace_days
    ok = missing & (volume > 0) & (bad > 0)  # missing with volume implies bad > 0; guarded all the same
    over = q * bad - p * volume  # > 0 where missing
    slows = volume * dd > pace * w  # the window's volume shrinks: it may leave judgement first
    turnover = np.where(pace > 0, np.maximum(1, _ceil_div(w * dd * over, np.maximum(dd * over + p * w * pace, 1))),
                        _NEVER)
    run = np.where((pace > 0) & (recovery >= 0), np.maximum(1, _ceil_div(recovery * dd, np.maximum(pace, 1))), _NEVER)
    leave = np.where(slows, np.maximum(1, _ceil_div(w * dd * (volume - m + 1), np.maximum(volume * dd - pace * w, 1))),
                     _NEVER)
    back = np.minimum(run, turnover)
    unjudged = ok & (leave < back)
    by_run = ok & ~unjudged & (run <= turnover)
    days = np.where(ok, np.minimum(back, leave), -1)
    return days.astype("int64"), by_run, unjudged


def evaluation_days(days: np.ndarray, every_days: int) -> np.ndarray:
    """Days from t to the first evaluation on or after t + `days` (evaluations every `every_days`
    from t); -1 stays -1."""
    days = np.asarray(days, dtype="int64")
    return np.where(days >= 0, _ceil_div(days, every_days) * every_days, -1)


def back_by(days: np.ndarray, as_of: np.ndarray, every_days: int) -> np.ndarray:
    """The evaluation date by which a missed standard is no longer missed, back within it or no longer
    judged (`Standing.recovery_days` of some rows, their as-of dates: date, datetime64 or None), as
    datetime64[D]; NaT where as_of is unknown or nothing is missed."""
    offset = evaluation_days(days, every_days)
    t = np.asarray(as_of, dtype=object).astype("datetime64[D]")
    return np.where(offset >= 0, t + np.maximum(offset, 0).astype("timedelta64[D]"), np.datetime64("NaT", "D"))


def missed_now(by_standard: dict[str, Standing]) -> list[list[str]]:
    """Per seller, the standards missed at t (policy order); empty: compliant now."""
    names = list(by_standard)
    if not names:
        return []
    missing = np.column_stack([by_standard[m].missing for m in names])
    return [[names[j] for j in np.flatnonzero(row)] for row in missing]
