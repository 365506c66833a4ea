"""Where a seller stands against each standard at t, from its snapshot features alone (so the HTTP
service, which is sent features, and the batch job, which reads snapshots, agree): the rate over the
standard's window and the volume it is judged on, whether it is evaluated and missed now, its trend,
the headroom (how many more misses at this volume would break it) and, for a standard missed now,
the recovery: how many good orders in a row bring it back, and when it is back if every outcome from
t on is good (by that run, or by its bad outcomes leaving the window, whichever is sooner) together
with the evaluation date that lands on.

Counts are exact: thresholds are read as the decimals the policy file gives (0.02 = 1/50), so "one
more cancellation would miss it" is integer arithmetic, never a rounding accident. Column-wise over
numpy arrays, so a million sellers cost a few array passes.

What the recovery estimate assumes: the feature vector has no dates of single orders, so the window's
volume and bad outcomes are taken as spread evenly over its days, and new outcomes as arriving at the
window's daily volume (the seller's recent volume stays steady). After d days of good outcomes the
window then holds bad * (W - d) / W bad of the same volume, so it is back once d >= W * (1 - T * volume
/ bad), T the share of bad outcomes allowed (an at-least standard: bad = volume - good, T = 1 - its
threshold). The good-run count is exact if nothing left the window; under an even spread the outcomes
leaving it are worse than the standard, so the window turning over is never later than the run, and
the run is shown when it lands on the same day (it is the concrete thing to ask for). Whatever the
spread, the window has fully turned over W days after t: that bound assumes only steady volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

import numpy as np
import pandas as pd

from features.platform.formatting import percent
from features.policy.definition import Metric, Policy

UNITS = {"orders": "orders", "shipped_orders": "shipped orders", "delivered_orders": "delivered orders",
         "contacts_due": "customer messages"}
"""What a standard's volume counts, in a reviewer's words (by the policy's denominator measure)."""

FLAT = 0.0005
"""A trend smaller than this (0.05 points) reads as flat."""


def units(metric: Metric) -> str:
    """What the standard's volume counts: "orders", "delivered orders", "customer messages"."""
    return UNITS.get(metric.denominator, metric.denominator.replace("_", " "))


@dataclass(frozen=True)
class Standing:
    """One standard for n sellers, column-wise. `count` is the numerator over the window: misses for
    an at-most standard (cancellations), good outcomes for an at-least one (on-time deliveries).
    `headroom`, `recovery` and `recovery_days` are -1 where they do not apply."""

    metric: Metric
    rate: np.ndarray  # float, NaN without volume
    volume: np.ndarray  # int
    count: np.ndarray  # int
    evaluated: np.ndarray  # bool: volume at least the policy's minimum
    missing: np.ndarray  # bool: evaluated and past the threshold
    trend: np.ndarray  # float: last 30 days minus the 30 before, NaN when unknown
    headroom: np.ndarray  # int: more misses at this volume that would miss the standard (evaluated, not missing)
    recovery: np.ndarray  # int: good outcomes in a row that bring it back (missing now)
    recovery_days: np.ndarray  # int: days until back within it if every outcome from t is good (missing now)
    recovery_by_run: np.ndarray  # bool: the good run is back as soon as the window turning over (missing now)

    def __len__(self) -> int:
        return len(self.rate)


def _fraction(threshold: float) -> tuple[int, int]:
    """The threshold as a/b, exactly as the policy writes it (0.02 -> 1/50, 0.9 -> 9/10)."""
    f = Fraction(repr(threshold))
    return f.numerator, f.denominator


def standing(frame: pd.DataFrame, metric: Metric) -> Standing:
    """Where each seller of `frame` (snapshot or request features) stands against `metric`."""
    n = metric.name
    volume = pd.to_numeric(frame[f"{n}_volume"]).fillna(0).to_numpy(dtype="int64")
    gap = pd.to_numeric(frame[f"{n}_gap"]).to_numpy(dtype="float64", na_value=np.nan)
    at_most = metric.direction == "at_most"
    # the pipeline's own rule: a rate past the threshold is a gap above zero, exactly (see features.pipeline.spec)
    rate = metric.threshold + gap if at_most else metric.threshold - gap
    rate = np.where(volume > 0, rate, np.nan)
    count = np.where(volume > 0, np.rint(np.nan_to_num(rate) * volume), 0).astype("int64")
    evaluated = volume >= metric.min_count
    missing = evaluated & (np.nan_to_num(gap, nan=-1.0) > 0)
    trend = pd.to_numeric(frame[f"{n}_trend"]).to_numpy(dtype="float64", na_value=np.nan)
    a, b = _fraction(metric.threshold)
    if at_most:  # misses: count / volume <= a / b
        headroom = (a * volume - b * count) // b + 1  # least k with count + k > T * volume
        recovery = -((a * volume - b * count) // a) if a else np.full(len(volume), -1)  # least g: count/(volume+g) <= T
    else:  # good outcomes: count / volume >= a / b
        headroom = (b * count - a * volume) // b + 1  # least k with count - k < T * volume
        recovery = -((b * count - a * volume) // (b - a)) if b != a else np.full(len(volume), -1)
    headroom = np.where(evaluated & ~missing, headroom, -1)
    recovery = np.where(missing, recovery, -1)
    days, by_run = _recovery_days(metric, volume, count, missing, recovery)
    return Standing(metric, rate, volume, count, evaluated, missing, trend, headroom.astype("int64"),
                    recovery.astype("int64"), days, by_run)


def _ceil_div(num: np.ndarray, den: np.ndarray | int) -> np.ndarray:
    return -(-num // den)


def _recovery_days(metric: Metric, volume: np.ndarray, count: np.ndarray, missing: np.ndarray,
                   recovery: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whole days until a missed standard is back if every outcome from t on is good, at the window's
    daily volume: the sooner of the good run (`recovery` outcomes at volume / W a day) and the window
    turning over (bad outcomes spread evenly leave it, d >= W * (1 - T * volume / bad)); and whether
    the run is as soon. Exact integers: the threshold on bad outcomes is p/q (at most a/b: a/b; at
    least a/b: (b - a)/b), so d >= W * (q * bad - p * volume) / (q * bad)."""
    a, q = _fraction(metric.threshold)
    p = a if metric.direction == "at_most" else q - a
    bad = count if metric.direction == "at_most" else volume - count
    w = metric.window_days
    ok = missing & (volume > 0) & (bad > 0)  # missing with volume implies bad > 0; guarded all the same
    turnover = np.maximum(1, _ceil_div(w * (q * bad - p * volume), np.maximum(q * bad, 1)))
    run = np.maximum(1, _ceil_div(recovery * w, np.maximum(volume, 1)))
    by_run = ok & (recovery >= 0) & (run <= turnover)
    days = np.where(ok, np.where(by_run, run, turnover), -1)
    return days.astype("int64"), by_run


def evaluation_days(days: np.ndarray, every_days: int) -> np.ndarray:
    """Days from t to the first evaluation on or after t + `days` (evaluations every `every_days`
    from t); -1 stays -1."""
    days = np.asarray(days, dtype="int64")
    return np.where(days >= 0, _ceil_div(days, every_days) * every_days, -1)


def back_by(days: np.ndarray, as_of: np.ndarray, every_days: int) -> np.ndarray:
    """The evaluation date by which a missed standard is back (`Standing.recovery_days` of some rows,
    their as-of dates: date, datetime64 or None), as datetime64[D]; NaT where as_of is unknown or
    nothing is missed."""
    offset = evaluation_days(days, every_days)
    t = np.asarray(as_of, dtype=object).astype("datetime64[D]")
    return np.where(offset >= 0, t + np.maximum(offset, 0).astype("timedelta64[D]"), np.datetime64("NaT", "D"))


def standings(frame: pd.DataFrame, policy: Policy) -> dict[str, Standing]:
    """Every standard of the policy, in policy order."""
    return {name: standing(frame, m) for name, m in policy.metrics.items()}


def missed_now(by_standard: dict[str, Standing]) -> list[list[str]]:
    """Per seller, the standards missed at t (policy order); empty: compliant now."""
    names = list(by_standard)
    if not names:
        return []
    missing = np.column_stack([by_standard[m].missing for m in names])
    return [[names[j] for j in np.flatnonzero(row)] for row in missing]


def _trend_words(trend: float) -> str:
    if trend != trend:
        return ""
    if abs(trend) < FLAT:
        return ", flat on the 30 days before"
    return f", {'up' if trend > 0 else 'down'} {abs(trend) * 100:.1f} points on the 30 days before"


def _count(k: int, words: tuple[str, str]) -> str:
    return f"{k:,} {words[0] if k == 1 else words[1]}"


def _duration(days: int) -> str:
    if days < 7:
        return f"{days} day{'' if days == 1 else 's'}"
    weeks = int(days / 7 + 0.5)
    return f"{weeks} week{'' if weeks == 1 else 's'}"


# ------------------------------------------------------------------ the words, column-wise
# A batch of a million sellers words a few million reasons: each function takes the rows of one
# standard and binds the standard's own words once. The one-seller forms below call these.


def status_texts(s: Standing, rows: np.ndarray) -> list[str]:
    """The standard's value, volume, standard and trend: "Seller cancellations 1.6% of 82 orders in the
    last 30 days (standard: at most 2%), up 0.9 points on the 30 days before"."""
    m = s.metric
    u, label, window, standard = units(m), m.label, m.window_days, m.standard_text
    judged_from = f", judged from {m.min_count:,} {u}"
    no_volume = f"{label}: no {u} in the last {window} days (standard: {standard})"
    return [no_volume if vol == 0 else
            (f"{label} {rate:.1%} of {vol:,} {u} in the last {window} days "
             f"(standard: {standard}{'' if evaluated else judged_from}){_trend_words(trend)}")
            for vol, rate, trend, evaluated in zip(s.volume[rows].tolist(), s.rate[rows].tolist(),
                                                   s.trend[rows].tolist(), s.evaluated[rows].tolist())]


def reason_texts(s: Standing, rows: np.ndarray) -> list[str]:
    """Behaviour reasons for a standard at risk, in a reviewer's words: value, standard, trend, and the
    headroom ("1 more cancellation at this volume would miss it")."""
    m = s.metric
    u = units(m)
    would_miss = f"at this rate it would miss it once {m.min_count:,} {u} are judged"
    one, many = m.miss_words
    out = []
    for status, vol, rate, evaluated, missing, k in zip(
            status_texts(s, rows), s.volume[rows].tolist(), s.rate[rows].tolist(), s.evaluated[rows].tolist(),
            s.missing[rows].tolist(), s.headroom[rows].tolist()):
        if missing:
            room = "missing it now"
        elif not evaluated:
            room = would_miss if vol and m.misses(rate) else f"not judged yet: {vol:,} of the {m.min_count:,} {u} it needs"
        else:
            room = f"{k:,} more {one if k == 1 else many} at this volume would miss it"
        out.append(f"{status}; {room}")
    return out


def recovery_texts(s: Standing, rows: np.ndarray, as_of: np.ndarray | list, every_days: int = 7) -> list[str]:
    """When a missed standard is back if every outcome from t on is good, the sooner way (t = 2026-11-29):
    "Seller cancellations 3.7% of 82 orders in the last 30 days (standard: at most 2%): missing it; back
    within 2% by the evaluation of 2026-12-13 if every order from now on is good (its 3 cancellations
    leave the 30-day window by 2026-12-29 at the latest)", or, when the run of good outcomes is as soon
    (61 of 3,000 orders), "...: missing it; needs 50 orders without a cancellation in a row, about 1 day
    at 700 orders a week: back by the evaluation of 2026-12-06". `as_of`: each row's date, None for
    features sent by a caller, whose path says days, not dates."""
    m = s.metric
    u, w = units(m), m.window_days
    unit = u[:-1] if u.endswith("s") else u
    at_most = m.direction == "at_most"
    within = f"within {percent(m.threshold)}" if at_most else f"to at least {percent(m.threshold)}"
    never = f"; no number of {m.keep_words[1]} in a row brings it back while they are in the window"
    days = s.recovery_days[rows]
    out = []
    for status, t, missing, d, offset, by_run, needed, vol, count in zip(
            status_texts(s, rows), as_of, s.missing[rows].tolist(), days.tolist(),
            evaluation_days(days, every_days).tolist(), s.recovery_by_run[rows].tolist(), s.recovery[rows].tolist(),
            s.volume[rows].tolist(), s.count[rows].tolist()):
        if not missing:
            out.append(f"{status}: not missing it now")
            continue
        if d < 0:
            out.append(f"{status}: missing it; with no {u} in the window nothing says when it is back")
            continue
        evaluation = t + timedelta(days=offset) if t else None
        if by_run:
            when = f": back by the evaluation of {evaluation}" if evaluation else ""
            weekly = float(vol) * 7.0 / w  # the window's volume spread over its weeks
            out.append(f"{status}: missing it; needs {_count(needed, m.keep_words)} in a row, about {_duration(d)} "
                       f"at {weekly:,.0f} {u} a week{when}")
            continue
        bad = count if at_most else vol - count
        back = f"by the evaluation of {evaluation}" if evaluation else f"in about {_duration(d)}"
        gone = f"by {t + timedelta(days=w)}" if t else f"within {w} days"
        out.append(f"{status}: missing it; back {within} {back} if every {unit} from now on is good (its "
                   f"{_count(bad, m.miss_words)} {'leaves' if bad == 1 else 'leave'} the {w}-day window {gone} "
                   f"at the latest){never if needed < 0 else ''}")
    return out


def reason_text(s: Standing, i: int) -> str:
    """`reason_texts` of one seller."""
    return reason_texts(s, np.array([i]))[0]


def recovery_text(s: Standing, i: int, as_of: date | None = None, every_days: int = 7) -> str:
    """`recovery_texts` of one seller."""
    return recovery_texts(s, np.array([i]), [as_of], every_days)[0]
