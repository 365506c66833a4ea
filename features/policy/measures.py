"""The catalogue of countable seller events that policy metrics are built from.

A policy metric is a ratio of two measures over a trailing window, e.g. cancellation rate =
`seller_cancelled_orders` / `orders` over 30 days. Each measure counts rows of one event table,
dated by one timestamp (the moment the event became known, so a window ending at t sees only
what was known at t) and restricted by one condition. A policy file may only name measures
listed here; the simulated marketplace's enforcement and the feature pipeline both implement
exactly these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    """A count of seller events, dated by `event_time` and kept where `condition` holds."""

    name: str
    description: str
    table: str
    event_time: str  # SQL giving microseconds since the epoch; {us}(col) turns a timestamp column into them
    condition: str  # SQL condition over the table's columns, in the same notation


RESPONSE_HOURS = 48
"""A customer message counts as answered in time within this many hours (the response standard)."""
RESPONSE_WINDOW_US = RESPONSE_HOURS * 3_600_000_000

MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure("orders", "Orders placed", "orders", "{us}(ordered_at)", "TRUE"),
        Measure(
            "seller_cancelled_orders",
            "Orders the seller cancelled",
            "orders",
            "{us}(cancelled_at)",
            "cancelled_by = 'seller'",
        ),
        Measure("shipped_orders", "Orders shipped", "orders", "{us}(shipped_at)", "shipped_at IS NOT NULL"),
        Measure(
            "late_shipments",
            "Orders shipped after the promised ship-by time",
            "orders",
            "{us}(shipped_at)",
            "{us}(shipped_at) > {us}(promised_ship_by)",
        ),
        Measure(
            "valid_tracking_shipments",
            "Orders shipped with valid tracking",
            "orders",
            "{us}(shipped_at)",
            "tracking_valid",
        ),
        Measure("delivered_orders", "Orders delivered", "orders", "{us}(delivered_at)", "delivered_at IS NOT NULL"),
        Measure(
            "on_time_deliveries",
            "Orders delivered on or before the promised delivery date",
            "orders",
            "{us}(delivered_at)",
            "{us}(delivered_at) <= {us}(promised_delivery_by)",
        ),
        Measure(
            "seller_responsible_refunds",
            "Refunds for seller-caused problems (damaged, wrong, not as described, not received)",
            "refunds",
            "{us}(refunded_at)",
            "seller_responsible",
        ),
        Measure(
            "contacts_due",
            f"Customer contacts whose {RESPONSE_HOURS} h answer window has closed or that were answered",
            "contacts",
            f"LEAST(COALESCE({{us}}(first_response_at), {{us}}(opened_at) + {RESPONSE_WINDOW_US}), "
            f"{{us}}(opened_at) + {RESPONSE_WINDOW_US})",
            "TRUE",
        ),
        Measure(
            "contacts_answered_in_time",
            f"Customer contacts answered within {RESPONSE_HOURS} h",
            "contacts",
            "{us}(first_response_at)",
            f"{{us}}(first_response_at) <= {{us}}(opened_at) + {RESPONSE_WINDOW_US}",
        ),
        Measure(
            "negative_feedback",
            "Orders rated 1 or 2 stars",
            "feedback",
            "{us}(submitted_at)",
            "rating <= 2",
        ),
        Measure("returns", "Return requests", "returns", "{us}(requested_at)", "TRUE"),
        Measure(
            "item_not_received_reports",
            "Customer reports that an order never arrived",
            "contacts",
            "{us}(opened_at)",
            "topic = 'item_not_received'",
        ),
    )
}
"""Every measure a policy may use, by name. Rows are attributed to the fulfilment channel of
their order; contacts without an order count as seller-fulfilled."""
