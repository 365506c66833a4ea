"""Where a seller stands against each standard: headroom and recovery counts, the days until a missed
standard is no longer missed (back within it, or no longer judged) and the evaluation it lands on,
checked on hand-worked numbers, against a day-by-day recount and, for sellers of the simulated
marketplace, recounted by hand from the events. The words are tested with the reasons
(tests/models/test_words.py)."""

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
from features.policy.standing import back_by, counts_orders, missed_now, standing, standing_inputs, standings
from tests.reference import measure_events, read_tables
from tests.standing_frames import standing_frame


def test_cancellations_hand_worked(policy: Policy) -> None:
    m = policy.metrics["cancellation_rate"]  # at most 2%, judged from 50 orders
    s = standing(standing_frame(m, [(1, 50), (1, 100), (3, 100), (2, 40), (0, 0)]), m)
    assert s.evaluated.tolist() == [True, True, True, False, False]
    assert s.missing.tolist() == [False, False, True, False, False]
    assert s.headroom.tolist() == [1, 2, -1, -1, -1]  # 1 of 50: a 2nd reaches 4% > 2%; 1 of 100: 2 more make 3%
    assert s.recovery.tolist() == [-1, -1, 50, -1, -1]  # 3 of 100: 3/150 = 2% needs 50 clean orders
    assert np.isnan(s.recent).all() and s.pace.tolist() == s.volume.tolist() and (s.pace_days == 30).all()


def test_on_time_deliveries_hand_worked(policy: Policy) -> None:
    m = policy.metrics["on_time_delivery_rate"]  # at least 90%
    s = standing(standing_frame(m, [(95, 100), (90, 100), (85, 100), (45, 50)], trend=-0.031), m)
    assert s.missing.tolist() == [False, False, True, False]
    assert s.headroom.tolist() == [6, 1, -1, 1]  # 95 of 100: 6 late ones make 89%; exactly 90%: one more misses
    assert s.recovery.tolist() == [-1, -1, 50, -1]  # 85 of 100: (85 + 50) / 150 = 90%


def _days_back(m, bad: int, volume: int, run: int | None, pace: int | None = None,
               pace_days: int | None = None) -> tuple[int, bool]:
    """Whole days until no longer missed if every outcome from t is good, and whether by leaving
    judgement, recounted day by day with Fractions: after d days the window holds volume * (W - d) / W
    old outcomes (bad * (W - d) / W of them bad) and pace * d / pace_days new good ones (pace: the
    window's own volume per W days unless given); back once the bad share is within the standard, no
    longer judged once at most min_count - 1 outcomes remain; the good run takes run * pace_days / pace
    days. The soonest, at least a day; back when tied."""
    w = m.window_days
    pace, pace_days = (volume, w) if pace is None else (pace, pace_days)
    allowed = Fraction(repr(m.threshold)) if m.direction == "at_most" else 1 - Fraction(repr(m.threshold))
    never = 10**9
    turnover = leave = never
    for d in range(1, w + 1):
        held = Fraction(volume * (w - d), w) + Fraction(pace * d, pace_days)
        if turnover == never and held > 0 and Fraction(bad * (w - d), w) <= allowed * held:
            turnover = d
        if leave == never and held <= m.min_count - 1:
            leave = d
    good_run = never if run is None or pace == 0 else max(1, ceil(Fraction(run * pace_days, pace)))
    back = min(turnover, good_run)
    return min(back, leave), leave < back


def test_recovery_when_the_window_turns_over_sooner(policy: Policy) -> None:
    """3 cancellations of 100 orders (30 days, at most 2%): the run needs 50 clean orders, 15 days at
    100 orders a month; spread evenly, the window holds 3 * (30 - d) / 30 of 100 orders, within 2 once
    d >= 10: back at the evaluation 14 days on, and the 3 leave the window 30 days on at the latest."""
    m = policy.metrics["cancellation_rate"]
    s = standing(standing_frame(m, [(3, 100)], trend=np.nan), m)
    assert (s.recovery[0], s.recovery_days[0], bool(s.recovery_by_run[0]), bool(s.recovery_unjudged[0])) == (
        50, 10, False, False)
    t = date(2026, 11, 29)
    assert back_by(s.recovery_days, np.array([t]), 7).astype(object).tolist() == [date(2026, 12, 13)]
    assert back_by(s.recovery_days, np.array([None]), 7).astype(object).tolist() == [None]


def test_recovery_when_the_good_run_is_as_soon(policy: Policy) -> None:
    """61 cancellations of 3,000 orders: 50 clean orders bring it back (61 / 3,050 = 2%), half a day at 100
    orders a day; the window turning over needs 30 * (1 - 60 / 61) = 0.49 days: both land on day 1, and
    the run is the thing to ask for."""
    m = policy.metrics["cancellation_rate"]
    s = standing(standing_frame(m, [(61, 3000)], trend=np.nan), m)
    assert (s.recovery[0], s.recovery_days[0], bool(s.recovery_by_run[0])) == (50, 1, True)


def test_recovery_of_an_at_least_standard(policy: Policy) -> None:
    """On-time deliveries 85 of 100 (at least 90%): 15 late ones, 10 allowed per 100; spread evenly the
    window holds 15 * (30 - d) / 30 late of 100, at most 10 once d >= 10 (the run: 50 on-time, 15 days).
    70 of 100: 30 late, back once d >= 20, evaluated 21 days on."""
    m = policy.metrics["on_time_delivery_rate"]
    s = standing(standing_frame(m, [(85, 100), (70, 100), (95, 100)], trend=-0.031), m)
    assert s.recovery.tolist() == [50, 200, -1]
    assert s.recovery_days.tolist() == [10, 20, -1] and s.recovery_by_run.tolist() == [False, False, False]
    t = date(2026, 11, 29)
    assert back_by(s.recovery_days, np.array([t] * 3), 7).astype(object).tolist() == [
        date(2026, 12, 13), date(2026, 12, 20), None]


def test_recovery_when_no_good_run_helps(policy: Policy) -> None:
    """At most 0% cancellations: no run of clean orders helps while the one cancellation is in the
    window; it leaves 30 days on at the latest, evaluated 35 days on."""
    m = policy.metrics["cancellation_rate"].model_copy(update={"threshold": 0.0})
    s = standing(standing_frame(m, [(1, 100)], trend=np.nan), m)
    assert (s.recovery[0], s.recovery_days[0], bool(s.recovery_by_run[0])) == (-1, 30, False)


def test_a_seller_that_stopped_selling_is_no_longer_judged(policy: Policy) -> None:
    """3 cancellations of 100 orders and no orders in the last 7 days: with none coming the bad share
    stays 3% as the window empties (never back), and 100 * (30 - d) / 30 <= 49 orders remain once
    d >= 30 * 51 / 100 = 15.3: no longer judged 16 days on (50 orders remain on day 15), the evaluation
    of 21 days on. No orders, yet the pace of a messages standard stays its window's."""
    m = policy.metrics["cancellation_rate"]
    s = standing(standing_frame(m, [(3, 100)], trend=np.nan, orders_7d=[0]), m)
    assert (s.pace[0], s.pace_days[0]) == (0, 7)
    assert (s.recovery[0], s.recovery_days[0], bool(s.recovery_by_run[0]), bool(s.recovery_unjudged[0])) == (
        50, 16, False, True)
    assert back_by(s.recovery_days, np.array([date(2026, 12, 29)]), 7).astype(object).tolist() == [date(2027, 1, 19)]
    r = policy.metrics["seller_response_rate"]
    assert not counts_orders(r) and counts_orders(m) and counts_orders(policy.metrics["on_time_delivery_rate"])
    s = standing(standing_frame(r, [(18, 30)], orders_7d=[0]), r)
    assert (s.pace[0], s.pace_days[0], bool(s.recovery_unjudged[0])) == (30, 30, False)


def test_recovery_at_the_sellers_recent_pace(policy: Policy) -> None:
    """3 cancellations of 100 orders at 70 orders in the last 7 days (10 a day, three times the window's):
    the 50 clean orders take 5 days; after 5 days 2.5 of 83.3 old + 50 new orders = 1.9% (2.05% after 4),
    so the window is back on day 5 too: by the run. 10 of 100 at 7 orders a week: within 2% once
    d >= 30 * 7 * 400 / (7 * 400 + 30 * 7) = 27.9, but 100 * (30 - d) / 30 + d <= 49 orders remain once
    d >= 30 * 7 * 51 / (700 - 210) = 21.9: no longer judged on day 22."""
    m = policy.metrics["cancellation_rate"]
    s = standing(standing_frame(m, [(3, 100), (10, 100)], trend=np.nan, orders_7d=[70, 7]), m)
    assert s.recovery_days.tolist() == [5, 22]
    assert s.recovery_by_run.tolist() == [True, False] and s.recovery_unjudged.tolist() == [False, True]


def test_the_recent_rate_and_the_inputs(policy: Policy) -> None:
    """The 30-day rate is read when given (NaN otherwise); a standing's inputs are every standard's
    volume, gap, trend and 30-day rate, then the recent orders, all features of the spec."""
    from features.pipeline.spec import feature_spec

    m = policy.metrics["negative_feedback_rate"]
    s = standing(standing_frame(m, [(3, 188), (0, 0)], recent=[0.028, np.nan]), m)
    assert s.recent[0] == 0.028 and np.isnan(s.recent[1])
    inputs = standing_inputs(policy)
    assert set(inputs) <= set(feature_spec(policy).names) and inputs[-1] == "orders_7d"
    assert len(inputs) == 4 * len(policy.metrics) + 1


@pytest.mark.parametrize("threshold_case", range(200))
def test_counts_are_the_least_that_cross(policy: Policy, threshold_case: int) -> None:
    """Brute force: the headroom is the least k that misses, the recovery the least g that recovers, and
    its days are the day-by-day recount's at the seller's recent pace (or the window's without it)."""
    rng = np.random.default_rng(threshold_case)
    m = policy.metrics[list(policy.metrics)[threshold_case % len(policy.metrics)]]
    volume = int(rng.integers(m.min_count, 400))
    count = int(rng.integers(0, volume + 1))
    recent = [np.nan, 0.0, float(rng.integers(1, 60)), float(rng.integers(60, 400))][threshold_case % 4]
    s = standing(standing_frame(m, [(count, volume)], orders_7d=[recent]), m)
    bad = m.direction == "at_most"
    if s.missing[0]:
        g = next(g for g in range(10**6) if not m.misses((count + (0 if bad else g)) / (volume + g)))
        assert s.recovery[0] == g
        pace = (volume, m.window_days) if np.isnan(recent) or not counts_orders(m) else (int(recent), 7)
        assert (s.pace[0], s.pace_days[0]) == pace
        days, unjudged = _days_back(m, count if bad else volume - count, volume, g, *pace)
        assert (s.recovery_days[0], bool(s.recovery_unjudged[0])) == (days, unjudged)
    else:
        k = next(k for k in range(1, volume + 2) if m.misses((count + k if bad else count - k) / volume))
        assert s.headroom[0] == k


def test_recovery_and_headroom_recounted_from_the_events(marketplace, feature_dir: Path, policy: Policy) -> None:
    """For sellers of the latest snapshot, the counts behind the sentences equal the events counted by
    hand over the standard's window, and missed-now equals the pipeline's own miss flags. For every
    seller missing a standard, the way back is recomputed from those counts and its orders of the last
    7 days: the good run, the days until no longer missed if every outcome from t is good (back, or no
    longer judged), and the evaluation date that lands on."""
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
            pace = (int(latest.loc[i, "orders_7d"]), 7) if counts_orders(m) else (v, m.window_days)
            days, unjudged = _days_back(m, bad, v, g, *pace)
            back = day + timedelta(days=ceil(days / every) * every)
            assert (s.recovery[i], s.recovery_days[i], bool(s.recovery_unjudged[i])) == (g, days, unjudged), (
                name, seller)
            assert back_by(s.recovery_days[[i]], np.array([day]), every).astype(object).tolist() == [back]
            recovered += 1
    assert recovered > 20


def _random_features(policy, n: int, seed: int) -> pd.DataFrame:
    """Snapshot-like standing inputs with the awkward values: no volume, NaN, the optional columns absent."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for name in policy.metrics:
        volume = rng.integers(0, 400, n).astype(float)
        volume[rng.random(n) < 0.1] = 0
        volume[rng.random(n) < 0.05] = np.nan
        gap = rng.normal(0, 0.05, n)
        gap[rng.random(n) < 0.1] = np.nan
        cols[f"{name}_volume"], cols[f"{name}_gap"] = volume, gap
        if seed % 2:
            cols[f"{name}_trend"], cols[f"{name}_30d"] = rng.normal(0, 0.01, n), rng.random(n)
    if seed % 3:
        cols["orders_7d"] = rng.integers(0, 60, n).astype(float)
    return pd.DataFrame(cols)


@pytest.mark.parametrize("policy_name", ["amazon-account-health", "walmart-us-2026"])
def test_standings_from_model_rows_equal_the_frames_and_one_seller_the_batch(policy_name) -> None:
    """The scorer reads standings from float columns of its model inputs (no frame per request): the
    same bits as from the frame, standard by standard or all together, and one seller alone stands as
    in the batch."""
    from dataclasses import fields

    from features.policy.definition import load_policy

    policy = load_policy(policy_name)
    for seed in range(4):
        frame = _random_features(policy, 300, seed)
        columns = {c: frame[c].to_numpy(dtype="float64") for c in frame.columns}
        by_frame, by_columns = standings(frame, policy), standings(columns, policy)
        for name, m in policy.metrics.items():
            one = standing(frame, m)
            alone = standings({c: v[7:8] for c, v in columns.items()}, policy)[name]
            for f in fields(one):
                if f.name == "metric":
                    continue
                a, b, c = getattr(one, f.name), getattr(by_frame[name], f.name), getattr(by_columns[name], f.name)
                assert a.dtype == b.dtype == c.dtype, (name, f.name)
                assert a.tobytes() == b.tobytes() == c.tobytes(), (name, f.name)
                assert getattr(alone, f.name).tobytes() == a[7:8].tobytes(), (name, f.name)
