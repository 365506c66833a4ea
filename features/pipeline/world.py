"""The world around a seller: what happens to every seller in its region, on its carriers, in its
category and on the whole marketplace, at each as-of date. A seller's own rates say what it does; these
say what everyone around it goes through (a carrier late for every seller in a region this week, the
holiday peak straining the marketplace), so a model can tell a seller's slip from the weather.

Point in time like the flows: each event is dated by the moment it became known (a late delivery when it
is delivered, an invalid tracking number when the order ships, a return when it is requested, a rating
when it is submitted) and bucketed by day the same way (`flows.day_bucket`), so a window of W days ending at t
holds buckets t - W .. t - 1, that is every event in (t - W days, t].

The aggregates are over ALL sellers, whatever bucket of sellers a pass computes, so they are staged
once per build, before the passes (DuckDB: tables every cursor of the database sees; Spark: views):

- `world_daily`: counts per (region, category, carrier, day), the only place the events are read;
- `world_context`: per (region, category, as-of day): the region's late deliveries and invalid tracking
  (7 and 30 days), the category's returns and 1-2 star ratings (60 days), the marketplace's order volume
  against its own recent weeks and its late deliveries against its own 90 days;
- `world_carriers`: per (region, carrier, as-of day): late deliveries over 7 days and whether the pair
  is running late now (`RUNNING_LATE_FACTOR`).

Each pass then computes `world_sellers` for its own sellers: per (seller, as-of day), the late rate of
the (region, carrier) pairs its last 30 days' shipments used, weighted by them, and the share of those
shipments on pairs running late now. `world_join` is how the snapshot query reads all of it.

Each rate counts the fulfilment channels of the policy standard that judges the same outcome (`WorldRate`),
so a seller's own rate and its region's or category's compare like with like.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from features.events.schema import FULFILMENT_CHANNELS
from features.pipeline.flows import day_bucket
from features.policy.definition import Metric, Policy

DAILY, CONTEXT, CARRIERS, SELLERS = "world_daily", "world_context", "world_carriers", "world_sellers"
SPANS, WINDOWS = "world_spans", "world_windows"  # the carrier calendar (`carrier_calendar`)
STAGED = (DAILY, CONTEXT, CARRIERS)
"""The tables staged once per build across all sellers, in the order they are made."""

RUNNING_LATE_FACTOR = 1.5
"""A (region, carrier) is running late now when its 7-day late-delivery rate is at least this multiple of
its own 90-day rate, and above the whole marketplace's 7-day rate: late for it, and late for the moment."""
VOLUME_WEEKS = 8
"""Marketplace volume is read against the weekly average of this many weeks before the last one."""
CARRIER_DAYS = 30
"""The seller's recent shipments whose carriers it is exposed to."""
LONGEST_DAYS = 90
"""The longest window the world aggregates look back (the 90-day late-delivery level)."""


class Engine(Protocol):
    """What the SQL needs of an engine's dialect (`features.pipeline.sql.Dialect`)."""

    epoch_us: str

    def us(self, column: str) -> str: ...


@dataclass(frozen=True)
class WorldRate:
    """A rate of bad outcomes counted across sellers, and the policy standard judging the same outcomes:
    `good` / `denominator` when the standard counts the good ones (on-time deliveries), whose complement
    is the bad rate; `bad` / `denominator` when it counts the bad ones (returns)."""

    name: str
    denominator: str
    good: str | None = None
    bad: str | None = None

    def judged_by(self, policy: Policy) -> Metric | None:
        """The policy's standard whose rate is exactly this one (or its complement); None: none is."""
        numerator = (self.good or self.bad,)
        return next((m for m in policy.metrics.values()
                     if m.numerator == numerator and m.denominator == self.denominator), None)

    def channels(self, policy: Policy) -> tuple[str, ...]:
        """The fulfilment channels counted: the judging standard's, else seller-fulfilled orders."""
        m = self.judged_by(policy)
        return tuple(sorted(m.channels)) if m else ("seller",)


LATE_DELIVERY = WorldRate("late_delivery", "delivered_orders", good="on_time_deliveries")
INVALID_TRACKING = WorldRate("invalid_tracking", "shipped_orders", good="valid_tracking_shipments")
RETURNS = WorldRate("returns", "delivered_orders", bad="returns")
NEGATIVE_FEEDBACK = WorldRate("negative_feedback", "orders", bad="negative_feedback")


def _in(column: str, channels: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(c) for c in channels)})"


def _ratio(num: str, den: str) -> str:
    return f"CASE WHEN ({den}) > 0 THEN ({num}) / CAST(({den}) AS DOUBLE) END"


_COUNTS = ("orders", "orders_fb", "delivered", "late", "delivered_ret", "shipped", "invalid", "negative", "returned")


def _branch(source: str, time_us: str, carrier: str, counts: dict[str, str], where: str, first_day: int,
            last_day: int) -> str:
    """One dated kind of event counted per (cell, carrier, day), inside the days staged: `counts` maps a
    count to the condition a row adds one to it on (the other counts are 0)."""
    day = day_bucket(time_us)
    cols = ", ".join(f"CAST(SUM(CASE WHEN {counts[c]} THEN 1 ELSE 0 END) AS BIGINT) AS {c}" if c in counts
                     else f"CAST(0 AS BIGINT) AS {c}" for c in _COUNTS)
    return (f"SELECT s.cell, e.by_carrier AS carrier, e.on_day AS day, {cols}\n"
            f"  FROM (SELECT src.*, {carrier} AS by_carrier, {day} AS on_day FROM {source} src WHERE {where}) e\n"
            f"  JOIN cells s ON s.seller_id = e.seller_id\n"
            f"  WHERE e.on_day BETWEEN {first_day} AND {last_day}\n"
            f"  GROUP BY s.cell, e.by_carrier, e.on_day")


def _channelled(table: str, channels: tuple[str, ...]) -> tuple[str, str]:
    """(source, condition): the rows of an order-level table on `channels`, each row taking its order's
    channel; every channel counted: the table alone, not joined to the orders."""
    if set(channels) >= set(FULFILMENT_CHANNELS):
        return table, "TRUE"
    return (f"(SELECT x.*, o.fulfilment_channel FROM {table} x JOIN "
            f"(SELECT order_id, fulfilment_channel FROM orders) o ON o.order_id = x.order_id)",
            _in("fulfilment_channel", channels))


def world_daily_sql(policy: Policy, d: Engine, first_day: int, last_day: int) -> str:
    """Counts per (region, category, carrier, day) over every seller, days `first_day` .. `last_day` (summed
    per cell, a number for each (region, category), which is three times quicker to group by than the names):
    orders placed (all channels, and those the negative-feedback rate counts); deliveries and late ones
    (by carrier), shipments and those without valid tracking, deliveries, returns and 1-2 star ratings,
    each on the channels its rate counts (`WorldRate.channels`)."""
    late, invalid = LATE_DELIVERY.channels(policy), INVALID_TRACKING.channels(policy)
    ret, neg = RETURNS.channels(policy), NEGATIVE_FEEDBACK.channels(policy)
    us = d.us
    feedback, neg_fb = _channelled("feedback", neg)
    returns, ret_rows = _channelled("returns", ret)
    branches = [
        _branch("orders", us("ordered_at"), "CAST(NULL AS STRING)",
                {"orders": "TRUE", "orders_fb": _in("fulfilment_channel", neg)}, "TRUE", first_day, last_day),
        _branch("orders", us("delivered_at"), "carrier",
                {"delivered": _in("fulfilment_channel", late), "delivered_ret": _in("fulfilment_channel", ret),
                 "late": f"{_in('fulfilment_channel', late)} AND {us('delivered_at')} > {us('promised_delivery_by')}"},
                "delivered_at IS NOT NULL", first_day, last_day),
        _branch("orders", us("shipped_at"), "CAST(NULL AS STRING)",
                {"shipped": _in("fulfilment_channel", invalid),
                 "invalid": f"{_in('fulfilment_channel', invalid)} AND NOT COALESCE(tracking_valid, FALSE)"},
                "shipped_at IS NOT NULL", first_day, last_day),
        _branch(feedback, us("submitted_at"), "CAST(NULL AS STRING)", {"negative": neg_fb}, "rating <= 2",
                first_day, last_day),
        _branch(returns, us("requested_at"), "CAST(NULL AS STRING)", {"returned": ret_rows}, "TRUE",
                first_day, last_day),
    ]
    sums = ", ".join(f"CAST(SUM(b.{c}) AS BIGINT) AS {c}" for c in _COUNTS)
    union = "\n  UNION ALL\n  ".join(branches)
    return f"""WITH cells AS (SELECT seller_id, region, category, DENSE_RANK() OVER (ORDER BY region, category) AS cell
               FROM sellers)
SELECT k.region, k.category, b.carrier, b.day, {", ".join(f"b.{c}" for c in _COUNTS)}
FROM (
  SELECT b.cell, b.carrier, b.day, {sums}
  FROM (
  {union}
  ) b
  GROUP BY b.cell, b.carrier, b.day
) b
JOIN (SELECT DISTINCT cell, region, category FROM cells) k ON k.cell = b.cell"""


_AS_OF = "(SELECT as_of_day FROM probe_days WHERE is_as_of)"


def _windows(keys: tuple[str, ...], sums: dict[str, tuple[str, int, int]], where: str = "TRUE") -> str:
    """Per key and as-of day D, each sum of a daily count over buckets D - oldest .. D - newest - 1
    (`sums`: name -> (count, newest, oldest) in days back), from `world_daily` summed over the other keys."""
    span = max(oldest for _, _, oldest in sums.values())
    counts = sorted({c for c, _, _ in sums.values()})
    k = "".join(f"{key}, " for key in keys)
    daily = (f"SELECT {k}day, {', '.join(f'SUM({c}) AS {c}' for c in counts)} FROM {DAILY} "
             f"WHERE {where} GROUP BY {k}day")
    cols = ", ".join(f"CAST(SUM(CASE WHEN x.day >= p.as_of_day - {old} AND x.day < p.as_of_day - {new} "
                     f"THEN x.{c} ELSE 0 END) AS BIGINT) AS {name}" for name, (c, new, old) in sums.items())
    xk = "".join(f"x.{key}, " for key in keys)
    return (f"SELECT {xk}p.as_of_day, {cols} FROM ({daily}) x JOIN {_AS_OF} p "
            f"ON x.day >= p.as_of_day - {span} AND x.day < p.as_of_day GROUP BY {xk}p.as_of_day")


def _market() -> str:
    """The whole marketplace per as-of day: orders of the last 7 days and of the VOLUME_WEEKS weeks
    before, deliveries and late ones over 7 and LONGEST_DAYS days."""
    return _windows((), {"orders_7": ("orders", 0, 7), "orders_before": ("orders", 7, 7 * (VOLUME_WEEKS + 1)),
                         "late_7": ("late", 0, 7), "delivered_7": ("delivered", 0, 7),
                         "late_90": ("late", 0, LONGEST_DAYS), "delivered_90": ("delivered", 0, LONGEST_DAYS)})


def world_context_sql() -> str:
    """Per (region, category) of the sellers and as-of day: the region's late-delivery and invalid-tracking
    rates over 7 and 30 days, the category's return and 1-2 star rates over 60 days, the marketplace's
    orders of the last 7 days over its weekly average of the `VOLUME_WEEKS` weeks before (missing until the
    events reach back over those weeks: the first weeks of an extract are no surge), and its 7-day
    late-delivery rate over its 90-day one."""
    before = 7 * (VOLUME_WEEKS + 1)
    region = _windows(("region",), {f"{c}_{w}": (c, 0, w) for c in ("late", "delivered", "invalid", "shipped")
                                    for w in (7, 30)})
    category = _windows(("category",), {f"{c}_60": (c, 0, 60) for c in ("returned", "delivered_ret", "negative",
                                                                        "orders_fb")})
    return f"""SELECT k.region AS ctx_region, k.category AS ctx_category, p.as_of_day AS ctx_day,
  {_ratio("r.late_7", "r.delivered_7")} AS world_region_late_7d,
  {_ratio("r.late_30", "r.delivered_30")} AS world_region_late_30d,
  {_ratio("r.invalid_7", "r.shipped_7")} AS world_region_invalid_7d,
  {_ratio("r.invalid_30", "r.shipped_30")} AS world_region_invalid_30d,
  {_ratio("c.returned_60", "c.delivered_ret_60")} AS world_category_return_60d,
  {_ratio("c.negative_60", "c.orders_fb_60")} AS world_category_negative_60d,
  CASE WHEN p.as_of_day - {before} >= (SELECT MIN(day) FROM {DAILY} WHERE orders > 0)
    THEN {_ratio("m.orders_7", f"(m.orders_before / {float(VOLUME_WEEKS)})")} END AS world_market_volume_ratio,
  {_ratio(_ratio("m.late_7", "m.delivered_7"), _ratio("m.late_90", "m.delivered_90"))} AS world_market_late_ratio
FROM (SELECT DISTINCT region, category FROM sellers) k CROSS JOIN {_AS_OF} p
LEFT JOIN ({region}) r ON r.region = k.region AND r.as_of_day = p.as_of_day
LEFT JOIN ({category}) c ON c.category = k.category AND c.as_of_day = p.as_of_day
LEFT JOIN ({_market()}) m ON m.as_of_day = p.as_of_day"""


def world_carriers_sql() -> str:
    """Per (region, carrier) and as-of day: the 7-day late-delivery rate, and whether the pair is running
    late now (`RUNNING_LATE_FACTOR`)."""
    pairs = _windows(("region", "carrier"), {"late_7": ("late", 0, 7), "delivered_7": ("delivered", 0, 7),
                                             "late_90": ("late", 0, LONGEST_DAYS),
                                             "delivered_90": ("delivered", 0, LONGEST_DAYS)}, "carrier IS NOT NULL")
    rate_7, rate_90 = _ratio("x.late_7", "x.delivered_7"), _ratio("x.late_90", "x.delivered_90")
    market_7 = _ratio("m.late_7", "m.delivered_7")
    return f"""SELECT x.region AS wc_region, x.carrier AS wc_carrier, x.as_of_day AS wc_day,
  {rate_7} AS late_rate_7d,
  COALESCE({rate_7} >= {RUNNING_LATE_FACTOR} * {rate_90} AND {rate_7} > {market_7}, FALSE) AS running_late
FROM ({pairs}) x
JOIN ({_market()}) m ON m.as_of_day = x.as_of_day"""


def staged_sql(policy: Policy, d: Engine, as_of_days: list[int]) -> dict[str, str]:
    """The queries of the tables staged once per build (`STAGED`), by name, in order: each reads the ones
    before it, `sellers`, the events and `probe_days`."""
    first, last = min(as_of_days) - (LONGEST_DAYS + 1), max(as_of_days) - 1
    return {DAILY: world_daily_sql(policy, d, first, last), CONTEXT: world_context_sql(),
            CARRIERS: world_carriers_sql()}


def carrier_calendar(as_of_days: list[int]) -> dict[str, pd.DataFrame]:
    """The spans a seller's shipments are summed over before they meet the as-of dates: `world_spans`
    maps each day to the first point (t - 1 or t - 1 - CARRIER_DAYS for an as-of day t) at or after it,
    and `world_windows` lists, per as-of day t, the points whose spans make up its window of
    CARRIER_DAYS days (points in (t - 1 - CARRIER_DAYS, t - 1])."""
    points = sorted({t - 1 - lag for t in as_of_days for lag in (0, CARRIER_DAYS)})
    days = list(range(points[0], points[-1] + 1))
    windows = [(p, t) for t in sorted(set(as_of_days)) for p in points if t - 1 - CARRIER_DAYS < p <= t - 1]
    return {
        SPANS: pd.DataFrame({"day": pd.array(days, dtype="int64"),
                             "point": pd.array([points[bisect_left(points, x)] for x in days], dtype="int64")}),
        WINDOWS: pd.DataFrame({"point": pd.array([p for p, _ in windows], dtype="int64"),
                               "as_of_day": pd.array([t for _, t in windows], dtype="int64")}),
    }


def world_sellers_sql(policy: Policy, d: Engine, sellers: str = "TRUE") -> str:
    """Per seller (of those matching `sellers`) and as-of day with a shipment in the last CARRIER_DAYS
    days: the 7-day late-delivery rate of the (region, carrier) pairs those shipments used, weighted by
    them (pairs with no recent delivery left out), and the share of them on a pair running late now."""
    channels = LATE_DELIVERY.channels(policy)
    day = day_bucket(d.us("shipped_at"))
    known = "CASE WHEN k.late_rate_7d IS NOT NULL THEN r.n END"
    return f"""WITH shipped AS (
  SELECT o.seller_id, o.carrier, c.point, COUNT(*) AS n
  FROM (SELECT seller_id, carrier, {day} AS day FROM orders
        WHERE ({sellers}) AND shipped_at IS NOT NULL AND carrier IS NOT NULL AND {_in('fulfilment_channel', channels)}) o
  JOIN {SPANS} c ON c.day = o.day
  GROUP BY o.seller_id, o.carrier, c.point
),
recent AS (
  SELECT s.seller_id, s.carrier, w.as_of_day, SUM(s.n) AS n
  FROM shipped s JOIN {WINDOWS} w ON w.point = s.point
  GROUP BY s.seller_id, s.carrier, w.as_of_day
)
SELECT r.seller_id AS ws_seller, r.as_of_day AS ws_day,
  SUM(r.n * k.late_rate_7d) / CAST(SUM({known}) AS DOUBLE) AS world_carrier_late_7d,
  SUM(CASE WHEN k.running_late THEN r.n ELSE 0 END) / CAST(SUM(r.n) AS DOUBLE) AS world_carriers_running_late_share
FROM recent r
JOIN (SELECT seller_id, region FROM sellers WHERE {sellers}) sl ON sl.seller_id = r.seller_id
LEFT JOIN {CARRIERS} k ON k.wc_region = sl.region AND k.wc_carrier = r.carrier AND k.wc_day = r.as_of_day
GROUP BY r.seller_id, r.as_of_day"""


CONTEXT_COLUMNS = ("world_region_late_7d", "world_region_late_30d", "world_region_invalid_7d",
                   "world_region_invalid_30d", "world_category_return_60d", "world_category_negative_60d",
                   "world_market_volume_ratio", "world_market_late_ratio")
SELLER_COLUMNS = ("world_carrier_late_7d", "world_carriers_running_late_share")


def world_join(seller: str, day: str, region: str, category: str) -> tuple[list[str], str]:
    """(columns, joins): how a query with a seller, an as-of day, a region and a category (SQL expressions)
    reads the world around it: missing (NULL) on a day that is not an as-of date, and for a seller with no
    shipment in the last CARRIER_DAYS days, its carrier columns."""
    cols = [f"wx.{c}" for c in CONTEXT_COLUMNS] + [f"wy.{c}" for c in SELLER_COLUMNS]
    joins = (f"LEFT JOIN {CONTEXT} wx ON wx.ctx_region = {region} AND wx.ctx_category = {category} "
             f"AND wx.ctx_day = {day}\n  "
             f"LEFT JOIN {SELLERS} wy ON wy.ws_seller = {seller} AND wy.ws_day = {day}")
    return cols, joins
