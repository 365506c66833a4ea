"""The label's mechanics features, checked against hand computations from the raw events.

The label asks whether a standard is missed at one of the evaluations in (t, t + horizon]; the next one,
a cadence c on, looks at (t + c - W, t + c], so at t its trailing W - c days are already known, the oldest c
days of today's window leave it, and c days are still to come; parcels already past their promised delivery
date will be late deliveries whatever happens. Here every mechanics feature is recomputed in plain pandas from
hand-built event tables (`tests.reference.hand_mechanics`, from counted events; nothing from the pipeline's flows, SQL or
spec), for both policies and for a policy judged every 14 days; then the edges of time: an event at exactly t
counts, one a microsecond later does not, and moving every fact dated after t changes nothing at t.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.pipeline.snapshots import build_snapshots, read_snapshots
from features.pipeline.spec import feature_spec
from features.policy.definition import Policy, load_policy
from features.events.schema import TABLES
from features.events.validation import validate_dir
from tests.events_builder import DAY, HOUR, EventsBuilder, write_tables
from tests.reference import hand_mechanics

T = datetime(2025, 6, 2)            # a Monday, midnight: the as-of date the edge cases sit around
AS_OF = [T - 7 * DAY, T, T + 3 * DAY]  # a week before, t, and a Thursday (off the weekly grid)
CUTOFF = T + 30 * DAY
US = timedelta(microseconds=1)
REL = 1e-9


# --- the events -------------------------------------------------------------------------------


def _busy(b: EventsBuilder, rng: np.random.Generator, seller: str, per_day: int) -> None:
    """A seller with orders every day for 100 days before T and 10 after, each with a random fate: cancelled,
    shipped late, invalid tracking, delivered late, lost, rated badly, returned, refunded, asked about,
    answered in time, late or never."""
    day = T - 100 * DAY
    while day < T + 10 * DAY:
        for _ in range(int(rng.integers(per_day - 1, per_day + 2))):
            at = day + timedelta(minutes=int(rng.integers(1, 24 * 60)))
            r = rng.random(8)
            if r[0] < 0.04:
                b.order(seller, at, cancelled=2 * HOUR, cancelled_by="seller" if r[1] < 0.7 else "buyer")
                continue
            ship = (30 if r[1] < 0.08 else 12) * HOUR
            late, lost = r[2] < 0.1, r[2] > 0.98
            deliver = None if lost else ship + (6 if late else 2) * DAY + timedelta(minutes=int(rng.integers(0, 600)))
            oid = b.order(seller, at, shipped=ship, handover=ship + HOUR, delivered=deliver,
                          tracking_valid=bool(r[3] > 0.03), channel="marketplace" if r[4] < 0.1 else "seller")
            landed = at + (deliver if deliver is not None else 5 * DAY)
            if r[5] < 0.06:
                b.feedback(oid, landed + DAY, int(rng.integers(1, 3)))
            if r[6] < 0.06 and deliver is not None:
                reason = "damaged" if r[7] < 0.6 else "size_or_fit"
                b.return_(oid, landed + 2 * DAY, reason)
                b.refund(oid, landed + 8 * DAY, reason=reason, seller_responsible=reason == "damaged")
            if r[7] < 0.12:
                wait = [2 * HOUR, 30 * HOUR, 60 * HOUR, None][int(rng.integers(0, 4))]
                opened = at + timedelta(hours=int(rng.integers(1, 96)))
                topic = "item_not_received" if lost or r[5] > 0.9 else "where_is_my_order"
                b.contact(seller, opened, None if wait is None else opened + wait, order_id=oid, topic=topic)
        day += DAY


def _edges(b: EventsBuilder) -> None:
    """Seller EDGE: a quiet seller (one order a day, all fine), plus one of each fact at the edge of T."""
    day = T - 70 * DAY
    while day < T + 5 * DAY:
        b.order("EDGE", day + 9 * HOUR)
        day += DAY
    # parcels: promised exactly at T and delivered a microsecond later (late, in transit at T); promised a
    # microsecond after T (not late yet); delivered exactly at T (not in transit); lost 31 days ago (gone)
    b.order("EDGE", T - 5 * DAY, deliver_by=5 * DAY, delivered=5 * DAY + US)
    b.order("EDGE", T - 5 * DAY, deliver_by=5 * DAY + US, delivered=6 * DAY)
    b.order("EDGE", T - 5 * DAY, deliver_by=2 * DAY, delivered=5 * DAY)
    b.order("EDGE", T - 40 * DAY, shipped=9 * DAY, handover=9 * DAY, delivered=None)
    b.order("EDGE", T - 40 * DAY, shipped=10 * DAY + US, handover=10 * DAY + US, delivered=None)
    # late deliveries at the edge of the next evaluation's known part: W - 7 = 23 days back, and just inside
    b.order("EDGE", T - 26 * DAY, deliver_by=DAY, delivered=3 * DAY)         # delivered at T - 23 d: leaves
    b.order("EDGE", T - 26 * DAY, deliver_by=DAY, delivered=3 * DAY + US)    # a microsecond later: stays
    b.order("EDGE", T - 3 * HOUR, ship_by=5 * HOUR, shipped=3 * HOUR, handover=4 * HOUR, delivered=2 * DAY)  # at T


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    b = EventsBuilder()
    rng = np.random.default_rng(23)
    for seller, per_day in (("BUSY", 8), ("MID", 3), ("SMALL", 1)):
        b.seller(seller, datetime(2024, 1, 1))
        _busy(b, rng, seller, per_day)
    b.seller("EDGE", datetime(2024, 1, 1))
    _edges(b)
    out = b.write(tmp_path_factory.mktemp("mechanics") / "events", CUTOFF)
    assert validate_dir(out) == []
    return out


def _fortnightly(policy: Policy) -> Policy:
    """The same standards judged every 14 days, one on a 10-day window (wholly ahead of the next evaluation)."""
    metrics = dict(policy.metrics)
    metrics["cancellation_rate"] = metrics["cancellation_rate"].model_copy(update={"window_days": 10})
    return policy.model_copy(update={"evaluation_every_days": 14, "metrics": metrics})


POLICIES = {"walmart": lambda: load_policy("walmart-us-2026"), "amazon": lambda: load_policy("amazon-account-health"),
            "fortnightly": lambda: _fortnightly(load_policy("walmart-us-2026"))}


@pytest.fixture(scope="module", params=list(POLICIES))
def built(request, events) -> tuple[Policy, pd.DataFrame, dict[str, pd.DataFrame]]:
    policy = POLICIES[request.param]()
    out = events.parent / f"snapshots-{request.param}"
    build_snapshots(events, out, policy, as_of=[d.date() for d in AS_OF])
    snaps = read_snapshots(out)
    snaps["as_of"] = pd.to_datetime(snaps["as_of"].astype(str))
    return policy, snaps, {name: pd.read_parquet(events / f"{name}.parquet") for name in TABLES}


# --- by hand ------------------------------------------------------------------------------------


def _same(got: object, want: object) -> bool:
    missing = lambda v: v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    if missing(want) or missing(got):
        return missing(want) and missing(got)
    if isinstance(want, int):
        return int(got) == want
    return float(got) == pytest.approx(want, rel=REL, abs=1e-12)


# --- the tests ----------------------------------------------------------------------------------


def test_every_mechanics_feature_matches_the_hand_computation(built):
    policy, snaps, tables = built
    names = [f.name for f in feature_spec(policy).features if f.group == "mechanics"]
    problems, compared = [], []
    for seller in ("BUSY", "MID", "SMALL", "EDGE"):
        for t in AS_OF:
            row = snaps[(snaps["seller_id"] == seller) & (snaps["as_of"] == pd.Timestamp(t))]
            assert len(row) == 1, f"{seller} at {t}: {len(row)} rows"
            want = hand_mechanics(tables, policy, seller, pd.Timestamp(t))
            assert sorted(want) == sorted(names)  # the hand computation covers exactly the spec's mechanics
            problems += [f"{seller} {t:%Y-%m-%d} {n}: snapshot {row.iloc[0][n]!r}, by hand {want[n]!r}"
                         for n in names if not _same(row.iloc[0][n], want[n])]
            compared.append(want)
    assert not problems, "\n".join(problems)
    # the events exercise the features: each is non-zero (or defined) somewhere, and a projection is missing
    for n in names:
        assert any(w[n] not in (None, 0) for w in compared), n
    assert any(w[n] is None for w in compared for n in names if n.endswith("_next_projected_gap"))


def test_edge_seller_counts_at_t(built):
    """What EDGE's facts at the edge of T give, written out: exactly-at-T counts, a microsecond later not."""
    policy, snaps, _ = built
    row = snaps[(snaps["seller_id"] == "EDGE") & (snaps["as_of"] == pd.Timestamp(T))].iloc[0]
    # late: promised exactly at T and delivered after it; lost, but its 30 days in transit end just after T
    # late: promised exactly at T and delivered after it; lost, but its 30 days in transit end just after T.
    # Not: promised a microsecond after T, delivered exactly at T, lost more than 30 days ago, the daily orders
    assert row["late_parcels_in_transit"] == 2
    if "on_time_delivery_rate" in policy.metrics:
        # late deliveries in (T - 30 d, T]: at T - 23 d, at T - 23 d + 1 us, and the one delivered exactly at T; the
        # daily orders arrive on time. Before an evaluation 7 days on, the days (T - 30 d, T - 23 d] leave: the
        # first only; before one 14 days on, (T - 30 d, T - 16 d]: the first two
        leaving = {7: 1, 14: 2}[policy.evaluation_every_days]
        assert row["on_time_delivery_rate_leaving_next"] == leaving


def _shift_future(events: Path, out: Path, t: datetime, by: timedelta) -> Path:
    """A copy of the events in which every time after t is `by` later: only facts dated after t move (and
    the order of every two times is kept, so the copy obeys the schema's rules)."""
    tables = {}
    for name in TABLES:
        df = pd.read_parquet(events / f"{name}.parquet")
        for col in df.columns:
            if pd.api.types.is_datetime64_any_dtype(df[col]):
                df[col] = df[col].where(~(df[col] > t), df[col] + by)
        tables[name] = df
    return write_tables(tables, out, CUTOFF + by)


def test_moving_the_future_changes_no_mechanics_feature_at_t(events):
    policy = load_policy("walmart-us-2026")
    names = [f.name for f in feature_spec(policy).features if f.group == "mechanics"]
    moved = _shift_future(events, events.parent / "moved", T, 3 * DAY)
    assert validate_dir(moved) == []
    frames = {}
    for label, folder in (("original", events), ("moved", moved)):
        out = folder.parent / f"pit-{label}"
        build_snapshots(folder, out, policy, as_of=[(T - 7 * DAY).date(), T.date(), (T + 3 * DAY).date()])
        snaps = read_snapshots(out).sort_values(["as_of", "seller_id"]).reset_index(drop=True)
        frames[label] = snaps.assign(as_of=snaps["as_of"].astype(str))
    before = {k: f[f["as_of"] <= str(T.date())][["seller_id", "as_of", *names]] for k, f in frames.items()}
    pd.testing.assert_frame_equal(before["original"], before["moved"])
    after = {k: f[f["as_of"] > str(T.date())][names] for k, f in frames.items()}
    assert not after["original"].equals(after["moved"])  # the move is visible after t: the check can fail


@pytest.mark.parametrize("name", ["walmart-us-2026", "amazon-account-health"])
def test_mechanics_are_declared_per_standard_from_the_policy(name):
    """Each standard judged on a window longer than the cadence gets its next evaluation's three features, in the
    mechanics family, as behaviour of that standard, with a reason a reviewer reads; a standard whose next window
    lies wholly ahead (Amazon's 7-day cancellations, judged weekly) gets none."""
    policy = load_policy(name)
    spec = feature_spec(policy)
    mechanics = [f for f in spec.features if f.group == "mechanics"]
    for m in policy.metrics.values():
        own = sorted(f.name for f in mechanics if f.standard == m.name and f.name != "late_parcels_in_transit")
        expected = [] if m.window_days <= policy.evaluation_every_days else sorted(
            f"{m.name}_{s}" for s in ("next_known_gap", "leaving_next", "next_projected_gap"))
        assert own == expected, m.name
    assert all(f.role == "behaviour" and f.family == "mechanics" for f in mechanics)
    late = spec["late_parcels_in_transit"]
    assert late.standard == ("on_time_delivery_rate" if "on_time_delivery_rate" in policy.metrics else
                             "order_defect_rate")
    assert late.reason_text(3) == "Parcels past their promised delivery date and still in transit: 3"
    first = next(m for m in policy.metrics.values() if m.window_days > policy.evaluation_every_days)
    known = first.window_days - policy.evaluation_every_days
    assert spec[f"{first.name}_next_known_gap"].window_days == known
    assert f"in the last {known} days, which the next evaluation still counts" in \
        spec[f"{first.name}_next_known_gap"].reason_text(0.01)
