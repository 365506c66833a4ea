"""Daily flows: the additive per-seller, per-day quantities every feature and policy metric is a
window over. A flow counts (or sums) rows of one event table, dated by the moment the fact became
known, so a window ending at t only ever sees what was known at t. Stocks (orders overdue, messages
unanswered) are flows of +1 and -1 whose running total is the state at t.

Each event is emitted once per flow with its fulfilment channel; `Column`s then select the
channels a policy metric or a feature counts. Time is bucketed by days, right-closed: bucket k
holds (day k 00:00, day k+1 00:00], so an as-of date t (midnight of day D) sees buckets up to
D - 1, that is every event at or before t.
"""

from __future__ import annotations

from dataclasses import dataclass

from features.policy.measures import MEASURES, RESPONSE_WINDOW_US
from features.policy.definition import Metric, Policy

DAY_US = 86_400_000_000
ALL_WINDOWS = (7, 30, 60, 90)
LOST_AFTER_DAYS = 30
"""A parcel not delivered this many days after it shipped is taken as lost: it leaves the late-in-transit stock
(it will never count as a delivery), so a seller's lost parcels do not pile up in it for ever."""


def day_bucket(us_expr: str) -> str:
    """SQL for the day bucket k of a time in (day k, day k + 1]: an as-of day D sees buckets below D. A seller's
    flows and the world around it (`features.pipeline.world`) bucket by it, so a window ending at t holds the
    same events in both."""
    return f"CAST(FLOOR(({us_expr} - 1) / {float(DAY_US)}) AS BIGINT)"


@dataclass(frozen=True)
class Flow:
    """Rows of `table` where `condition` holds, each adding `value` on the day of `time_us`
    (SQL in the notation of `features.policy.measures`). Several flows may share a name (+1 and -1)."""

    name: str
    table: str
    time_us: str
    condition: str = "TRUE"
    value: str = "1"


@dataclass(frozen=True)
class Column:
    """A daily column: a flow restricted to some fulfilment channels (None: all), and the
    trailing windows (and running total) the features need of it."""

    name: str
    flow: str
    channels: tuple[str, ...] | None = None
    windows: tuple[int, ...] = ()
    cumulative: bool = False


def measure_column(measure: str, channels: tuple[str, ...]) -> str:
    """The daily column counting a policy measure on some channels, e.g. `orders__seller`."""
    return f"{measure}__{'_'.join(sorted(channels))}"


def next_known_window(metric: Metric, policy: Policy) -> int | None:
    """Days of the next evaluation's window already known at t: the evaluation a cadence on looks at
    (t + cadence - W, t + cadence], whose trailing W - cadence days lie at or before t; None when its window
    lies wholly ahead. Only the next evaluation's: each further one's known part is another lag every running
    total is fetched at, which costs the whole pipeline about a tenth more."""
    known = metric.window_days - policy.evaluation_every_days
    return known if known > 0 else None


def metric_parts(metric: Metric, window: int) -> tuple[str, str]:
    """SQL for a metric's numerator and denominator over a trailing window."""
    num = " + ".join(f"w{window}_{measure_column(m, metric.channels)}" for m in metric.numerator)
    return f"({num})", f"w{window}_{measure_column(metric.denominator, metric.channels)}"


_OPEN_END = "LEAST({us}(shipped_at), {us}(cancelled_at))"
_DUE = f"{{us}}(opened_at) + {RESPONSE_WINDOW_US}"
_ARRIVED = f"LEAST({{us}}(delivered_at), {{us}}(shipped_at) + {LOST_AFTER_DAYS * DAY_US})"  # delivered or lost
_LATE_FROM = "GREATEST({us}(shipped_at), {us}(promised_delivery_by))"  # in transit and past its promise

FEATURE_FLOWS: tuple[Flow, ...] = (
    Flow("gmv_cents", "orders", "{us}(ordered_at)", value="CAST(ROUND(order_value * 100) AS BIGINT)"),
    Flow("late_handover", "orders", "{us}(carrier_handover_at)",
         "{us}(carrier_handover_at) > {us}(promised_ship_by)"),
    # orders past their ship-by time and neither shipped nor cancelled: +1 at ship-by, -1 when resolved
    Flow("overdue_open", "orders", "{us}(promised_ship_by)",
         f"{_OPEN_END} IS NULL OR {_OPEN_END} > {{us}}(promised_ship_by)"),
    Flow("overdue_open", "orders", _OPEN_END, f"{_OPEN_END} > {{us}}(promised_ship_by)", value="-1"),
    # customer messages not (yet) answered, and those unanswered RESPONSE_HOURS or more after they came in
    Flow("unanswered_open", "contacts", "{us}(opened_at)"),
    Flow("unanswered_open", "contacts", "{us}(first_response_at)", "first_response_at IS NOT NULL", value="-1"),
    Flow("overdue_contacts", "contacts", _DUE, f"first_response_at IS NULL OR {{us}}(first_response_at) > {_DUE}"),
    Flow("overdue_contacts", "contacts", "{us}(first_response_at)", f"{{us}}(first_response_at) > {_DUE}",
         value="-1"),
    Flow("warnings", "policy_actions", "{us}(issued_at)", "action = 'warning'"),
    # the label's mechanics: parcels past their promised delivery date and not yet delivered (nor lost), at t:
    # certain late deliveries. Enters at the later of shipping and the promise, leaves on delivery or when lost
    Flow("late_in_transit", "orders", _LATE_FROM, f"shipped_at IS NOT NULL AND {_ARRIVED} > {_LATE_FROM}"),
    Flow("late_in_transit", "orders", _ARRIVED, f"{_ARRIVED} > {_LATE_FROM}", value="-1"),
)

SELLER = ("seller",)
FEATURE_COLUMNS: tuple[Column, ...] = (
    Column("orders_all", "orders", None, ALL_WINDOWS),
    Column("orders_mfn", "orders", ("marketplace",), (30,)),
    Column("gmv_cents", "gmv_cents", None, (30,)),
    Column("shipped_sf", "shipped_orders", SELLER, (30,)),
    Column("late_handover_sf", "late_handover", SELLER, (30,)),
    Column("overdue_open", "overdue_open", SELLER, cumulative=True),
    Column("unanswered_open", "unanswered_open", None, cumulative=True),
    Column("overdue_contacts", "overdue_contacts", None, cumulative=True),
    Column("warnings", "warnings", None, (90,), cumulative=True),
    Column("late_in_transit_sf", "late_in_transit", SELLER, cumulative=True),
)


def _measure_flow(name: str) -> Flow:
    m = MEASURES[name]
    return Flow(m.name, m.table, m.event_time, m.condition)


def columns(policy: Policy) -> list[Column]:
    """Every daily column the policy's metrics and the feature spec read, each once. A metric's measures
    get the usual windows, the metric's own, and the known part of the next evaluation's (`next_known_window`)."""
    out: dict[str, Column] = {}
    for metric in policy.metrics.values():
        for measure in (*metric.numerator, metric.denominator):
            name = measure_column(measure, metric.channels)
            before = out[name].windows if name in out else ALL_WINDOWS
            known = next_known_window(metric, policy)
            windows = tuple(sorted({*before, metric.window_days, *([known] if known else [])}))
            out[name] = Column(name, measure, tuple(sorted(metric.channels)), windows)
    for c in FEATURE_COLUMNS:
        out[c.name] = c
    return list(out.values())


def flows(policy: Policy) -> list[Flow]:
    """Every flow the columns need, each emitted once per event."""
    needed = {c.flow for c in columns(policy)}
    measure_flows = [_measure_flow(n) for n in MEASURES if n in needed]
    return measure_flows + [f for f in FEATURE_FLOWS if f.name in needed]


def window_columns(cols: list[Column]) -> dict[str, tuple[str, int | None]]:
    """Windowed column name -> (daily column, window days; None for the running total)."""
    out: dict[str, tuple[str, int | None]] = {}
    for c in cols:
        for w in c.windows:
            out[f"w{w}_{c.name}"] = (c.name, w)
        if c.cumulative:
            out[f"cum_{c.name}"] = (c.name, None)
    return out
