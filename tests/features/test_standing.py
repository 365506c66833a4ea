"""Where a seller stands against each standard: headroom and recovery counts, the days until a missed
standard is back and the evaluation it lands on, checked on hand-worked numbers and, for sellers of the
simulated marketplace, recounted by hand from the events."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction
from math import ceil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.policy.definition import Policy
from features.pipeline.snapshots import read_snapshots
from features.policy.standing import back_by, missed_now, reason_text, recovery_text, standing, standings
from tests.reference import measure_events, read_tables


def _frame(metric, counts_volumes: list[tuple[int, int]], trend: float = 0.009) -> pd.DataFrame:
    """Request-like features for a metric from (count, volume) pairs, computed as the pipeline does."""
    rows = []
    for count, volume in counts_volumes:
        rate = count / volume if volume else np.nan
        gap = (rate - metric.threshold) if metric.direction == "at_most" else -(rate - metric.threshold)
        rows.append({f"{metric.name}_volume": volume, f"{metric.name}_gap": gap, f"{metric.name}_trend": trend})
    return pd.DataFrame(rows)


def test_cancellations_hand_worked(policy: Policy) -> None:
    m = policy.metrics["cancellation_rate"]  # at most 2%, judged from 50 orders
    s = standing(_frame(m, [(1, 50), (1, 100), (3, 100), (2, 40), (0, 0)]), m)
    assert s.evaluated.tolist() == [True, True, True, False, False]
    assert s.missing.tolist() == [False, False, True, False, False]
    assert s.headroom.tolist() == [1, 2, -1, -1, -1]  # 1 of 50: a 2nd reaches 4% > 2%; 1 of 100: 2 more make 3%
    assert s.recovery.tolist() == [-1, -1, 50, -1, -1]  # 3 of 100: 3/150 = 2% needs 50 clean orders
    assert reason_text(s, 1) == ("Seller cancellations 1.0% of 100 orders in the last 30 days (standard: at most 2%), "
                                 "up 0.9 points on the 30 days before; 2 more cancellations at this volume would miss it")
    assert reason_text(s, 3).endswith("at this rate it would miss it once 50 orders are judged")
    assert recovery_text(s, 2, date(2025, 12, 29)) == (
        "Seller cancellations 3.0% of 100 orders in the last 30 days (standard: at most 2%), up 0.9 points on the "
        "30 days before: missing it; back within 2% by the evaluation of 2026-01-12 if every order from now on is "
        "good (its 3 cancellations leave the 30-day window by 2026-01-28 at the latest)")


def test_on_time_deliveries_hand_worked(policy: Policy) -> None:
    m = policy.metrics["on_time_delivery_rate"]  # at least 90%
    s = standing(_frame(m, [(95, 100), (90, 100), (85, 100), (45, 50)], trend=-0.031), m)
    assert s.missing.tolist() == [False, False, True, False]
    assert s.headroom.tolist() == [6, 1, -1, 1]  # 95 of 100: 6 late ones make 89%; exactly 90%: one more misses
    assert s.recovery.tolist() == [-1, -1, 50, -1]  # 85 of 100: (85 + 50) / 150 = 90%
    assert "down 3.1 points" in reason_text(s, 0) and "6 more late deliveries at this volume" in reason_text(s, 0)
    assert "1 more late delivery at this volume" in reason_text(s, 1)


def _days_back(m, bad: int, volume: int, run: int | None) -> int:
    """Whole days until back if every outcome from t is good, by Fractions: the window turning over
    (bad outcomes spread evenly leave it: d >= W * (1 - T * volume / bad), T the share of bad allowed)
    or the good run at the window's daily volume, whichever is sooner (at least a day)."""
    allowed = Fraction(repr(m.threshold)) if m.direction == "at_most" else 1 - Fraction(repr(m.threshold))
    turnover = max(1, ceil(m.window_days * (1 - allowed * volume / bad)))
    return turnover if run is None else min(turnover, max(1, ceil(Fraction(run * m.window_days, volume))))


def test_recovery_when_the_window_turns_over_sooner(policy: Policy) -> None:
    """3 cancellations of 100 orders (30 days, at most 2%): the run needs 50 clean orders, 15 days at
    100 orders a month; spread evenly, the window holds 3 * (30 - d) / 30 of 100 orders, within 2 once
    d >= 10: back at the evaluation 14 days on, and the 3 leave the window 30 days on at the latest."""
    m = policy.metrics["cancellation_rate"]
    s = standing(_frame(m, [(3, 100)], trend=np.nan), m)
    assert (s.recovery[0], s.recovery_days[0], bool(s.recovery_by_run[0])) == (50, 10, False)
    t = date(2026, 11, 29)
    assert back_by(s.recovery_days, np.array([t]), 7).astype(object).tolist() == [date(2026, 12, 13)]
    assert back_by(s.recovery_days, np.array([None]), 7).astype(object).tolist() == [None]
    assert recovery_text(s, 0, t, 7) == (
        "Seller cancellations 3.0% of 100 orders in the last 30 days (standard: at most 2%): missing it; back within "
        "2% by the evaluation of 2026-12-13 if every order from now on is good (its 3 cancellations leave the "
        "30-day window by 2026-12-29 at the latest)")
    assert recovery_text(s, 0) == (  # features sent by a caller: no as-of date, so days
        "Seller cancellations 3.0% of 100 orders in the last 30 days (standard: at most 2%): missing it; back within "
        "2% in about 1 week if every order from now on is good (its 3 cancellations leave the 30-day window within "
        "30 days at the latest)")


def test_recovery_when_the_good_run_is_as_soon(policy: Policy) -> None:
    """61 cancellations of 3,000 orders: 50 clean orders bring it back (61 / 3,050 = 2%), half a day at 100
    orders a day; the window turning over needs 30 * (1 - 60 / 61) = 0.49 days: both land on day 1, and
    the run is the thing to ask for."""
    m = policy.metrics["cancellation_rate"]
    s = standing(_frame(m, [(61, 3000)], trend=np.nan), m)
    assert (s.recovery[0], s.recovery_days[0], bool(s.recovery_by_run[0])) == (50, 1, True)
    assert recovery_text(s, 0, date(2026, 11, 29), 7) == (
        "Seller cancellations 2.0% of 3,000 orders in the last 30 days (standard: at most 2%): missing it; needs 50 "
        "orders without a cancellation in a row, about 1 day at 700 orders a week: back by the evaluation of "
        "2026-12-06")


def test_recovery_of_an_at_least_standard(policy: Policy) -> None:
    """On-time deliveries 85 of 100 (at least 90%): 15 late ones, 10 allowed per 100; spread evenly the
    window holds 15 * (30 - d) / 30 late of 100, at most 10 once d >= 10 (the run: 50 on-time, 15 days).
    70 of 100: 30 late, back once d >= 20, evaluated 21 days on."""
    m = policy.metrics["on_time_delivery_rate"]
    s = standing(_frame(m, [(85, 100), (70, 100), (95, 100)], trend=-0.031), m)
    assert s.recovery.tolist() == [50, 200, -1]
    assert s.recovery_days.tolist() == [10, 20, -1] and s.recovery_by_run.tolist() == [False, False, False]
    t = date(2026, 11, 29)
    assert back_by(s.recovery_days, np.array([t] * 3), 7).astype(object).tolist() == [
        date(2026, 12, 13), date(2026, 12, 20), None]
    assert recovery_text(s, 0, t, 7) == (
        "On-time deliveries 85.0% of 100 delivered orders in the last 30 days (standard: at least 90%), down 3.1 "
        "points on the 30 days before: missing it; back to at least 90% by the evaluation of 2026-12-13 if every "
        "delivered order from now on is good (its 15 late deliveries leave the 30-day window by 2026-12-29 at the "
        "latest)")


def test_recovery_when_no_good_run_helps(policy: Policy) -> None:
    """At most 0% cancellations: no run of clean orders helps while the one cancellation is in the
    window; it leaves 30 days on at the latest, evaluated 35 days on."""
    m = policy.metrics["cancellation_rate"].model_copy(update={"threshold": 0.0})
    s = standing(_frame(m, [(1, 100)], trend=np.nan), m)
    assert (s.recovery[0], s.recovery_days[0], bool(s.recovery_by_run[0])) == (-1, 30, False)
    assert recovery_text(s, 0, date(2026, 11, 29), 7) == (
        "Seller cancellations 1.0% of 100 orders in the last 30 days (standard: at most 0%): missing it; back within "
        "0% by the evaluation of 2027-01-03 if every order from now on is good (its 1 cancellation leaves the 30-day "
        "window by 2026-12-29 at the latest); no number of orders without a cancellation in a row brings it back "
        "while they are in the window")


@pytest.mark.parametrize("threshold_case", range(200))
def test_counts_are_the_least_that_cross(policy: Policy, threshold_case: int) -> None:
    """Brute force: the headroom is the least k that misses, the recovery the least g that recovers."""
    rng = np.random.default_rng(threshold_case)
    m = policy.metrics[list(policy.metrics)[threshold_case % len(policy.metrics)]]
    volume = int(rng.integers(m.min_count, 400))
    count = int(rng.integers(0, volume + 1))
    s = standing(_frame(m, [(count, volume)]), m)
    bad = m.direction == "at_most"
    if s.missing[0]:
        g = next(g for g in range(10**6) if not m.misses((count + (0 if bad else g)) / (volume + g)))
        assert s.recovery[0] == g
        assert s.recovery_days[0] == _days_back(m, count if bad else volume - count, volume, g)
    else:
        k = next(k for k in range(1, volume + 2) if m.misses((count + k if bad else count - k) / volume))
        assert s.headroom[0] == k


def test_recovery_and_headroom_recounted_from_the_events(marketplace, feature_dir: Path, policy: Policy) -> None:
    """For sellers of the latest snapshot, the counts behind the sentences equal the events counted by
    hand over the standard's window, and missed-now equals the pipeline's own miss flags. For every
    seller missing a standard, the way back is recomputed from those counts: the good run, the days
    until back if every outcome from t is good, and the evaluation date that lands on."""
    snap = read_snapshots(feature_dir)
    t = snap["as_of"].max()
    latest = snap[snap["as_of"] == t].reset_index(drop=True)
    by = standings(latest, policy)
    assert [sorted(x) for x in missed_now(by)] == [
        sorted(x.split(",")) if x else [] for x in latest["misses_at_t"].fillna("")]
    events = measure_events(read_tables(marketplace[0]))
    m = policy.metrics["cancellation_rate"]
    end = pd.Timestamp(t)
    window = events[(events["time"] > end - pd.Timedelta(days=m.window_days)) & (events["time"] <= end)
                    & events["channel"].isin(m.channels)]
    counted = window.pivot_table(index="seller_id", columns="measure", values="time", aggfunc="count", fill_value=0)
    s = by["cancellation_rate"]
    checked = 0
    for i in np.flatnonzero(s.evaluated)[:200]:
        seller = latest.loc[i, "seller_id"]
        n = int(counted.loc[seller, "seller_cancelled_orders"]) if seller in counted.index else 0
        v = int(counted.loc[seller, "orders"]) if seller in counted.index else 0
        assert (s.count[i], s.volume[i]) == (n, v), seller
        if s.missing[i]:
            assert s.recovery[i] == next(g for g in range(10**6) if n / (v + g) <= m.threshold)
        else:
            assert s.headroom[i] == next(k for k in range(1, v + 2) if (n + k) / v > m.threshold)
        checked += 1
    assert checked > 50 and s.missing.any()
    every, day = policy.evaluation_every_days, end.date()
    recovered = 0
    for name, m in policy.metrics.items():
        s = by[name]
        window = events[(events["time"] > end - pd.Timedelta(days=m.window_days)) & (events["time"] <= end)
                        & events["channel"].isin(m.channels)]
        counted = window.pivot_table(index="seller_id", columns="measure", values="time", aggfunc="count")
        counted = counted.reindex(columns=[*m.numerator, m.denominator]).fillna(0).astype(int)
        for i in np.flatnonzero(s.missing):
            seller = latest.loc[i, "seller_id"]
            n = int(counted.loc[seller, list(m.numerator)].sum()) if seller in counted.index else 0
            v = int(counted.loc[seller, m.denominator]) if seller in counted.index else 0
            assert (s.count[i], s.volume[i]) == (n, v), (name, seller)
            bad = n if m.direction == "at_most" else v - n
            g = next(g for g in range(10**6) if not m.misses((n + (0 if m.direction == "at_most" else g)) / (v + g)))
            days = _days_back(m, bad, v, g)
            back = day + timedelta(days=ceil(days / every) * every)
            assert (s.recovery[i], s.recovery_days[i]) == (g, days), (name, seller)
            assert back_by(s.recovery_days[[i]], np.array([day]), every).astype(object).tolist() == [back]
            text = recovery_text(s, i, day, every)
            assert f"by the evaluation of {back}" in text, text
            recovered += 1
    assert recovered > 20
