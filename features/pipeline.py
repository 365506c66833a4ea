"""The one point-in-time pipeline, as SQL that DuckDB and Spark both run.

events -> daily flows per seller (one pass over each table) -> summed into the spans between the
days the as-of and evaluation dates look back to -> running totals over those spans (one sorted
pass per seller), whose differences are the rolling windows -> policy metrics, misses and features
at each date -> labels: a miss at an evaluation date in (t, t + horizon].

The policy metrics at t, the `compliant_at_t` flag and the labels come from the same columns, so
they cannot disagree. Engines differ only in the few functions of `Dialect`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from features.flows import DAY_US, Flow, columns, flows, metric_parts, window_columns
from features.policy import Policy
from features.schema import TABLES
from features.spec import FeatureSpec

CHANNELLED = {  # how each event table gets its order's fulfilment channel
    "orders": "SELECT *, fulfilment_channel AS channel FROM orders",
    "sellers": "SELECT * FROM sellers",
    "policy_actions": "SELECT *, 'seller' AS channel FROM policy_actions",
}
ACTIVE_DAYS = 30


@dataclass(frozen=True)
class Dialect:
    """The only things the engines spell differently."""

    name: str
    epoch_us: str  # function from TIMESTAMP to microseconds since the epoch
    date_from_day: str  # template turning a day number into a DATE
    materialized: str = ""  # keyword that makes a CTE computed once however often it is read

    def us(self, column: str) -> str:
        return f"{self.epoch_us}({column})"


DUCKDB = Dialect("duckdb", "epoch_us", "CAST(DATE '1970-01-01' + CAST({} AS INTEGER) AS DATE)", "MATERIALIZED ")
SPARK = Dialect("spark", "unix_micros", "date_add(DATE '1970-01-01', CAST({} AS INT))")


def _channelled(table: str) -> str:
    """The table with its rows' fulfilment channel; order-level tables look theirs up in `t_orders`
    (the orders already read for this pass), so the orders are scanned once per pass."""
    if table in CHANNELLED:
        return CHANNELLED[table]
    return (f"SELECT x.*, COALESCE(o.o_channel, 'seller') AS channel FROM {table} x LEFT JOIN "
            f"(SELECT order_id AS o_id, channel AS o_channel FROM t_orders) o ON o.o_id = x.order_id")


def _bucket(us_expr: str) -> str:
    """Day bucket k of a time in (day k, day k + 1]: an as-of day D sees buckets below D."""
    return f"CAST(FLOOR(({us_expr} - 1) / {float(DAY_US)}) AS BIGINT)"


def _fill(sql: str, d: Dialect) -> str:
    return sql.replace("{us}", d.epoch_us)


def _read_columns(table: str, flow_list: list[Flow]) -> list[str]:
    """The columns of `table` the flows read (plus the seller, and the order key lookups use)."""
    text = " ".join(f"{f.time_us} {f.condition} {f.value}" for f in flow_list if f.table == table)
    keys = ["seller_id", "order_id"] if table == "orders" else ["seller_id"]
    used = [c.name for c in TABLES[table].columns if re.search(rf"\b{c.name}\b", text)]
    return list(dict.fromkeys(keys + used + ["channel"]))


def _flow_ids(policy: Policy) -> dict[str, int]:
    return {name: i for i, name in enumerate(dict.fromkeys(f.name for f in flows(policy)))}


def _picks(policy: Policy) -> list[str]:
    """The daily columns as conditional sums over the flow rows."""
    ids = _flow_ids(policy)
    out = []
    for c in columns(policy):
        chans = "" if c.channels is None else " AND channel IN (" + ", ".join(f"'{x}'" for x in c.channels) + ")"
        out.append(f"COALESCE(CAST(SUM(v) FILTER (WHERE flow = {ids[c.flow]}{chans}) AS BIGINT), 0) AS {c.name}")
    return out


def flow_days_sql(policy: Policy, d: Dialect, sellers: str = "TRUE") -> str:
    """One row per seller, day, flow and channel with the day's total: the only pass over the
    events. `sellers` restricts it to a subset of sellers (a SQL condition on seller_id)."""
    flow_list = flows(policy)
    ids = _flow_ids(policy)
    branches = [
        f"SELECT seller_id, {_bucket(_fill(f.time_us, d))} AS day, {ids[f.name]} AS flow, channel, "
        f"CAST({_fill(f.value, d)} AS BIGINT) AS v FROM t_{f.table} "
        f"WHERE ({_fill(f.condition, d)}) AND ({_fill(f.time_us, d)}) IS NOT NULL"
        for f in flow_list
    ]
    tables = dict.fromkeys(["orders", *(f.table for f in flow_list)])  # t_orders first: the others read it
    ctes = ",\n".join(f"t_{t} AS {d.materialized}(SELECT {', '.join(_read_columns(t, flow_list))} "
                      f"FROM ({_channelled(t)}) c WHERE {sellers})" for t in tables)
    return f"WITH {ctes}\nSELECT seller_id, day, flow, channel, SUM(v) AS v FROM (\n" + \
        "\nUNION ALL\n".join(branches) + "\n) e GROUP BY seller_id, day, flow, channel"


def snapshot_sql(policy: Policy, spec: FeatureSpec, d: Dialect, last_grid_day: int, sellers: str = "TRUE") -> str:
    """Features, policy status and labels for every seller at every row of `probe_days`
    (as_of_day, is_as_of, is_grid), reading the daily columns from `flow_days`.

    Windows are differences of running totals: each date t needs the running total at day t - 1
    and at t - 1 - W for each window W (the `probe_lags` table: lag 0 and every W). Those probe
    points are few (about four a week), so the daily columns are first summed into the span of
    days each point closes, then a single running sum per column over each seller's points (one
    row per point, whether or not the seller had events in its span) serves every window."""
    cols = columns(policy)
    wcols = window_columns(cols)
    sep = ",\n  "
    lags = sorted({w for _, w in wcols.values() if w is not None})
    # the last day with a warning: warnings only ever add (+1), so any row of that flow marks its day
    warned = f"flow = {_flow_ids(policy)['warnings']} AND v > 0"
    span_sums = [*_picks(policy), f"MAX(CASE WHEN {warned} THEN day END) AS last_warning_day"]
    running = [f"CAST(SUM(COALESCE(sp.{c.name}, 0)) OVER running AS BIGINT) AS {c.name}" for c in cols]
    running.append("MAX(sp.last_warning_day) OVER running AS last_warning_day")
    windowed = []
    for col, (name, w) in wcols.items():
        windowed.append(f"t.{name} AS {col}" if w is None else f"t.{name} - l{w}.{name} AS {col}")
    lag_joins = "\n  ".join(
        f"JOIN (SELECT * FROM probed WHERE lag = {w}) l{w} "
        f"ON l{w}.seller_id = t.seller_id AND l{w}.as_of_day = t.as_of_day" for w in lags)

    metric_cols, miss_cols = [], []
    for m in policy.metrics.values():
        num, den = metric_parts(m, m.window_days)
        rate = f"CASE WHEN {den} > 0 THEN {num} / CAST({den} AS DOUBLE) END"
        op = ">" if m.direction == "at_most" else "<"
        metric_cols += [
            f"{rate} AS rate_{m.name}",
            f"{den} AS volume_{m.name}",
            f"{den} >= {m.min_count} AS evaluated_{m.name}",
            f"({den} >= {m.min_count} AND {rate} {op} {m.threshold}) AS miss_{m.name}",
        ]
        miss_cols.append(f"miss_{m.name}")
    any_miss = " OR ".join(miss_cols)
    h = policy.horizon_days
    future = f"OVER (PARTITION BY seller_id ORDER BY as_of_day RANGE BETWEEN 1 FOLLOWING AND {h} FOLLOWING)"
    label_cols = [f"MAX(CASE WHEN is_grid AND miss_{m} THEN 1 WHEN is_grid THEN 0 END) {future} AS fut_{m}"
                  for m in policy.metrics]
    defined = f"as_of_day + {h} <= {last_grid_day}"
    breach_any = " OR ".join(f"fut_{m} = 1" for m in policy.metrics)
    sql_type = {"float": "DOUBLE", "int": "BIGINT", "category": "STRING" if d.name == "spark" else "VARCHAR"}
    feature_cols = sep.join(f"CAST({f.sql} AS {sql_type[f.dtype]}) AS {f.name}" for f in spec.features)
    miss_names = ", ".join(f"CASE WHEN miss_{m} THEN '{m}' END" for m in policy.metrics)
    breach_names = ", ".join(f"CASE WHEN fut_{m} = 1 THEN '{m}' END" for m in policy.metrics)
    breach_each = sep.join(f"CASE WHEN {defined} THEN COALESCE(fut_{m} = 1, FALSE) END AS breach_{m}"
                           for m in policy.metrics)
    status_each = sep.join(f"evaluated_{m}, miss_{m}" for m in policy.metrics)
    return f"""
WITH points AS (
  SELECT DISTINCT as_of_day - 1 - lag AS point FROM probe_days CROSS JOIN probe_lags
),
spans AS (
  SELECT f.day, MIN(p.point) AS point
  FROM (SELECT DISTINCT day FROM flow_days) f JOIN points p ON p.point >= f.day
  GROUP BY f.day
),
seller_span AS (
  SELECT seller_id, point,
  {sep.join(span_sums)}
  FROM (SELECT f.*, spans.point FROM flow_days f JOIN spans ON spans.day = f.day) d
  GROUP BY seller_id, point
),
pass_sellers AS (
  SELECT * FROM sellers WHERE {sellers}
),
running AS (
  SELECT g.seller_id, g.point, g.onboarded_us,
  {sep.join(running)}
  FROM (SELECT s.seller_id, {d.us('s.onboarded_at')} AS onboarded_us, p.point FROM pass_sellers s CROSS JOIN points p) g
  LEFT JOIN seller_span sp ON sp.seller_id = g.seller_id AND sp.point = g.point
  WINDOW running AS (PARTITION BY g.seller_id ORDER BY g.point ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
probed AS {d.materialized}(
  SELECT r.*, q.as_of_day, q.lag
  FROM running r JOIN (SELECT as_of_day, lag, as_of_day - 1 - lag AS point FROM probe_days CROSS JOIN probe_lags) q
  ON q.point = r.point
  WHERE r.onboarded_us <= q.as_of_day * {DAY_US}
),
windowed AS (
  SELECT t.seller_id, t.as_of_day, p.is_as_of, p.is_grid, t.last_warning_day,
  {sep.join(windowed)}
  FROM (SELECT * FROM probed WHERE lag = 0) t
  JOIN probe_days p ON p.as_of_day = t.as_of_day
  {lag_joins}
),
at_t AS (
  SELECT w.*, {d.us('s.onboarded_at')} AS onboarded_us, s.category, s.region,
  {sep.join(metric_cols)}
  FROM windowed w JOIN sellers s ON s.seller_id = w.seller_id
),
ahead AS (
  SELECT *, {sep.join(label_cols)}
  FROM at_t
)
SELECT seller_id, {d.date_from_day.format("as_of_day")} AS as_of,
  {feature_cols},
  NOT ({any_miss}) AS compliant_at_t,
  concat_ws(',', {miss_names}) AS misses_at_t,
  CASE WHEN {defined} THEN COALESCE({breach_any}, FALSE) END AS breach,
  CASE WHEN {defined} THEN concat_ws(',', {breach_names}) END AS breach_metrics,
  {status_each},
  {breach_each}
FROM ahead
WHERE is_as_of AND w{ACTIVE_DAYS}_orders_all > 0
"""


def probe_lags(policy: Policy) -> list[int]:
    """Lag 0 and every window length the columns use."""
    return [0] + sorted({w for _, w in window_columns(columns(policy)).values() if w is not None})


def snapshot_columns(policy: Policy, spec: FeatureSpec) -> list[str]:
    """The columns of a snapshot, in order."""
    status = [c for m in policy.metrics for c in (f"evaluated_{m}", f"miss_{m}")]
    return (["seller_id", "as_of", *spec.names, "compliant_at_t", "misses_at_t", "breach", "breach_metrics",
             *status, *[f"breach_{m}" for m in policy.metrics]])
