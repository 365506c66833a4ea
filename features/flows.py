"""Daily flows: the additive per-seller, per-day quantities every feature and policy metric is a
window over. A flow counts (or sums) rows of one event table, dated by the moment the fact became
known, so a window ending at t only ever sees what was known at t. Stocks (orders overdue, messages
unanswered) are flows of +1 and -1 whose running total is the state at t.

Time is bucketed by days, right-closed: bucket k holds (day k 00:00, day k+1 00:00], so an as-of
date t (midnight of day D) sees buckets up to D - 1, that is every event at or before t.
"""

from __future__ import annotations

from dataclasses import dataclass

from features.measures import MEASURES
from features.policy import Policy

DAY_US = 86_400_000_000
ALL_WINDOWS = (7, 30, 60, 90)


@dataclass(frozen=True)
class Flow:
    """One additive daily quantity: `value` summed over rows of `table` where `condition`
    holds, dated by `time_us` (SQL notation of `features.measures`)."""

    name: str
    table: str
    time_us: str
    condition: str = "TRUE"
    value: str = "1"
    windows: tuple[int, ...] = ()
    cumulative: bool = False


def metric_flows(policy: Policy) -> list[Flow]:
    """Numerator and denominator of every policy metric, restricted to the metric's channels."""
    flows = []
    for metric in policy.metrics.values():
        channels = ", ".join(f"'{c}'" for c in metric.channels)
        for part, names in (("num", metric.numerator), ("den", (metric.denominator,))):
            for name in names:
                m = MEASURES[name]
                flows.append(Flow(f"m_{metric.name}_{part}", m.table, m.event_time,
                                  f"({m.condition}) AND channel IN ({channels})", windows=ALL_WINDOWS))
    return flows


_OPEN_END = "LEAST({us}(shipped_at), {us}(cancelled_at))"
_DUE = "{us}(opened_at) + 172800000000"

FEATURE_FLOWS: tuple[Flow, ...] = (
    Flow("orders_all", "orders", "{us}(ordered_at)", windows=ALL_WINDOWS),
    Flow("orders_mfn", "orders", "{us}(ordered_at)", "channel = 'marketplace'", windows=(30,)),
    Flow("gmv_cents", "orders", "{us}(ordered_at)", value="CAST(ROUND(order_value * 100) AS BIGINT)", windows=(30,)),
    Flow("shipped_sf", "orders", "{us}(shipped_at)", "shipped_at IS NOT NULL AND channel = 'seller'", windows=(30,)),
    Flow("late_handover_sf", "orders", "{us}(carrier_handover_at)",
         "{us}(carrier_handover_at) > {us}(promised_ship_by) AND channel = 'seller'", windows=(30,)),
    # orders past their ship-by time and neither shipped nor cancelled: +1 at ship-by, -1 when resolved
    Flow("overdue_open", "orders", "{us}(promised_ship_by)",
         f"channel = 'seller' AND ({_OPEN_END} IS NULL OR {_OPEN_END} > {{us}}(promised_ship_by))", cumulative=True),
    Flow("overdue_open", "orders", _OPEN_END,
         f"channel = 'seller' AND {_OPEN_END} > {{us}}(promised_ship_by)", value="-1", cumulative=True),
    # customer messages not (yet) answered, and those past the 48 h answer window
    Flow("unanswered_open", "contacts", "{us}(opened_at)", cumulative=True),
    Flow("unanswered_open", "contacts", "{us}(first_response_at)", "first_response_at IS NOT NULL", value="-1",
         cumulative=True),
    Flow("overdue_contacts", "contacts", _DUE,
         f"first_response_at IS NULL OR {{us}}(first_response_at) > {_DUE}", cumulative=True),
    Flow("overdue_contacts", "contacts", "{us}(first_response_at)", f"{{us}}(first_response_at) > {_DUE}",
         value="-1", cumulative=True),
    Flow("warnings", "policy_actions", "{us}(issued_at)", "action = 'warning'", windows=(90,), cumulative=True),
)


def all_flows(policy: Policy) -> list[Flow]:
    """Every flow the feature spec and the policy metrics need."""
    return metric_flows(policy) + list(FEATURE_FLOWS)


def window_columns(flows: list[Flow]) -> dict[str, tuple[str, int | None]]:
    """Windowed column name -> (flow, window days; None for the running total since the start)."""
    out: dict[str, tuple[str, int | None]] = {}
    for f in flows:
        for w in f.windows:
            out[f"w{w}_{f.name}"] = (f.name, w)
        if f.cumulative:
            out[f"cum_{f.name}"] = (f.name, None)
    return out
