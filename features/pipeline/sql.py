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

from features.pipeline.flows import (
    DAY_US,
    Column,
    Flow,
    columns,
    day_bucket,
    flows,
    metric_parts,
    window_columns,
)
from features.policy.definition import Policy
from features.events.schema import TABLES
from features.pipeline.spec import FeatureSpec
from features.pipeline.world import world_join

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


def _fill(sql: str, d: Dialect) -> str:
    return sql.replace("{us}", d.epoch_us)


def _read_columns(table: str, flow_list: list[Flow]) -> list[str]:
    """The columns of `table` the flows read (plus the seller, and the order key lookups use)."""
    text = " ".join(f"{f.time_us} {f.condition} {f.value}" for f in flow_list if f.table == table)
    keys = ["seller_id", "order_id"] if table == "orders" else ["seller_id"]
    used = [c.name for c in TABLES[table].columns if re.search(rf"\b{c.name}\b", text)]
    return list(dict.fromkeys(keys + used + ["channel"]))


def _flow_kinds(policy: Policy) -> dict[tuple[str, str], list[Flow]]:
    """The flows grouped by (event table, time expression): each group is read in one pass over
    its table, and every event of it lands on one probe point."""
    kinds: dict[tuple[str, str], list[Flow]] = {}
    for f in flows(policy):
        kinds.setdefault((f.table, f.time_us), []).append(f)
    return kinds


def _signature(c: Column) -> tuple[str, tuple[str, ...] | None]:
    """Columns with the same flow and channels hold the same numbers; they are computed once."""
    return c.flow, None if c.channels is None else tuple(sorted(c.channels))


def _computed(policy: Policy) -> dict[str, str]:
    """Daily column name -> the name of the column that computes it (itself, or an identical one)."""
    first: dict[tuple, str] = {}
    return {c.name: first.setdefault(_signature(c), c.name) for c in columns(policy)}


def _point_sums(policy: Policy, d: Dialect, table: str, time_us: str, kind: list[Flow],
                first_point: int) -> tuple[str, list[str]]:
    """(query, its columns): the rows of one table dated by one time, summed per seller and probe
    point into every daily column those flows feed (and the last warning day, for warnings)."""
    computed = set(_computed(policy).values())
    sums: dict[str, str] = {}
    for c in columns(policy):
        if c.name not in computed:
            continue
        chans = "" if c.channels is None else " AND channel IN (" + ", ".join(f"'{x}'" for x in c.channels) + ")"
        parts = [f"CASE WHEN ({_fill(f.condition, d)}){chans} THEN CAST({_fill(f.value, d)} AS BIGINT) END"
                 for f in kind if f.name == c.flow]
        if parts:
            total = parts[0] if len(parts) == 1 else " + ".join(f"COALESCE({x}, 0)" for x in parts)
            sums[c.name] = f"CAST(SUM({total}) AS BIGINT)"
    if any(f.name == "warnings" for f in kind):  # warnings only ever add (+1): any row marks its day
        warning = next(f for f in kind if f.name == "warnings")
        sums["last_warning_day"] = f"MAX(CASE WHEN {_fill(warning.condition, d)} THEN e.day END)"
    t = _fill(time_us, d)
    keep = " OR ".join(f"({_fill(f.condition, d)})" for f in kind)
    query = (f"SELECT e.seller_id, c.point, {', '.join(f'{x} AS {n}' for n, x in sums.items())}\n"
             f"  FROM (SELECT *, {day_bucket(t)} AS day FROM t_{table} WHERE ({t}) IS NOT NULL AND ({keep})) e\n"
             f"  JOIN probe_calendar c ON c.day = GREATEST(e.day, {first_point})\n"
             f"  GROUP BY e.seller_id, c.point")
    return query, list(sums)


def point_flows_sql(policy: Policy, d: Dialect, first_point: int, sellers: str = "TRUE") -> str:
    """One row per seller (of those matching `sellers`, a SQL condition on seller_id) and probe
    point of `probe_calendar` (day -> the first probe point at or after it): each daily column
    (one of each set of identical ones) summed over the days that point closes, and the last day
    with a warning.

    The only pass over the events: each table is read once; the rows dated by each of its time
    expressions are summed per seller and point straight into the columns they feed, and those
    sums are joined onto the full grid of sellers and points (zero where nothing happened), the
    grid the running totals are taken over. Days before the first point count at the first point."""
    flow_list = flows(policy)
    kinds = _flow_kinds(policy)
    tables = dict.fromkeys(["orders", *(f.table for f in flow_list)])  # t_orders first: the others read it
    ctes = [f"t_{t} AS {d.materialized}(SELECT {', '.join(_read_columns(t, flow_list))} "
            f"FROM ({_channelled(t)}) c WHERE {sellers})" for t in tables]
    owners: dict[str, list[int]] = {}
    for i, ((table, time_us), kind) in enumerate(kinds.items()):
        query, names = _point_sums(policy, d, table, time_us, kind, first_point)
        ctes.append(f"k{i} AS (\n  {query}\n)")
        for n in names:
            owners.setdefault(n, []).append(i)
    cols = [f"{' + '.join(f'COALESCE(k{i}.{c}, 0)' for i in owners[c])} AS {c}" if c in owners
            else f"CAST(0 AS BIGINT) AS {c}" for c in dict.fromkeys(_computed(policy).values())]
    warned = owners.get("last_warning_day", [])
    cols.append(f"k{warned[0]}.last_warning_day" if warned else "CAST(NULL AS BIGINT) AS last_warning_day")
    joins = "\n".join(f"LEFT JOIN k{i} ON k{i}.seller_id = g.seller_id AND k{i}.point = g.point"
                       for i in range(len(kinds)))
    sep = ",\n  "
    return f"""WITH {sep.join(ctes)}
SELECT g.seller_id, g.point, g.onboarded_us,
  {sep.join(cols)}
FROM (SELECT s.seller_id, {d.us('s.onboarded_at')} AS onboarded_us, p.point
      FROM (SELECT * FROM sellers WHERE {sellers}) s
      CROSS JOIN (SELECT DISTINCT point FROM probe_calendar) p) g
{joins}"""


def snapshot_sql(policy: Policy, spec: FeatureSpec, d: Dialect, last_grid_day: int) -> str:
    """Features, policy status and labels for every seller at every row of `probe_days`
    (as_of_day, is_as_of, is_grid), reading the daily columns summed per probe point from
    `point_flows` (see `point_flows_sql`).

    Windows are differences of running totals: each date t needs the running total at day t - 1
    and at t - 1 - W for each window W (the `probe_lags` table: lag 0 and every W). Those probe
    points are few (about four a week) and `point_flows` holds every seller at every one of them,
    so a single running sum per column over each seller's points serves every window.

    The world around each seller at each as-of date (its region, carriers, category, the marketplace)
    is read from the tables `features.pipeline.world` stages (`world_join`)."""
    sep = ",\n  "
    running, windowed, lag_joins = _window_parts(policy)
    world_cols, world_joins = world_join("w.seller_id", "w.as_of_day", "s.region", "s.category")
    return f"""
WITH running AS (
  SELECT seller_id, point, onboarded_us,
  {sep.join(running)}
  FROM point_flows
  WINDOW running AS (PARTITION BY seller_id ORDER BY point ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
probed AS {d.materialized}(
  SELECT r.*, q.as_of_day, q.lag
  FROM running r JOIN (SELECT as_of_day, lag, as_of_day - 1 - lag AS point FROM probe_days CROSS JOIN probe_lags) q
  ON q.point = r.point
  WHERE r.onboarded_us <= q.as_of_day * {DAY_US}
),
windowed AS (
  SELECT t.seller_id, t.as_of_day, p.is_as_of, p.is_grid, p.week_of_year, t.last_warning_day,
  {sep.join(windowed)}
  FROM (SELECT * FROM probed WHERE lag = 0) t
  JOIN probe_days p ON p.as_of_day = t.as_of_day
  {lag_joins}
),
at_t AS (
  SELECT w.*, {d.us('s.onboarded_at')} AS onboarded_us, s.category, s.region,
  {sep.join(world_cols + _metric_columns(policy))}
  FROM windowed w JOIN sellers s ON s.seller_id = w.seller_id
  {world_joins}
),
ahead AS (
  SELECT *, {sep.join(_label_columns(policy))}
  FROM at_t
)
{_final_select(policy, spec, d, last_grid_day)}"""


def _window_parts(policy: Policy) -> tuple[list[str], list[str], str]:
    """The running totals per seller, each window column as the difference of two of them, and the
    joins that fetch the running total W days back for every window length W."""
    wcols = window_columns(columns(policy))
    source = _computed(policy)
    lags = sorted({w for _, w in wcols.values() if w is not None})
    running = [f"CAST(SUM({c}) OVER running AS BIGINT) AS {c}" for c in dict.fromkeys(source.values())]
    running.append("MAX(last_warning_day) OVER running AS last_warning_day")
    windowed = []
    for col, (name, w) in wcols.items():
        src = source[name]
        windowed.append(f"t.{src} AS {col}" if w is None else f"t.{src} - l{w}.{src} AS {col}")
    lag_joins = "\n  ".join(
        f"JOIN (SELECT * FROM probed WHERE lag = {w}) l{w} "
        f"ON l{w}.seller_id = t.seller_id AND l{w}.as_of_day = t.as_of_day" for w in lags)
    return running, windowed, lag_joins


def _metric_columns(policy: Policy) -> list[str]:
    """Per standard at t: its rate, its volume, whether it is evaluated, whether it is missed."""
    metric_cols = []
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
    return metric_cols


def _label_columns(policy: Policy) -> list[str]:
    """Per standard: whether it is missed at some evaluation date in (t, t + horizon]."""
    h = policy.horizon_days
    future = f"OVER (PARTITION BY seller_id ORDER BY as_of_day RANGE BETWEEN 1 FOLLOWING AND {h} FOLLOWING)"
    return [f"MAX(CASE WHEN is_grid AND miss_{m} THEN 1 WHEN is_grid THEN 0 END) {future} AS fut_{m}"
            for m in policy.metrics]


def _final_select(policy: Policy, spec: FeatureSpec, d: Dialect, last_grid_day: int) -> str:
    """The snapshot's rows: the active sellers at each as-of date, with the spec's features, the policy
    status at t and the labels, which are defined only where the whole horizon lies inside the data."""
    sep = ",\n  "
    any_miss = " OR ".join(f"miss_{m.name}" for m in policy.metrics.values())
    defined = f"as_of_day + {policy.horizon_days} <= {last_grid_day}"
    breach_any = " OR ".join(f"fut_{m} = 1" for m in policy.metrics)
    sql_type = {"float": "DOUBLE", "int": "BIGINT", "category": "STRING" if d.name == "spark" else "VARCHAR"}
    feature_cols = sep.join(f"CAST({f.sql} AS {sql_type[f.dtype]}) AS {f.name}" for f in spec.features)
    miss_names = ", ".join(f"CASE WHEN miss_{m} THEN '{m}' END" for m in policy.metrics)
    breach_names = ", ".join(f"CASE WHEN fut_{m} = 1 THEN '{m}' END" for m in policy.metrics)
    breach_each = sep.join(f"CASE WHEN {defined} THEN COALESCE(fut_{m} = 1, FALSE) END AS breach_{m}"
                           for m in policy.metrics)
    status_each = sep.join(f"evaluated_{m}, miss_{m}" for m in policy.metrics)
    return f"""SELECT seller_id, {d.date_from_day.format("as_of_day")} AS as_of,
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
