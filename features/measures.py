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
    event_time: str  # SQL expression over the table's columns
    condition: str  # SQL condition over the table's columns


RESPONSE_HOURS = 48

MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure("orders", "Orders placed", "orders", "ordered_at", "TRUE"),
        Measure(
            "seller_cancelled_orders",
            "Orders the seller cancelled",
            "orders",
            "cancelled_at",
            "cancelled_by = 'seller'",
        ),
        Measure("shipped_orders", "Orders shipped", "orders", "shipped_at", "shipped_at IS NOT NULL"),
        Measure(
            "late_shipments",
            "Orders shipped after the promised ship-by time",
            "orders",
            "shipped_at",
            "shipped_at > promised_ship_by",
        ),
        Measure(
            "valid_tracking_shipments",
            "Orders shipped with valid tracking",
            "orders",
            "shipped_at",
            "tracking_valid",
        ),
        Measure("delivered_orders", "Orders delivered", "orders", "delivered_at", "delivered_at IS NOT NULL"),
        Measure(
            "on_time_deliveries",
            "Orders delivered on or before the promised delivery date",
            "orders",
            "delivered_at",
            "delivered_at <= promised_delivery_by",
        ),
        Measure(
            "seller_responsible_refunds",
            "Refunds for seller-caused problems (damaged, wrong, not as described, not received)",
            "refunds",
            "refunded_at",
            "seller_responsible",
        ),
        Measure(
            "contacts_due",
            f"Customer contacts whose {RESPONSE_HOURS} h answer window has closed or that were answered",
            "contacts",
            f"LEAST(COALESCE(first_response_at, opened_at + INTERVAL {RESPONSE_HOURS} HOUR), "
            f"opened_at + INTERVAL {RESPONSE_HOURS} HOUR)",
            "TRUE",
        ),
        Measure(
            "contacts_answered_in_time",
            f"Customer contacts answered within {RESPONSE_HOURS} h",
            "contacts",
            "first_response_at",
            f"first_response_at <= opened_at + INTERVAL {RESPONSE_HOURS} HOUR",
        ),
        Measure(
            "negative_feedback",
            "Orders rated 1 or 2 stars",
            "feedback",
            "submitted_at",
            "rating <= 2",
        ),
        Measure("returns", "Return requests", "returns", "requested_at", "TRUE"),
        Measure(
            "item_not_received_reports",
            "Customer reports that an order never arrived",
            "contacts",
            "opened_at",
            "topic = 'item_not_received'",
        ),
    )
}
"""Every measure a policy may use, by name. Rows are attributed to the fulfilment channel of
their order; contacts without an order count as seller-fulfilled."""
