"""Where a seller stands against each standard at t, from its snapshot features alone (so the HTTP
service, which is sent features, and the batch job, which reads snapshots, agree): the rate over the
standard's window and the volume it is judged on, whether it is evaluated and missed now, its trend,
the headroom (how many more misses at this volume would break it) and, for a standard missed now,
the recovery (how many good orders in a row bring it back).

Counts are exact: thresholds are read as the decimals the policy file gives (0.02 = 1/50), so "one
more cancellation would miss it" is integer arithmetic, never a rounding accident. Column-wise over
numpy arrays, so a million sellers cost a few array passes.

What is left out, on purpose: older orders leaving the window meanwhile (they can help or hurt; the
feature vector has no dates of single orders), so a recovery count is the number of good orders in a
row at the seller's recent volume if nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

import numpy as np
import pandas as pd

from features.formatting import percent
from features.policy import Metric, Policy

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
    `headroom` and `recovery` are -1 where they do not apply."""

    metric: Metric
    rate: np.ndarray  # float, NaN without volume
    volume: np.ndarray  # int
    count: np.ndarray  # int
    evaluated: np.ndarray  # bool: volume at least the policy's minimum
    missing: np.ndarray  # bool: evaluated and past the threshold
    trend: np.ndarray  # float: last 30 days minus the 30 before, NaN when unknown
    headroom: np.ndarray  # int: more misses at this volume that would miss the standard (evaluated, not missing)
    recovery: np.ndarray  # int: good outcomes in a row that bring it back (missing now)

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
    # the pipeline's own rule: a rate past the threshold is a gap above zero, exactly (see features.spec)
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
    return Standing(metric, rate, volume, count, evaluated, missing, trend, headroom.astype("int64"),
                    recovery.astype("int64"))


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


def weekly_volume(s: Standing, i: int) -> float:
    """The seller's recent volume per week for this standard (its window's volume spread over its weeks)."""
    return float(s.volume[i]) * 7.0 / s.metric.window_days


def status_text(s: Standing, i: int) -> str:
    """The standard's value, volume, standard and trend: "Seller cancellations 1.6% of 82 orders in the
    last 30 days (standard: at most 2%), up 0.9 points on the 30 days before"."""
    m = s.metric
    if s.volume[i] == 0:
        return f"{m.label}: no {units(m)} in the last {m.window_days} days (standard: {m.standard_text})"
    judged = "" if s.evaluated[i] else f", judged from {m.min_count:,} {units(m)}"
    return (f"{m.label} {percent_1(s.rate[i])} of {s.volume[i]:,} {units(m)} in the last {m.window_days} days "
            f"(standard: {m.standard_text}{judged}){_trend_words(s.trend[i])}")


def percent_1(rate: float) -> str:
    """A measured rate, to one decimal (1.6%)."""
    return f"{rate:.1%}"


def headroom_text(s: Standing, i: int) -> str:
    """How close the standard is: "1 more cancellation at this volume would miss it"."""
    m = s.metric
    if s.missing[i]:
        return "missing it now"
    if not s.evaluated[i]:
        if s.volume[i] and m.misses(float(s.rate[i])):
            return f"at this rate it would miss it once {m.min_count:,} {units(m)} are judged"
        return f"not judged yet: {s.volume[i]:,} of the {m.min_count:,} {units(m)} it needs"
    k = int(s.headroom[i])
    return f"{k:,} more {m.miss_words[0] if k == 1 else m.miss_words[1]} at this volume would miss it"


def reason_text(s: Standing, i: int) -> str:
    """A behaviour reason for a standard at risk, in a reviewer's words: value, standard, trend, headroom."""
    return f"{status_text(s, i)}; {headroom_text(s, i)}"


def recovery_text(s: Standing, i: int, as_of: date | None = None, every_days: int = 7) -> str:
    """What brings a missed standard back: "needs 53 orders without a cancellation in a row (about 4
    weeks at 14 orders a week: the evaluation of 2026-01-26), not counting older orders leaving the window"."""
    m = s.metric
    g = int(s.recovery[i])
    if g < 0:
        return f"{m.label}: no number of good {units(m)} brings it back within {m.standard_text} alone"
    weekly = weekly_volume(s, i)
    when = ""
    if weekly > 0:
        weeks = max(1, int(np.ceil(g / weekly)))
        evaluation = f": the evaluation of {as_of + timedelta(days=every_days * weeks)}" if as_of else ""
        when = f" (about {weeks} week{'s' if weeks > 1 else ''} at {weekly:,.0f} {units(m)} a week{evaluation})"
    return (f"{status_text(s, i)}: missing it; needs {_count(g, m.keep_words)} in a row to get back within "
            f"{percent(m.threshold)}{when}, not counting older {units(m)} leaving the window")


def reason_texts(s: Standing, rows: np.ndarray) -> list[str]:
    """`reason_text` for many sellers of one standard, word for word, with the standard's own words
    bound once (a batch of a million sellers words a few million reasons)."""
    m = s.metric
    u, label, window, standard = units(m), m.label, m.window_days, m.standard_text
    judged_from = f", judged from {m.min_count:,} {u}"
    no_volume = f"{label}: no {u} in the last {window} days (standard: {standard})"
    would_miss = f"at this rate it would miss it once {m.min_count:,} {u} are judged"
    one, many = m.miss_words
    out = []
    for vol, rate, trend, evaluated, missing, k in zip(
            s.volume[rows].tolist(), s.rate[rows].tolist(), s.trend[rows].tolist(), s.evaluated[rows].tolist(),
            s.missing[rows].tolist(), s.headroom[rows].tolist()):
        if vol == 0:
            status = no_volume
        else:
            status = (f"{label} {rate:.1%} of {vol:,} {u} in the last {window} days "
                      f"(standard: {standard}{'' if evaluated else judged_from}){_trend_words(trend)}")
        if missing:
            room = "missing it now"
        elif not evaluated:
            room = would_miss if vol and m.misses(rate) else f"not judged yet: {vol:,} of the {m.min_count:,} {u} it needs"
        else:
            room = f"{k:,} more {one if k == 1 else many} at this volume would miss it"
        out.append(f"{status}; {room}")
    return out
