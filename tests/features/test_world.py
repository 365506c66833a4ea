"""The world around a seller (features of family "world"), checked against hand computations in plain
pandas from the event tables (`tests.reference_world.Hand`), sharing no code with `features.pipeline.world` or
the spec's SQL.

A hand-built marketplace: twelve sellers in three regions and two categories, on three carriers (two
sellers on two), with orders every day, some marketplace-fulfilled, some late, lost, cancelled, with
invalid tracking, returns and ratings; and a carrier in one region late for everyone in the last weeks.

1. Every world feature of every snapshot row equals its hand value; the snapshots are the same built in
   one pass or in four buckets of sellers (each pass sees the aggregates over all of them).
2. Point in time: rewriting what happens after t changes nothing at t, while another seller's late
   deliveries before t change a seller's regional values.
"""

from __future__ import annotations

import math
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from features.events.schema import TABLES
from features.pipeline import snapshots
from features.pipeline.snapshots import build_snapshots, read_snapshots, seller_ranges
from features.pipeline.spec import feature_spec
from features.policy.definition import Policy
from tests.events_builder import DAY, HOUR, EventsBuilder
from tests.reference_world import Hand

TD_DAY = pd.Timedelta(days=1)
START = datetime(2025, 1, 6)
DAYS = 140
CUTOFF = START + timedelta(days=DAYS)
REGIONS = ("pacific", "south", "north")
CARRIERS = ("ups", "usps", "fedex")
SPIKE = ("pacific", "fedex", DAYS - 25)  # this pair delivers late for everyone from this day on
AS_OF = [START + timedelta(days=d) for d in (40, 70, 112, 126, 133)]
REL = 1e-9


def _seller_carriers(i: int) -> list[str]:
    first = CARRIERS[(i // 3) % 3]
    return [first, CARRIERS[(i // 3 + 2) % 3]] if i % 4 == 0 else [first]


def marketplace_events(directory: Path, seed: int = 5) -> Path:
    """The hand-built marketplace (see the module docstring), written as an events folder."""
    rng = np.random.default_rng(seed)
    b = EventsBuilder()
    for i in range(12):
        sid = b.seller(f"S{i:02d}", START - timedelta(days=30), category=("home", "toys")[i % 2],
                       region=REGIONS[i % 3])
        for day in range(DAYS - 1):
            for _ in range(rng.poisson(3)):
                _order(b, rng, sid, REGIONS[i % 3], _seller_carriers(i), START + timedelta(days=day))
    return b.write(directory, CUTOFF)


def _order(b: EventsBuilder, rng: np.random.Generator, sid: str, region: str, carriers: list[str],
           day: datetime) -> None:
    """One order of a seller on a day, with what happened to it (nothing after the cut-off)."""
    at = day + timedelta(seconds=int(rng.integers(0, 86_400)))
    carrier = carriers[int(rng.integers(0, len(carriers)))]
    channel = "marketplace" if rng.random() < 0.15 else "seller"
    if rng.random() < 0.03:
        b.order(sid, at, channel=channel, cancelled=2 * HOUR, cancelled_by="seller")
        return
    shipped = timedelta(hours=float(rng.uniform(1, 30)))
    transit = timedelta(days=float(rng.uniform(1, 4.6)))
    if (region, carrier) == SPIKE[:2] and (day - START).days >= SPIKE[2]:
        transit += 3 * DAY
    delivered = None if rng.random() < 0.03 else shipped + transit
    if at + shipped > CUTOFF:
        shipped = delivered = None
    elif delivered is not None and at + delivered > CUTOFF:
        delivered = None
    oid = b.order(sid, at, channel=channel, shipped=shipped, handover=shipped, delivered=delivered,
                  tracking_valid=None if shipped is None else bool(rng.random() > 0.05))
    if shipped is not None:
        b.rows["orders"][-1]["carrier"] = carrier
    if delivered is not None and rng.random() < 0.08 and at + delivered + 10 * DAY < CUTOFF:
        b.return_(oid, at + delivered + timedelta(days=float(rng.uniform(0.2, 10))))
    if rng.random() < 0.25:
        when = at + (delivered or 5 * DAY) + timedelta(days=float(rng.uniform(0, 5)))
        if when <= CUTOFF:
            b.feedback(oid, when, int(rng.integers(1, 6)))


# --- the hand computation --------------------------------------------------------------------------


def _same(got: object, want: float | None) -> bool:
    if want is None or got is None or (isinstance(got, float) and math.isnan(got)):
        return want is None and (got is None or (isinstance(got, float) and math.isnan(got)))
    return float(got) == pytest.approx(want, rel=REL, abs=1e-12)


# --- 1. every value, in one pass and in four ---------------------------------------------------------


@pytest.fixture(scope="module")
def world(policy: Policy, tmp_path_factory) -> dict:
    """The events, their hand computation, and the snapshots at AS_OF built in one pass and in four."""
    root = tmp_path_factory.mktemp("world")
    events = marketplace_events(root / "events")
    one = root / "one"
    build_snapshots(events, one, policy, as_of=[t.date() for t in AS_OF])
    with pytest.MonkeyPatch.context() as mp:
        n_orders = len(pd.read_parquet(events / "orders.parquet"))
        mp.setattr(snapshots, "ORDERS_PER_PASS", n_orders // 4 + 1)  # four buckets of three sellers
        build_snapshots(events, root / "four", policy, as_of=[t.date() for t in AS_OF])
    con = duckdb.connect()
    sellers = pd.read_parquet(events / "sellers.parquet")
    con.register("sellers", sellers)
    ranges = seller_ranges(con, 4)
    bucket = {sid: b for b, cond in enumerate(ranges)
              for (sid,) in con.execute(f"SELECT seller_id FROM sellers WHERE {cond}").fetchall()}
    return {"events": events, "hand": Hand(events), "one": read_snapshots(one), "four": read_snapshots(root / "four"),
            "bucket": bucket}


def _world_names(policy: Policy) -> list[str]:
    return [f.name for f in feature_spec(policy).features if f.group == "world"]


def test_the_policy_counts_the_channels_the_hand_computation_does(policy: Policy) -> None:
    for name in ("on_time_delivery_rate", "valid_tracking_rate", "return_rate"):
        assert policy.metrics[name].channels == ("seller",), name
    assert set(policy.metrics["negative_feedback_rate"].channels) == {"seller", "marketplace"}


def test_world_features_are_context_of_the_world_family(policy: Policy) -> None:
    spec = feature_spec(policy)
    names = _world_names(policy)
    assert 10 <= len(names) <= 14
    assert all(spec[n].role == "context" and spec[n].dtype == "float" for n in names)
    assert spec["region_late_delivery_rate_7d"].standard == "on_time_delivery_rate"
    assert spec["category_return_rate_60d"].standard == "return_rate"
    assert spec["marketplace_order_volume_vs_8w"].standard is None
    assert spec["carrier_late_delivery_rate_7d"].reason_text(0.184) == \
        "Sellers on the same carriers in this region: 18.4% of deliveries late in the last 7 days"


def test_every_world_feature_equals_its_hand_value(world, policy: Policy) -> None:
    snaps, hand = world["one"], world["hand"]
    names = _world_names(policy)
    assert len(snaps) == 12 * len(AS_OF)
    problems, values = [], {n: [] for n in names}
    for _, row in snaps.iterrows():
        want = hand.world(row["seller_id"], pd.Timestamp(row["as_of"]))
        assert set(want) == set(names)
        for n in names:
            values[n].append(want[n])
            if not _same(row[n], want[n]):
                problems.append(f"{row['seller_id']} {row['as_of']} {n}: snapshot {row[n]!r}, by hand {want[n]!r}")
    assert not problems, "\n".join(problems)
    # the marketplace exercises what it should: values that vary, a carrier running late for some
    for n in names:
        known = [v for v in values[n] if v is not None]
        assert len(set(known)) > 1, n
    shares = [v for v in values["carriers_running_late_share_30d"] if v is not None]
    assert any(0 < v < 1 for v in shares) and any(v == 1 for v in shares) and any(v == 0 for v in shares)
    assert any(v is None for v in values["marketplace_order_volume_vs_8w"])  # before 8 weeks of events


def test_passes_over_buckets_of_sellers_see_the_same_world(world, policy: Policy) -> None:
    one, four, bucket = world["one"], world["four"], world["bucket"]
    pd.testing.assert_frame_equal(one, four)
    assert sorted(set(bucket.values())) == [0, 1, 2, 3]
    region = world["hand"].sellers["region"]
    for r in REGIONS:  # each region's sellers lie in several buckets, and all see its one value
        assert len({bucket[s] for s in region.index[region == r]}) > 1, r
        rows = four[four["seller_id"].map(region) == r]
        assert (rows.groupby("as_of")["region_late_delivery_rate_7d"].nunique() == 1).all()


MARKET_DATES = [datetime(2025, 3, 3), datetime(2025, 7, 7), datetime(2025, 11, 17)]


def test_world_features_on_the_simulated_marketplace(marketplace, policy: Policy, tmp_path: Path) -> None:
    """The same hand computation on the session's simulated marketplace (regional carrier disruptions, the
    holiday peak): two sellers of each region, at three dates."""
    events = marketplace[0]
    build_snapshots(events, tmp_path / "snaps", policy, as_of=[t.date() for t in MARKET_DATES])
    snaps = read_snapshots(tmp_path / "snaps")
    hand = Hand(events)
    active = snaps.groupby("seller_id").size()
    region = hand.sellers["region"].reindex(active.index[active == len(MARKET_DATES)])
    chosen = [sid for r in sorted(region.unique()) for sid in sorted(region.index[region == r])[:2]]
    assert len(chosen) >= 10
    problems, names = [], _world_names(policy)
    for _, row in snaps[snaps["seller_id"].isin(chosen)].iterrows():
        want = hand.world(row["seller_id"], pd.Timestamp(row["as_of"]))
        problems += [f"{row['seller_id']} {row['as_of']} {n}: snapshot {row[n]!r}, by hand {want[n]!r}"
                     for n in names if not _same(row[n], want[n])]
    assert not problems, "\n".join(problems)
    assert snaps["carriers_running_late_share_30d"].gt(0).any()
    peak = snaps.loc[pd.to_datetime(snaps["as_of"]) == pd.Timestamp(MARKET_DATES[-1]), "marketplace_order_volume_vs_8w"]
    assert peak.nunique() == 1  # one marketplace, one value for every seller


# --- 2. point in time ------------------------------------------------------------------------------


T = pd.Timestamp(START + timedelta(days=119))


def _world_at(events: Path, out: Path, policy: Policy) -> pd.DataFrame:
    build_snapshots(events, out, policy, as_of=[T.date()])
    return read_snapshots(out).set_index("seller_id")[_world_names(policy)]


def _edited(world: dict, directory: Path, edit) -> Path:
    """A copy of the events with `edit(tables)` applied to the frames of every table."""
    shutil.copytree(world["events"], directory)
    tables = {name: pd.read_parquet(directory / f"{name}.parquet") for name in TABLES}
    edit(tables)
    for name, frame in tables.items():
        frame.to_parquet(directory / f"{name}.parquet", index=False)
    return directory


def _rewrite_the_future(tables: dict[str, pd.DataFrame]) -> None:
    """Everything dated after T happens otherwise: deliveries later (all late), shipments without valid
    tracking, more returns, every rating 1 star, a burst of orders."""
    o, r, f = tables["orders"], tables["returns"], tables["feedback"]
    after = o["delivered_at"] > T
    o.loc[after, "delivered_at"] = o.loc[after, "promised_delivery_by"].where(
        o.loc[after, "promised_delivery_by"] > o.loc[after, "delivered_at"], o.loc[after, "delivered_at"]) + HOUR
    o.loc[after, "delivered_at"] = o.loc[after, "delivered_at"].clip(upper=pd.Timestamp(CUTOFF))
    o.loc[o["shipped_at"] > T, "tracking_valid"] = False
    f.loc[f["submitted_at"] > T, "rating"] = 1
    delivered = o[(o["delivered_at"] <= T) & ~o["order_id"].isin(r["order_id"])].head(40)
    new = pd.DataFrame({"return_id": [f"RX{i}" for i in range(len(delivered))], "order_id": delivered["order_id"],
                        "seller_id": delivered["seller_id"], "requested_at": T + HOUR, "reason": "damaged",
                        "seller_responsible": True})
    tables["returns"] = pd.concat([r, new], ignore_index=True)
    burst = o[o["ordered_at"] <= T].tail(200).copy()
    burst["order_id"] = "NEW" + burst["order_id"]
    shift = T + HOUR - burst["ordered_at"].min()
    for col in ("ordered_at", "promised_ship_by", "promised_delivery_by"):
        burst[col] = burst[col] + shift
    burst[["shipped_at", "carrier_handover_at", "delivered_at", "cancelled_at"]] = pd.NaT
    burst[["carrier", "tracking_valid", "cancelled_by", "cancel_reason"]] = None
    tables["orders"] = pd.concat([o, burst[burst["ordered_at"] <= pd.Timestamp(CUTOFF)]], ignore_index=True)


def test_nothing_after_t_changes_the_world_at_t(world, policy: Policy, tmp_path: Path) -> None:
    before = _world_at(world["events"], tmp_path / "before", policy)
    future = _edited(world, tmp_path / "future", _rewrite_the_future)
    after = _world_at(future, tmp_path / "after", policy)
    pd.testing.assert_frame_equal(before, after)
    # the rewrite does show at a later date, and the hand computation at T agrees with the pipeline
    hand = Hand(future)
    later = pd.Timestamp(CUTOFF)
    assert hand.world("S00", later)["region_late_delivery_rate_7d"] != world["hand"].world("S00", later)[
        "region_late_delivery_rate_7d"]
    for sid in ("S00", "S05"):
        want = hand.world(sid, T)
        assert all(_same(after.at[sid, n], want[n]) for n in want), sid


def test_other_sellers_late_deliveries_before_t_change_a_sellers_region(world, policy: Policy,
                                                                        tmp_path: Path) -> None:
    """S03's deliveries in the week before T all arrive a day after their promise: S00, in the same region
    and with events untouched, sees its region's and carriers' late rates rise; S01, elsewhere, does not."""
    def late_s03(tables: dict[str, pd.DataFrame]) -> None:
        o = tables["orders"]
        pick = (o["seller_id"] == "S03") & (o["delivered_at"] > T - 7 * TD_DAY) & (o["delivered_at"] <= T) \
            & (o["delivered_at"] <= o["promised_delivery_by"])
        o.loc[pick, "promised_delivery_by"] = o.loc[pick, "delivered_at"] - HOUR
        o.loc[pick, "promised_ship_by"] = o.loc[pick, "promised_ship_by"].clip(upper=o.loc[pick, "promised_delivery_by"])
        o.loc[pick, "ordered_at"] = o.loc[pick, "ordered_at"].clip(upper=o.loc[pick, "promised_ship_by"])
        assert pick.sum() > 5

    before = _world_at(world["events"], tmp_path / "before", policy)
    after = _world_at(_edited(world, tmp_path / "edited", late_s03), tmp_path / "after", policy)
    assert after.at["S00", "region_late_delivery_rate_7d"] > before.at["S00", "region_late_delivery_rate_7d"]
    assert after.at["S00", "late_delivery_rate_vs_region_30d"] < before.at["S00", "late_delivery_rate_vs_region_30d"]
    regional = [n for n in after.columns if n.startswith("region_") or n.endswith("_vs_region_30d")]
    pd.testing.assert_series_equal(after.loc["S01", regional], before.loc["S01", regional])


@pytest.mark.spark
def test_spark_gives_the_same_world(world, policy: Policy, tmp_path: Path) -> None:
    build_snapshots(world["events"], tmp_path / "spark", policy, as_of=[t.date() for t in AS_OF], engine="spark")
    names = ["seller_id", "as_of", *_world_names(policy)]
    pd.testing.assert_frame_equal(read_snapshots(tmp_path / "spark")[names], world["one"][names], check_dtype=False)


def test_a_day_bucket_holds_the_times_after_midnight_up_to_the_next_midnight() -> None:
    """(day k, day k + 1]: an event at midnight t belongs to the day before, so an as-of day t sees it. The
    seller's flows and its world bucket with this one function (flows.day_bucket)."""
    import duckdb

    from features.pipeline.flows import DAY_US, day_bucket

    k = 20_000
    times = [k * DAY_US - 1, k * DAY_US, k * DAY_US + 1, (k + 1) * DAY_US]
    got = duckdb.sql(f"SELECT {day_bucket('x')} AS b FROM (SELECT UNNEST({times}) AS x)").fetchall()
    assert [b for (b,) in got] == [k - 1, k - 1, k, k]
