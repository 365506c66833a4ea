"""The one point-in-time pipeline, as SQL that DuckDB and Spark both run.

events -> daily flows per seller (one pass over each table) -> probe rows at every as-of and
evaluation date -> rolling window sums over days (one sorted pass per seller) -> policy metrics,
misses and features at each date -> labels: a miss at an evaluation date in (t, t + horizon].

The policy metrics at t, the `compliant_at_t` flag and the labels come from the same columns, so
they cannot disagree. Engines differ only in the few functions of `Dialect`.
"""

from __future__ import annotations

from dataclasses import dataclass

from features.flows import DAY_US, Flow, columns, flows, metric_parts, window_columns
from features.policy import Policy
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


def _channelled(table: str, sellers: str) -> str:
    if table in CHANNELLED:
        return CHANNELLED[table]
    return (f"SELECT x.*, COALESCE(o.fulfilment_channel, 'seller') AS channel FROM {table} x LEFT JOIN "
            f"(SELECT order_id AS o_id, fulfilment_channel FROM orders WHERE {sellers}) o ON o.o_id = x.order_id")


def _bucket(us_expr: str) -> str:
    """Day bucket k of a time in (day k, day k + 1]: an as-of day D sees buckets below D."""
    return f"CAST(FLOOR(({us_expr} - 1) / {float(DAY_US)}) AS BIGINT)"


def _fill(sql: str, d: Dialect) -> str:
    return sql.replace("{us}", d.epoch_us)


def _picks(policy: Policy) -> list[str]:
    """The daily columns as conditional sums over the flow rows."""
    ids = {name: i for i, name in enumerate(dict.fromkeys(f.name for f in flows(policy)))}
    out = []
    for c in columns(policy):
        chans = "" if c.channels is None else " AND channel IN (" + ", ".join(f"'{x}'" for x in c.channels) + ")"
        out.append(f"CAST(SUM(CASE WHEN flow = {ids[c.flow]}{chans} THEN v ELSE 0 END) AS BIGINT) AS {c.name}")
    return out


def flow_days_sql(policy: Policy, d: Dialect, sellers: str = "TRUE") -> str:
    """One row per seller, day, flow and channel with the day's total: the only pass over the
    events. `sellers` restricts it to a subset of sellers (a SQL condition on seller_id)."""
    flow_list = flows(policy)
    ids = {name: i for i, name in enumerate(dict.fromkeys(f.name for f in flow_list))}
    branches = [
        f"SELECT seller_id, {_bucket(_fill(f.time_us, d))} AS day, {ids[f.name]} AS flow, channel, "
        f"CAST({_fill(f.value, d)} AS BIGINT) AS v FROM t_{f.table} "
        f"WHERE ({_fill(f.condition, d)}) AND ({_fill(f.time_us, d)}) IS NOT NULL"
        for f in flow_list
    ]
    tables = dict.fromkeys(f.table for f in flow_list)
    ctes = ",\n".join(f"t_{t} AS {d.materialized}(SELECT * FROM ({_channelled(t, sellers)}) c WHERE {sellers})"
                      for t in tables)
    return f"WITH {ctes}\nSELECT seller_id, day, flow, channel, SUM(v) AS v FROM (\n" + \
        "\nUNION ALL\n".join(branches) + "\n) e GROUP BY seller_id, day, flow, channel"


def snapshot_sql(policy: Policy, spec: FeatureSpec, d: Dialect, last_grid_day: int, sellers: str = "TRUE") -> str:
    """Features, policy status and labels for every seller at every row of `probe_days`
    (as_of_day, is_as_of, is_grid), reading the daily columns from `flow_days`.

    Windows are differences of running totals: each date t gets a probe row at day t - 1 and one
    at t - 1 - W for each window W (the `probe_lags` table: lag 0 and every W), and a single
    streaming running sum per column serves every window."""
    cols = columns(policy)
    wcols = window_columns(cols)
    sep = ",\n  "
    zeros = ", ".join(f"CAST(0 AS BIGINT) AS {c.name}" for c in cols)
    pivot = sep.join(_picks(policy))
    lags = sorted({w for _, w in wcols.values() if w is not None})
    running = [f"CAST(SUM({c.name}) OVER running AS BIGINT) AS {c.name}" for c in cols]
    running.append("MAX(CASE WHEN warnings > 0 THEN day END) OVER running AS last_warning_day")
    windowed = []
    for col, (name, w) in wcols.items():
        windowed.append(f"t.{name} AS {col}" if w is None else f"t.{name} - l{w}.{name} AS {col}")
    lag_joins = "\n  ".join(
        f"JOIN (SELECT * FROM running WHERE probe AND lag = {w}) l{w} "
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
WITH seller_day AS (
  SELECT seller_id, day, FALSE AS probe, CAST(NULL AS BIGINT) AS as_of_day, CAST(NULL AS BIGINT) AS lag,
  {pivot}
  FROM flow_days GROUP BY seller_id, day
),
probes AS (
  SELECT s.seller_id, p.as_of_day - 1 - p.lag AS day, TRUE AS probe, p.as_of_day, p.lag, {zeros}
  FROM (SELECT * FROM sellers WHERE {sellers}) s
  CROSS JOIN (SELECT as_of_day, lag FROM probe_days CROSS JOIN probe_lags) p
  WHERE {d.us('s.onboarded_at')} <= p.as_of_day * {DAY_US}
),
running AS (
  SELECT seller_id, day, probe, as_of_day, lag,
  {sep.join(running)}
  FROM (SELECT * FROM seller_day UNION ALL SELECT * FROM probes) stream
  WINDOW running AS (PARTITION BY seller_id ORDER BY day, probe ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
windowed AS (
  SELECT t.seller_id, t.as_of_day, p.is_as_of, p.is_grid, t.last_warning_day,
  {sep.join(windowed)}
  FROM (SELECT * FROM running WHERE probe AND lag = 0) t
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
