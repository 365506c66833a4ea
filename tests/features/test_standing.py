"""Where a seller stands against each standard: headroom and recovery counts, checked on hand-worked
numbers and, for sellers of the simulated marketplace, recounted by hand from the events."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.policy import Policy
from features.snapshots import read_snapshots
from features.standing import missed_now, reason_text, recovery_text, standing, standings
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
        "30 days before: missing it; needs 50 orders without a cancellation in a row to get back within 2% (about "
        "3 weeks at 23 orders a week: the evaluation of 2026-01-19), not counting older orders leaving the window")


def test_on_time_deliveries_hand_worked(policy: Policy) -> None:
    m = policy.metrics["on_time_delivery_rate"]  # at least 90%
    s = standing(_frame(m, [(95, 100), (90, 100), (85, 100), (45, 50)], trend=-0.031), m)
    assert s.missing.tolist() == [False, False, True, False]
    assert s.headroom.tolist() == [6, 1, -1, 1]  # 95 of 100: 6 late ones make 89%; exactly 90%: one more misses
    assert s.recovery.tolist() == [-1, -1, 50, -1]  # 85 of 100: (85 + 50) / 150 = 90%
    assert "down 3.1 points" in reason_text(s, 0) and "6 more late deliveries at this volume" in reason_text(s, 0)
    assert "1 more late delivery at this volume" in reason_text(s, 1)


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
    else:
        k = next(k for k in range(1, volume + 2) if m.misses((count + k if bad else count - k) / volume))
        assert s.headroom[0] == k


def test_recovery_and_headroom_recounted_from_the_events(marketplace, feature_dir: Path, policy: Policy) -> None:
    """For sellers of the latest snapshot, the counts behind the sentences equal the events counted by
    hand over the standard's window, and missed-now equals the pipeline's own miss flags."""
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
