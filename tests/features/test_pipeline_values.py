"""The feature pipeline's values, checked against hand computations that share no code with it.

1. On the simulated marketplace: six deliberately chosen sellers at three as-of dates, every
   general feature and every policy metric's features recomputed in plain pandas from the raw
   event tables (nothing imported from features.pipeline.flows, features.pipeline.spec or features.pipeline.sql).
2. A hand-written history with a known breach date: the label turns on exactly four weeks ahead.
3. Hand-written sellers at the edges of the rules: minimum volumes, channels, who cancelled,
   window boundaries (an event at exactly t counts, one at exactly t - W does not).
4. Point in time: rewriting the future (anything after t) never changes a feature at t, while
   touching the past does.
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.policy.definition import Policy
from features.events.schema import TABLES
from features.simulation.run import SimulationConfig, simulate_marketplace
from features.pipeline.snapshots import build_snapshots, read_snapshots
from features.pipeline.spec import feature_spec
from features.events.validation import read_cutoff, validate_dir
from tests.events_builder import DAY, HOUR, EventsBuilder, write_tables
from tests.reference import hand_mechanics
from tests.reference_world import Hand

US = timedelta(microseconds=1)
TD_DAY = pd.Timedelta(days=1)
ANSWER_WINDOW = pd.Timedelta(hours=48)
Z = 1.96  # the 95% Wilson bound
REL = 1e-9


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _mismatches(row: pd.Series, want: dict[str, object], where: str) -> list[str]:
    """Every column whose snapshot value differs from the hand value (None: undefined)."""
    bad = []
    for name, expected in want.items():
        got = row[name]
        if _missing(expected) or _missing(got):
            ok = _missing(expected) and _missing(got)
        elif isinstance(expected, (bool, str)):
            ok = got == expected
        elif isinstance(expected, int):
            ok = int(got) == expected
        else:
            ok = float(got) == pytest.approx(expected, rel=REL, abs=1e-12)
        if not ok:
            bad.append(f"{where} {name}: snapshot {got!r}, by hand {expected!r}")
    return bad


# --- 1. the simulated marketplace, by hand ------------------------------------------------------

MARKET_DATES = [date(2025, 3, 3), date(2025, 7, 7), date(2025, 10, 20)]


@dataclass
class SellerEvents:
    """One seller's raw events; every non-order row carries its order's fulfilment channel."""

    seller_id: str
    onboarded_at: pd.Timestamp
    category: str
    region: str
    orders: pd.DataFrame
    returns: pd.DataFrame
    refunds: pd.DataFrame
    feedback: pd.DataFrame
    contacts: pd.DataFrame
    actions: pd.DataFrame


def _read_raw(events: Path) -> dict[str, pd.DataFrame]:
    raw = {name: pd.read_parquet(events / name) for name in TABLES}
    channel_of = raw["orders"].set_index("order_id")["fulfilment_channel"]
    for name in ("returns", "refunds", "feedback", "contacts"):
        df = raw[name]
        # the channel of a return, refund, rating or message is its order's; no order: seller-fulfilled
        df["channel"] = df["order_id"].map(channel_of).fillna("seller").astype(str)
    raw["orders"]["channel"] = raw["orders"]["fulfilment_channel"].astype(str)
    return raw


def _per_seller(raw: dict[str, pd.DataFrame], seller_ids: list[str]) -> dict[str, SellerEvents]:
    sellers = raw["sellers"].set_index("seller_id")
    groups = {name: dict(tuple(raw[name].groupby("seller_id")))
              for name in ("orders", "returns", "refunds", "feedback", "contacts", "policy_actions")}

    def part(name: str, sid: str) -> pd.DataFrame:
        return groups[name].get(sid, raw[name].iloc[:0])

    return {
        sid: SellerEvents(sid, sellers.at[sid, "onboarded_at"], sellers.at[sid, "category"], sellers.at[sid, "region"],
                          part("orders", sid), part("returns", sid), part("refunds", sid), part("feedback", sid),
                          part("contacts", sid), part("policy_actions", sid))
        for sid in seller_ids
    }


def _metric_events(ev: SellerEvents, metric: str, channels: tuple[str, ...]) -> tuple[pd.Series, pd.Series]:
    """(numerator event times, denominator event times) of one policy metric, written from the
    policy's wording: each event is dated by the moment it became known."""
    o = ev.orders[ev.orders["channel"].isin(channels)]
    c = ev.contacts[ev.contacts["channel"].isin(channels)]
    f = ev.feedback[ev.feedback["channel"].isin(channels)]
    r = ev.returns[ev.returns["channel"].isin(channels)]
    rf = ev.refunds[ev.refunds["channel"].isin(channels)]
    delivered = o["delivered_at"].dropna()
    if metric == "cancellation_rate":
        return o.loc[o["cancelled_by"] == "seller", "cancelled_at"], o["ordered_at"]
    if metric == "on_time_delivery_rate":
        return o.loc[o["delivered_at"] <= o["promised_delivery_by"], "delivered_at"], delivered
    if metric == "valid_tracking_rate":
        valid = o["tracking_valid"].map(lambda v: v is True or v is np.True_).astype(bool)
        return o.loc[valid & o["shipped_at"].notna(), "shipped_at"], o["shipped_at"].dropna()
    if metric == "refund_rate":
        return rf.loc[rf["seller_responsible"].astype(bool), "refunded_at"], o["ordered_at"]
    if metric == "seller_response_rate":
        due = c["opened_at"] + ANSWER_WINDOW
        answered_in_time = c["first_response_at"] <= due
        # a message counts once answered, or once its 48 h are up unanswered, whichever comes first
        counted = c["first_response_at"].where(answered_in_time, due)
        return c.loc[answered_in_time, "first_response_at"], counted
    if metric == "negative_feedback_rate":
        return f.loc[f["rating"] <= 2, "submitted_at"], o["ordered_at"]
    if metric == "return_rate":
        return r["requested_at"], delivered
    if metric == "item_not_received_rate":
        return c.loc[c["topic"] == "item_not_received", "opened_at"], o["ordered_at"]
    raise KeyError(metric)


HAND_METRICS = ("cancellation_rate", "on_time_delivery_rate", "valid_tracking_rate", "refund_rate",
                "seller_response_rate", "negative_feedback_rate", "return_rate", "item_not_received_rate")


def _count(times: pd.Series, t: pd.Timestamp, newest: int, oldest: int) -> int:
    """Events with time in (t - oldest days, t - newest days]."""
    times = times.dropna()
    return int(((times > t - oldest * TD_DAY) & (times <= t - newest * TD_DAY)).sum())


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _wilson(p: float, n: int, upper: bool) -> float:
    centre = p + Z * Z / (2 * n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre + half if upper else centre - half) / (1 + Z * Z / n)


def hand_metrics(ev: SellerEvents, t: pd.Timestamp, policy: Policy) -> tuple[dict[str, object], list[str]]:
    """Every policy metric's features at t, and the metrics missed at t."""
    out: dict[str, object] = {}
    misses = []
    for name, m in policy.metrics.items():
        num_t, den_t = _metric_events(ev, name, m.channels)
        rate = {d: _ratio(_count(num_t, t, 0, d), _count(den_t, t, 0, d)) for d in (7, 30, 60, 90)}
        for d, value in rate.items():
            out[f"{name}_{d}d"] = value
        w = m.window_days
        n, p = _count(den_t, t, 0, w), _ratio(_count(num_t, t, 0, w), _count(den_t, t, 0, w))
        out[f"{name}_volume"] = n
        out[f"{name}_gap"] = None if p is None else (p - m.threshold if m.direction == "at_most" else m.threshold - p)
        out[f"{name}_wilson"] = None if p is None else _wilson(p, n, upper=m.direction == "at_most")
        before = _ratio(_count(num_t, t, 30, 60), _count(den_t, t, 30, 60))
        out[f"{name}_trend"] = None if rate[30] is None or before is None else rate[30] - before
        if n >= m.min_count and (p > m.threshold if m.direction == "at_most" else p < m.threshold):
            misses.append(name)
    return out, misses


def hand_general(ev: SellerEvents, t: pd.Timestamp) -> dict[str, object]:
    """Volume, value, fulfilment, tenure, backlog and enforcement history at t."""
    o, c = ev.orders, ev.contacts
    placed = o["ordered_at"]
    n7, n30, n60, n90 = (_count(placed, t, 0, d) for d in (7, 30, 60, 90))
    in30 = (placed > t - 30 * TD_DAY) & (placed <= t)
    gmv = float(o.loc[in30, "order_value"].sum())
    mfn = int((in30 & (o["channel"] == "marketplace")).sum())
    sf = o[o["channel"] == "seller"]
    late_handover = sf.loc[sf["carrier_handover_at"] > sf["promised_ship_by"], "carrier_handover_at"]
    shipped_by_t = sf["shipped_at"].notna() & (sf["shipped_at"] <= t)
    cancelled_by_t = sf["cancelled_at"].notna() & (sf["cancelled_at"] <= t)
    overdue = int(((sf["promised_ship_by"] <= t) & ~shipped_by_t & ~cancelled_by_t).sum())
    opened = c["opened_at"] <= t
    answered = c["first_response_at"].notna() & (c["first_response_at"] <= t)
    warnings = ev.actions.loc[ev.actions["action"] == "warning", "issued_at"]
    warned = warnings[warnings <= t]
    return {
        "orders_7d": n7,
        "orders_30d": n30,
        "orders_90d": n90,
        "order_growth": _ratio(n30, n60 - n30),
        "gmv_30d": gmv,
        "avg_order_value_30d": _ratio(gmv, n30),
        "marketplace_fulfilled_share_30d": _ratio(mfn, n30),
        "tenure_days": (t - ev.onboarded_at) / TD_DAY,
        "late_handover_rate_30d": _ratio(_count(late_handover, t, 0, 30), _count(sf["shipped_at"], t, 0, 30)),
        "overdue_unshipped_orders": overdue,
        "unanswered_contacts": int((opened & ~answered).sum()),
        "overdue_contacts": int(((c["opened_at"] + ANSWER_WINDOW <= t) & ~answered).sum()),
        "warnings_90d": _count(warnings, t, 0, 90),
        "warnings_total": len(warned),
        "days_since_last_warning": None if warned.empty else math.floor((t - warned.max()) / TD_DAY),
        "category": ev.category,
        "region": ev.region,
        "week_of_year": t.isocalendar()[1],
    }


def _active(ev: SellerEvents, t: pd.Timestamp) -> bool:
    """A snapshot row exists: onboarded at or before t, with an order in the 30 days before t."""
    return ev.onboarded_at <= t and _count(ev.orders["ordered_at"], t, 0, 30) > 0


def hand_row(ev: SellerEvents, t: pd.Timestamp, policy: Policy, grid: list[pd.Timestamp]) -> dict[str, object]:
    metrics, misses = hand_metrics(ev, t, policy)
    tables = {"orders": ev.orders, "contacts": ev.contacts, "feedback": ev.feedback, "returns": ev.returns,
              "refunds": ev.refunds}
    row = {**metrics, **hand_general(ev, t), **hand_mechanics(tables, policy, ev.seller_id, t),
           "compliant_at_t": not misses, "misses_at_t": ",".join(misses)}
    ahead = [g for g in grid if t < g <= t + policy.horizon_days * TD_DAY]
    missed_ahead = {m for g in ahead for m in hand_metrics(ev, g, policy)[1]}
    row["breach"] = bool(missed_ahead)
    row["breach_metrics"] = ",".join(m for m in policy.metrics if m in missed_ahead)
    for m in policy.metrics:
        row[f"breach_{m}"] = m in missed_ahead
    return row


@pytest.fixture(scope="module")
def market(marketplace, policy, tmp_path_factory):
    """(raw tables, snapshots at the three dates, the weekly evaluation grid) of the session marketplace."""
    events, _ = marketplace
    out = tmp_path_factory.mktemp("pipeline-values") / "snapshots"
    build_snapshots(events, out, policy, as_of=MARKET_DATES)
    snaps = read_snapshots(out)
    cutoff = pd.Timestamp(read_cutoff(events))
    grid = [cutoff - 7 * k * TD_DAY for k in range(60)]
    return _read_raw(events), snaps, grid


def _pick(scores: pd.Series, taken: list[str]) -> str:
    """The seller with the highest score not already chosen (ties: lowest id)."""
    scores = scores.drop(taken, errors="ignore")
    return scores[scores == scores.max()].index.sort_values()[0]


@pytest.fixture(scope="module")
def chosen(market, policy) -> dict[str, str]:
    """Six sellers, each chosen for what it exercises."""
    raw, _, _ = market
    o, s = raw["orders"], raw["sellers"].set_index("seller_id")
    n_orders = o.groupby("seller_id").size()
    picks: dict[str, str] = {}
    picks["largest"] = _pick(n_orders, [])
    ranked = n_orders.sort_values(kind="stable")
    picks["median"] = _pick(-(n_orders - ranked.iloc[len(ranked) // 2]).abs(), list(picks.values()))
    ts = [pd.Timestamp(d) for d in MARKET_DATES]
    a, c = raw["policy_actions"], raw["contacts"]
    warnings = a.loc[a["action"] == "warning"]
    recent = sum(((warnings["issued_at"] > t - 90 * TD_DAY) & (warnings["issued_at"] <= t)).astype(int) for t in ts)
    picks["warned"] = _pick(recent.groupby(warnings["seller_id"]).sum(), list(picks.values()))
    joined = s.index[(s["onboarded_at"] > ts[0]) & (s["onboarded_at"] < ts[1])]
    picks["onboarded_during"] = _pick(n_orders.reindex(joined).dropna(), list(picks.values()))
    share = (o["fulfilment_channel"] == "marketplace").groupby(o["seller_id"]).mean()
    picks["marketplace_fulfilled"] = _pick(share[n_orders >= 500], list(picks.values()))
    waiting = sum(((c["opened_at"] <= t) & ~(c["first_response_at"] <= t)).astype(int) for t in ts)
    picks["unanswered"] = _pick(waiting.groupby(c["seller_id"]).sum(), list(picks.values()))
    return picks


def test_rows_exist_exactly_for_onboarded_sellers_with_a_recent_order(market):
    raw, snaps, _ = market
    o, s = raw["orders"], raw["sellers"]
    for d in MARKET_DATES:
        t = pd.Timestamp(d)
        ordered = set(o.loc[(o["ordered_at"] > t - 30 * TD_DAY) & (o["ordered_at"] <= t), "seller_id"])
        expected = sorted(ordered & set(s.loc[s["onboarded_at"] <= t, "seller_id"]))
        got = sorted(snaps.loc[snaps["as_of"].astype(str) == str(d), "seller_id"])
        assert got == expected, d


def test_chosen_sellers_match_hand_computed_features(market, chosen, policy, marketplace):
    raw, snaps, grid = market
    world = Hand(marketplace[0])  # the world around a seller: every seller's events
    assert set(HAND_METRICS) == set(policy.metrics)  # every metric of the policy is recomputed by hand
    events = _per_seller(raw, list(chosen.values()))
    spec = feature_spec(policy)
    problems, compared = [], []
    for role, sid in chosen.items():
        ev = events[sid]
        for d in MARKET_DATES:
            t = pd.Timestamp(d)
            rows = snaps[(snaps["seller_id"] == sid) & (snaps["as_of"].astype(str) == str(d))]
            if not _active(ev, t):
                assert rows.empty, f"{role} {sid} at {d}: inactive, yet has a snapshot row"
                continue
            assert len(rows) == 1, f"{role} {sid} at {d}: expected one row, got {len(rows)}"
            want = {**hand_row(ev, t, policy, grid), **world.world(sid, t)}
            assert set(spec.names) <= set(want), set(spec.names) - set(want)
            problems += _mismatches(rows.iloc[0], want, f"{role} {sid} {d}")
            compared.append(want)
    assert not problems, "\n".join(problems)

    # the choice exercises what it was meant to: rows at every date, and non-trivial values
    assert len(compared) >= 15
    assert not _active(events[chosen["onboarded_during"]], pd.Timestamp(MARKET_DATES[0]))
    for feature in ("overdue_unshipped_orders", "unanswered_contacts", "overdue_contacts", "warnings_90d"):
        assert any(r[feature] > 0 for r in compared), feature
    assert any(r["days_since_last_warning"] is not None for r in compared)
    assert any(r["days_since_last_warning"] is None for r in compared)
    assert max(r["marketplace_fulfilled_share_30d"] or 0 for r in compared) > 0.5
    assert any(not r["compliant_at_t"] for r in compared) or any(r["breach"] for r in compared)
    for m in policy.metrics:  # each metric's rate is defined somewhere, and non-zero somewhere
        assert any((r[f"{m}_30d"] or 0) > 0 for r in compared), m


# --- 2. a hand-written history with a known breach date -----------------------------------------

START = datetime(2025, 1, 6)            # a Monday; orders every day from here
X = START + timedelta(weeks=13)         # 2025-04-07: the first evaluation date that misses
CUTOFF = X + timedelta(weeks=6)         # 2025-05-19: the grid is every Monday back from here
ORDER_HOURS = (8, 10, 12, 14, 16, 18)   # six orders a day, 42 a week


@pytest.fixture(scope="module")
def late_week(policy, tmp_path_factory) -> pd.DataFrame:
    """Seller LATE: every order delivered three days after it was placed, promised within four,
    except the 08:00, 10:00 and 12:00 orders placed in (X - 10 d, X - 3 d]: promised within two,
    so their 21 deliveries in (X - 7 d, X] are late. Seller STEADY: the same, never late."""
    b = EventsBuilder()
    b.seller("LATE", datetime(2024, 1, 1))
    b.seller("STEADY", datetime(2024, 1, 1))
    day = START
    while day <= CUTOFF - 4 * DAY:  # the last deliveries land before the cut-off
        for h in ORDER_HOURS:
            at = day + h * HOUR
            late = X - 10 * DAY < at <= X - 3 * DAY and h <= 12
            b.order("LATE", at, deliver_by=2 * DAY if late else 4 * DAY)
            b.order("STEADY", at)
        day += DAY
    events = b.write(tmp_path_factory.mktemp("late-week") / "events", CUTOFF)
    assert validate_dir(events) == []
    out = events.parent / "snapshots"
    build_snapshots(events, out, policy)
    snaps = read_snapshots(out)
    snaps["as_of"] = pd.to_datetime(snaps["as_of"].astype(str))
    return snaps


def _at(snaps: pd.DataFrame, seller: str, when: datetime) -> pd.Series:
    rows = snaps[(snaps["seller_id"] == seller) & (snaps["as_of"] == pd.Timestamp(when))]
    assert len(rows) == 1, f"{seller} at {when}: {len(rows)} rows"
    return rows.iloc[0]


def test_late_week_is_missed_at_x_and_labelled_four_weeks_ahead(late_week):
    snaps = late_week
    # deliveries in (X - 30 d, X]: orders placed in (X - 33 d, X - 3 d], 30 days x 6 = 180, 21 of them late
    at_x = _at(snaps, "LATE", X)
    assert at_x["on_time_delivery_rate_30d"] == pytest.approx(159 / 180, rel=REL)
    assert at_x["on_time_delivery_rate_volume"] == 180
    assert at_x["on_time_delivery_rate_7d"] == pytest.approx(21 / 42, rel=REL)  # 42 delivered this week, half late
    assert at_x["compliant_at_t"] == False
    assert at_x["misses_at_t"] == "on_time_delivery_rate"

    # all 21 late deliveries (on days X-7 .. X-1) stay in the 30-day window at X + 7, + 14, + 21
    for weeks in (1, 2, 3):
        row = _at(snaps, "LATE", X + timedelta(weeks=weeks))
        assert row["misses_at_t"] == "on_time_delivery_rate", weeks
        assert row["on_time_delivery_rate_30d"] == pytest.approx(159 / 180, rel=REL), weeks
    # X - 7 looks at (X - 37 d, X - 7 d]: none late yet; X + 28 at (X - 2 d, X + 28 d]: the 6 delivered on
    for when, rate in ((X - timedelta(weeks=1), 1.0), (X + timedelta(weeks=4), 174 / 180)):
        row = _at(snaps, "LATE", when)
        assert row["compliant_at_t"] and row["misses_at_t"] == "", when
        assert row["on_time_delivery_rate_30d"] == pytest.approx(rate, rel=REL), when

    for weeks in (1, 2, 3, 4):
        row = _at(snaps, "LATE", X - timedelta(weeks=weeks))
        assert row["breach"] == True, weeks
        assert row["breach_metrics"] == "on_time_delivery_rate", weeks
        assert row["breach_on_time_delivery_rate"] == True, weeks
        assert row["compliant_at_t"] == True, weeks  # an early warning, not a present miss
    before = _at(snaps, "LATE", X - timedelta(weeks=5))
    assert before["breach"] == False and before["breach_metrics"] == ""
    assert before["breach_on_time_delivery_rate"] == False

    horizon = timedelta(days=28)
    for _, row in snaps.iterrows():
        if row["as_of"] + horizon > pd.Timestamp(CUTOFF):
            assert _missing(row["breach"]) and _missing(row["breach_metrics"]), row["as_of"]
            assert _missing(row["breach_on_time_delivery_rate"]), row["as_of"]
        else:
            assert not _missing(row["breach"]), row["as_of"]
    steady = snaps[snaps["seller_id"] == "STEADY"]
    assert steady["compliant_at_t"].all()
    assert not steady["breach"].dropna().astype(bool).any()
    assert steady["breach"].notna().sum() == snaps[snaps["seller_id"] == "LATE"]["breach"].notna().sum()
    # every weekly date from the first full week to the cut-off, each a Monday
    dates = sorted(set(snaps["as_of"]))
    assert dates[0] == pd.Timestamp(START + timedelta(weeks=1)) and dates[-1] == pd.Timestamp(CUTOFF)
    assert all((b - a) == pd.Timedelta(weeks=1) for a, b in itertools.pairwise(dates))


# --- 3. minimum volumes, channels, cancellers and window edges ---------------------------------

T = datetime(2025, 6, 2)                 # the as-of date (midnight)
EDGE_CUTOFF = T + timedelta(days=7)      # events after T exist but must not be seen


def _spread(n: int, first: datetime, last: datetime) -> list[datetime]:
    step = (last - first) / max(n - 1, 1)
    return [first + i * step for i in range(n)]


@pytest.fixture(scope="module")
def edges(policy, tmp_path_factory) -> dict[str, pd.Series]:
    b = EventsBuilder()
    in_30 = lambda n: _spread(n, T - 27 * DAY, T - 5 * DAY)  # placed, shipped, delivered in (T-30d, T]

    def cancellations(seller: str, n_sf: int, by_seller: int, by_buyer: int = 0, by_marketplace: int = 0) -> None:
        b.seller(seller, datetime(2024, 1, 1))
        for i, at in enumerate(in_30(n_sf)):
            if i < by_seller:
                b.order(seller, at, cancelled=2 * HOUR, cancelled_by="seller")
            elif i < by_seller + by_buyer:
                b.order(seller, at, cancelled=2 * HOUR, cancelled_by="buyer")
            elif i < by_seller + by_buyer + by_marketplace:
                b.order(seller, at, cancelled=2 * HOUR, cancelled_by="marketplace")
            else:
                b.order(seller, at)

    cancellations("MIN49", 49, by_seller=5)
    cancellations("MIN50", 50, by_seller=5)
    cancellations("EXACT", 50, by_seller=1)                    # 1 / 50 = 2%: at the standard, not past it
    cancellations("BUYER", 50, by_seller=0, by_buyer=10, by_marketplace=3)
    cancellations("MFN", 50, by_seller=0)
    for at in in_30(20):                                        # marketplace-fulfilled, cancelled by the seller
        b.order("MFN", at, channel="marketplace", cancelled=HOUR, cancelled_by="seller")

    def feedback(seller: str, n_sf: int, n_mf: int) -> None:
        b.seller(seller, datetime(2024, 1, 1))
        sf = [b.order(seller, at) for at in _spread(n_sf, T - 55 * DAY, T - 5 * DAY)]
        mf = [b.order(seller, at, channel="marketplace") for at in _spread(n_mf, T - 54 * DAY, T - 6 * DAY)]
        for order_id, rating in ((mf[0], 1), (mf[1], 2), (sf[0], 1), (mf[2], 3), (sf[1], 5)):
            b.feedback(order_id, T - 2 * DAY, rating)
        b.feedback(mf[3], T + HOUR, 1)  # after T: not yet known

    feedback("NEGFB", 60, 40)
    feedback("NEGFB99", 59, 40)

    # channels of messages, refunds and returns follow their order; a message about no order is the seller's
    b.seller("CHAN", datetime(2024, 1, 1))
    sf = [b.order("CHAN", at) for at in _spread(5, T - 20 * DAY, T - 10 * DAY)]
    mf = [b.order("CHAN", at, channel="marketplace") for at in _spread(5, T - 20 * DAY, T - 10 * DAY)]
    for k in range(3):
        b.contact("CHAN", T - (3 + k) * DAY, T - (3 + k) * DAY + HOUR)
    for order_id in sf[:2]:
        b.contact("CHAN", T - 4 * DAY, T - 4 * DAY + 2 * HOUR, order_id=order_id)
    for order_id in mf[:3]:
        b.contact("CHAN", T - 4 * DAY, T - 4 * DAY + 60 * HOUR, order_id=order_id)  # late, but not counted
    b.contact("CHAN", T - 3 * DAY, None, order_id=mf[3])  # unanswered: a backlog whatever the channel
    b.contact("CHAN", T - 8 * DAY, T - 8 * DAY + HOUR, order_id=sf[2], topic="item_not_received")
    b.contact("CHAN", T - 8 * DAY, T - 8 * DAY + HOUR, order_id=mf[4], topic="item_not_received")
    b.contact("CHAN", T - 8 * DAY, T - 8 * DAY + HOUR, topic="item_not_received")
    b.refund(sf[0], T - 2 * DAY)
    b.refund(mf[0], T - 2 * DAY)
    b.refund(sf[1], T - 2 * DAY, reason="no_longer_needed", seller_responsible=False)
    b.return_(sf[0], T - 3 * DAY)
    b.return_(mf[0], T - 3 * DAY)
    b.return_(mf[1], T - 3 * DAY)

    # window edges: an event at exactly T is seen, one at exactly T - W days is not
    b.seller("EDGE", datetime(2024, 1, 1, 9))
    b.order("EDGE", T, shipped=None, handover=None, delivered=None)                 # placed at T
    b.order("EDGE", T - 7 * DAY)
    b.order("EDGE", T - 7 * DAY + US)
    b.order("EDGE", T - 30 * DAY)
    b.order("EDGE", T - 30 * DAY + US)
    b.order("EDGE", T - 2 * DAY, ship_by=2 * DAY, shipped=None, handover=None, delivered=None)  # due at T: overdue
    b.order("EDGE", T - 2 * DAY, ship_by=2 * DAY + US, shipped=None, handover=None, delivered=None)  # not yet due
    b.order("EDGE", T - 3 * DAY, shipped=3 * DAY, handover=None, delivered=None)  # late, but shipped at T
    b.order("EDGE", T - 3 * DAY, cancelled=3 * DAY, cancelled_by="buyer")         # cancelled at T
    b.order("EDGE", T - 3 * DAY, shipped=3 * DAY + HOUR, handover=None, delivered=None)  # shipped after T: overdue
    b.order("EDGE", T + US)                                                          # after T: unseen
    b.contact("EDGE", T - 48 * HOUR)                       # unanswered for exactly 48 h: overdue
    b.contact("EDGE", T - 48 * HOUR + US)                  # unanswered, within its 48 h
    b.contact("EDGE", T - 5 * DAY, T)                      # answered at T: not waiting
    b.contact("EDGE", T - 5 * DAY, T + US)                 # answered just after T: waiting, and overdue
    b.warning("EDGE", T)
    b.warning("EDGE", T - 90 * DAY)
    b.warning("EDGE", T + HOUR)
    b.seller("NEWCOMER", T)                                # onboarded at T, first order at T
    b.order("NEWCOMER", T, shipped=None, handover=None, delivered=None)
    b.seller("FUTURE", T + US)                             # onboarded just after T: no row
    b.order("FUTURE", T + HOUR, shipped=None, handover=None, delivered=None)

    events = b.write(tmp_path_factory.mktemp("edges") / "events", EDGE_CUTOFF)
    assert validate_dir(events) == []
    out = events.parent / "snapshots"
    build_snapshots(events, out, policy, as_of=[T.date()])
    snaps = read_snapshots(out)
    assert set(snaps["as_of"].astype(str)) == {str(T.date())}
    return {row["seller_id"]: row for _, row in snaps.iterrows()}


def _check(row: pd.Series, **want: object) -> None:
    problems = _mismatches(row, want, row["seller_id"])
    assert not problems, "\n".join(problems)


def test_minimum_volume_decides_whether_cancellations_are_evaluated(edges):
    _check(edges["MIN49"], cancellation_rate_30d=5 / 49, cancellation_rate_volume=49, compliant_at_t=True,
           misses_at_t="", cancellation_rate_gap=5 / 49 - 0.02)
    _check(edges["MIN50"], cancellation_rate_30d=5 / 50, cancellation_rate_volume=50, compliant_at_t=False,
           misses_at_t="cancellation_rate", cancellation_rate_gap=5 / 50 - 0.02)
    _check(edges["EXACT"], cancellation_rate_30d=0.02, cancellation_rate_volume=50, cancellation_rate_gap=0.0,
           compliant_at_t=True, misses_at_t="")


def test_only_seller_cancellations_of_seller_fulfilled_orders_count(edges):
    _check(edges["MFN"], orders_30d=70, cancellation_rate_volume=50, cancellation_rate_30d=0.0,
           marketplace_fulfilled_share_30d=20 / 70, compliant_at_t=True, misses_at_t="")
    _check(edges["BUYER"], orders_30d=50, cancellation_rate_volume=50, cancellation_rate_30d=0.0,
           compliant_at_t=True, misses_at_t="")


def test_negative_feedback_counts_both_channels(edges):
    # 1-star and 2-star on marketplace-fulfilled orders and 1-star on a seller-fulfilled one; 3 and 5 stars don't count
    _check(edges["NEGFB"], negative_feedback_rate_volume=100, negative_feedback_rate_60d=3 / 100,
           orders_90d=100, compliant_at_t=False, misses_at_t="negative_feedback_rate")
    _check(edges["NEGFB99"], negative_feedback_rate_volume=99, negative_feedback_rate_60d=3 / 99,
           compliant_at_t=True, misses_at_t="")


def test_messages_refunds_and_returns_take_their_orders_channel(edges):
    _check(edges["CHAN"],
           # answered in time: 3 + 1 about no order, 2 + 1 about seller-fulfilled orders; the 3 late
           # answers and the unanswered message are about marketplace-fulfilled orders
           seller_response_rate_volume=7, seller_response_rate_30d=1.0,
           unanswered_contacts=1, overdue_contacts=1,                        # backlogs count every channel
           refund_rate_30d=1 / 5, refund_rate_volume=5,                      # responsible, seller-fulfilled only
           return_rate_60d=1 / 5, return_rate_volume=5,
           item_not_received_rate_60d=2 / 5, item_not_received_rate_volume=5,
           orders_30d=10, marketplace_fulfilled_share_30d=0.5)


def test_windows_are_right_closed_at_t(edges):
    _check(edges["EDGE"],
           orders_7d=7,   # placed at T, T-7d+1us, two at T-2d, three at T-3d (not T-7d, not after T)
           orders_30d=9,  # + T-7d, T-30d+1us
           orders_90d=10,  # + T-30d
           order_growth=9 / 1,
           overdue_unshipped_orders=2,  # ship-by at T and unshipped; ship-by T-2d, shipped after T
           unanswered_contacts=3, overdue_contacts=2,
           warnings_90d=1, warnings_total=2, days_since_last_warning=0,
           tenure_days=(T - datetime(2024, 1, 1, 9)) / timedelta(days=1))
    _check(edges["NEWCOMER"], tenure_days=0.0, orders_7d=1, orders_30d=1)
    assert "FUTURE" not in edges


# --- 4. point in time: the future never changes the present -------------------------------------

SMALL = SimulationConfig(n_sellers=80, start=date(2025, 1, 6), weeks=20, seed=23, workers=1)
SMALL_DATES = [pd.Timestamp(SMALL.start) + 7 * k * TD_DAY for k in range(1, SMALL.weeks)]  # t < cut-off
MUTATIONS = ("deliver", "ship", "unship", "respond", "rate", "cancel", "delete", "add_orders", "delete_orders",
             "warn")


@pytest.fixture(scope="module")
def small(policy, tmp_path_factory):
    root = tmp_path_factory.mktemp("point-in-time")
    events = root / "events"
    simulate_marketplace(SMALL, policy, events, write_latent=False)
    return {"root": root, "events": events, "cutoff": pd.Timestamp(read_cutoff(events)), "built": {}}


def _snapshot_at(events: Path, out: Path, policy: Policy, t: pd.Timestamp) -> pd.DataFrame:
    build_snapshots(events, out, policy, as_of=[t.date()])
    cols = ["seller_id", *feature_spec(policy).names, "compliant_at_t", "misses_at_t"]
    return read_snapshots(out, as_of=t.date())[cols].sort_values("seller_id").reset_index(drop=True)


def _original(small: dict, policy: Policy, t: pd.Timestamp) -> pd.DataFrame:
    if t not in small["built"]:
        small["built"][t] = _snapshot_at(small["events"], small["root"] / f"orig-{t.date()}", policy, t)
    return small["built"][t]


def _later(rng: np.random.Generator, after: pd.Series, until: pd.Series | pd.Timestamp) -> pd.Series:
    """Random times in (after, until], to the microsecond."""
    after = pd.Series(after).astype("datetime64[us]")
    until = pd.Series(until, index=after.index).astype("datetime64[us]")
    span = ((until - after) // pd.Timedelta(microseconds=1)).to_numpy()
    assert (span >= 1).all()
    step = rng.integers(1, span + 1) if len(span) else np.zeros(0, np.int64)
    return after + pd.Series(pd.to_timedelta(step, unit="us"), index=after.index)


def _not_before(t: pd.Timestamp, floor: pd.Series) -> pd.Series:
    """The open lower bound that puts a new time after t and at or after `floor`."""
    bound = floor - pd.Timedelta(microseconds=1)
    return bound.where(bound > t, t)


def _some(rng: np.random.Generator, mask: pd.Series, straddling: pd.Series | None = None) -> pd.Series:
    """A random non-empty part (about a third) of the rows where mask holds (none if it holds nowhere),
    plus about half of those that also straddle t (the row was known at t, this fact of it only later):
    the rows a leak of the future would show in."""
    def part(m: pd.Series, share: int) -> np.ndarray:
        idx = m.index[m.to_numpy()]
        return rng.choice(idx, size=max(1, len(idx) // share), replace=False) if len(idx) else np.array([])
    chosen = list(part(mask, 3))
    if straddling is not None:
        chosen += list(part(mask & straddling, 2))
    return pd.Series(mask.index.isin(chosen), index=mask.index)


def mutate_future(events: Path, out: Path, t: pd.Timestamp, cutoff: pd.Timestamp, kinds: set[str],
                  seed: int) -> dict[str, int]:
    """A copy of the events in which only facts dated after t differ; returns the rows changed per kind."""
    rng = np.random.default_rng(seed)
    tabs = {name: pd.read_parquet(events / name) for name in TABLES}
    o, c, f = tabs["orders"], tabs["contacts"], tabs["feedback"]
    changed: dict[str, int] = {}
    if "deliver" in kinds:  # a delivery after t lands at another time after t (still after the shipment)
        pick = _some(rng, o["delivered_at"] > t, o["ordered_at"] <= t)
        o.loc[pick, "delivered_at"] = _later(rng, _not_before(t, o.loc[pick, "shipped_at"]), cutoff)
        changed["deliver"] = int(pick.sum())
    if "ship" in kinds:  # a shipment after t happens at another time after t, with another tracking verdict
        pick = _some(rng, o["shipped_at"] > t, o["ordered_at"] <= t)
        first_after = o[["carrier_handover_at", "delivered_at"]].min(axis=1).fillna(cutoff).clip(upper=cutoff)
        o.loc[pick, "shipped_at"] = _later(rng, _not_before(t, o.loc[pick, "ordered_at"]), first_after[pick])
        o.loc[pick, "tracking_valid"] = list(rng.random(int(pick.sum())) < 0.5)
        changed["ship"] = int(pick.sum())
    if "respond" in kinds:  # an answer given after t comes at another time after t, or never; an unanswered
        # message gets an answer after t
        never = c["first_response_at"].isna()
        pick = _some(rng, never | (c["first_response_at"] > t), c["opened_at"] <= t)
        new = _later(rng, _not_before(t, c.loc[pick, "opened_at"]), cutoff)
        new[~never[pick] & (rng.random(len(new)) < 0.5)] = pd.NaT
        c.loc[pick, "first_response_at"] = new
        changed["respond"] = int(pick.sum())
    if "rate" in kinds:  # ratings submitted after t say something else
        placed = f["order_id"].map(o.set_index("order_id")["ordered_at"])
        pick = _some(rng, f["submitted_at"] > t, placed <= t)
        f.loc[pick, "rating"] = rng.integers(1, 6, int(pick.sum()))
        changed["rate"] = int(pick.sum())
    if "cancel" in kinds:  # orders still open at the cut-off get cancelled after t, by anyone
        still_open = o["shipped_at"].isna() & o["cancelled_at"].isna() & o["delivered_at"].isna()
        pick = _some(rng, still_open & (o["ordered_at"] < cutoff), o["ordered_at"] <= t)
        o.loc[pick, "cancelled_at"] = _later(rng, _not_before(t, o.loc[pick, "ordered_at"]), cutoff)
        o.loc[pick, "cancelled_by"] = rng.choice(["seller", "buyer", "marketplace"], int(pick.sum()))
        o.loc[pick, "cancel_reason"] = "changed_mind"
        changed["cancel"] = int(pick.sum())
    if "unship" in kinds:  # an order shipped after t is never shipped after all (and is perhaps cancelled)
        referred = set()
        for name in ("returns", "refunds", "feedback"):
            referred |= set(tabs[name]["order_id"])
        pick = _some(rng, (o["shipped_at"] > t) & ~o["order_id"].isin(referred), o["promised_ship_by"] <= t)
        for col in ("shipped_at", "carrier_handover_at", "delivered_at", "carrier", "tracking_valid"):
            o.loc[pick, col] = None
        cancel = pick & (rng.random(len(o)) < 0.3)
        o.loc[cancel, "cancelled_at"] = _later(rng, _not_before(t, o.loc[cancel, "ordered_at"]), cutoff)
        o.loc[cancel, "cancelled_by"] = rng.choice(["seller", "buyer", "marketplace"], int(cancel.sum()))
        o.loc[cancel, "cancel_reason"] = "out_of_stock"
        changed["unship"] = int(pick.sum())
    if "delete" in kinds:  # returns, refunds and messages dated after t never happen
        changed["delete"] = 0
        tabs["contacts"] = c
        for name, col in (("returns", "requested_at"), ("refunds", "refunded_at"), ("contacts", "opened_at")):
            drop = _some(rng, tabs[name][col] > t)
            changed["delete"] += int(drop.sum())
            tabs[name] = tabs[name][~drop]
        c = tabs["contacts"]
    if "delete_orders" in kinds:  # orders placed after t that nothing refers to never happen
        referred = set(c["order_id"].dropna())
        for name in ("returns", "refunds", "feedback"):
            referred |= set(tabs[name]["order_id"])
        drop = _some(rng, (o["ordered_at"] > t) & ~o["order_id"].isin(referred))
        o = o[~drop]
        changed["delete_orders"] = int(drop.sum())
    sellers = tabs["sellers"]
    on_board = sellers.loc[sellers["onboarded_at"] <= t, "seller_id"].to_numpy()
    if "add_orders" in kinds:  # new orders placed after t, in every state, for sellers already selling
        k = int(rng.integers(1, 30))
        placed = _later(rng, pd.Series(t, index=range(k)), cutoff)
        shipped = placed + pd.to_timedelta(rng.integers(1, 48 * 3600, k), unit="s")
        delivered = shipped + pd.to_timedelta(rng.integers(1, 96 * 3600, k), unit="s")
        cancelled = placed + pd.Timedelta(hours=1)
        state = rng.integers(0, 4, k)  # 0 open, 1 shipped, 2 delivered, 3 cancelled
        shipped = shipped.where(np.isin(state, [1, 2]) & (shipped <= cutoff))
        delivered = delivered.where((state == 2) & shipped.notna() & (delivered <= cutoff))
        cancelled = cancelled.where((state == 3) & (cancelled <= cutoff))
        new = pd.DataFrame({
            "order_id": [f"NEW-{seed}-{i}" for i in range(k)],
            "seller_id": rng.choice(on_board, k),
            "ordered_at": placed,
            "fulfilment_channel": rng.choice(["seller", "marketplace"], k),
            "order_value": np.round(rng.uniform(5, 200, k), 2),
            "item_count": 1,
            "promised_ship_by": placed + pd.Timedelta(days=1),
            "promised_delivery_by": placed + pd.Timedelta(days=5),
            "shipped_at": shipped,
            "carrier_handover_at": shipped,
            "carrier": ["ups" if s else None for s in shipped.notna()],
            "tracking_valid": [bool(v) if s else None for v, s in zip(rng.random(k) < 0.9, shipped.notna())],
            "delivered_at": delivered,
            "cancelled_at": cancelled,
            "cancelled_by": ["seller" if x else None for x in cancelled.notna()],
            "cancel_reason": ["changed_mind" if x else None for x in cancelled.notna()],
        })
        o = pd.concat([o, new.astype({"tracking_valid": "object"})], ignore_index=True)
        changed["add_orders"] = k
    if "warn" in kinds:  # warnings issued after t
        k = int(rng.integers(1, 4))
        new = pd.DataFrame({
            "action_id": [f"NEWA-{seed}-{i}" for i in range(k)],
            "seller_id": rng.choice(on_board, k),
            "issued_at": _later(rng, pd.Series(t, index=range(k)), cutoff),
            "action": "warning", "metric": "cancellation_rate", "metric_value": 0.05, "threshold": 0.02,
            "policy_version": "walmart-us-2026",
        })
        tabs["policy_actions"] = pd.concat([tabs["policy_actions"], new], ignore_index=True)
        changed["warn"] = k
    tabs["orders"], tabs["contacts"], tabs["feedback"] = o, c, f
    shutil.copytree(events, out)
    write_tables(tabs, out, cutoff.to_pydatetime())
    return changed


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(week=st.integers(0, len(SMALL_DATES) - 1), kinds=st.sets(st.sampled_from(MUTATIONS), min_size=1),
       seed=st.integers(0, 2**32 - 1))
def test_changing_events_after_t_changes_nothing_at_t(small, policy, week, kinds, seed):
    t = SMALL_DATES[week]
    work = Path(tempfile.mkdtemp(dir=small["root"]))
    mutated = work / "events"
    changed = mutate_future(small["events"], mutated, t, small["cutoff"], kinds, seed)
    assert set(changed) == kinds and all(n > 0 for n in changed.values()), changed  # not vacuous
    assert validate_dir(mutated) == []
    before = _original(small, policy, t)
    after = _snapshot_at(mutated, work / "snapshots", policy, t)
    assert len(before) > 0
    pd.testing.assert_frame_equal(after, before, check_exact=True)
    shutil.rmtree(work)


def test_changing_events_at_or_before_t_changes_features_at_t(small, policy):
    t = SMALL_DATES[9]
    before = _original(small, policy, t).set_index("seller_id")
    tabs = {name: pd.read_parquet(small["events"] / name) for name in TABLES}
    o, f = tabs["orders"], tabs["feedback"]
    seller = before.index[0]
    # one more order, placed at exactly t
    extra = o[o["seller_id"] == seller].iloc[[0]].assign(
        order_id="PAST-1", ordered_at=t, promised_ship_by=t + pd.Timedelta(days=1),
        promised_delivery_by=t + pd.Timedelta(days=5), shipped_at=pd.NaT, carrier_handover_at=pd.NaT, carrier=None,
        tracking_valid=None, delivered_at=pd.NaT, cancelled_at=pd.NaT, cancelled_by=None, cancel_reason=None)
    tabs["orders"] = pd.concat([o, extra], ignore_index=True)
    # a good rating given in the last 60 days turns bad
    recent = f[(f["submitted_at"] <= t) & (f["submitted_at"] > t - 60 * TD_DAY) & (f["rating"] >= 3)
               & (f["seller_id"] != seller) & f["seller_id"].isin(before.index)]
    flipped = recent.index[0]
    rated = f.at[flipped, "seller_id"]
    f.loc[flipped, "rating"] = 1
    work = small["root"] / "past"
    shutil.copytree(small["events"], work / "events")
    write_tables({"orders": tabs["orders"], "feedback": f}, work / "events", small["cutoff"].to_pydatetime())
    assert validate_dir(work / "events") == []
    after = _snapshot_at(work / "events", work / "snapshots", policy, t).set_index("seller_id")

    assert after.at[seller, "orders_7d"] == before.at[seller, "orders_7d"] + 1
    assert after.at[seller, "orders_90d"] == before.at[seller, "orders_90d"] + 1
    n = before.at[rated, "negative_feedback_rate_volume"]
    assert after.at[rated, "negative_feedback_rate_60d"] == pytest.approx(
        before.at[rated, "negative_feedback_rate_60d"] + 1 / n, rel=REL)
    untouched = before.index.difference([seller, rated])
    world = {f.name for f in feature_spec(policy).features if f.group == "world"}
    own = [c for c in after.columns if c not in world]  # the world around a seller is everyone's
    pd.testing.assert_frame_equal(after.loc[untouched, own], before.loc[untouched, own], check_exact=True)
