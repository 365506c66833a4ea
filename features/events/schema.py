"""The canonical marketplace event schema: the one contract every pipeline reads.

Seven tables, each declared once here, column by column, with its type, whether it may be
empty, what it means for the business, and the rules a marketplace's export must obey.
Timestamps are naive UTC. Identifiers are strings, because marketplaces' own ids are.
The validator (`features.events.validation`) and the simulator (`features.simulation`) both read
these declarations; nothing else restates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

Kind = Literal["string", "int", "float", "bool", "timestamp"]

ARROW_TYPES: dict[Kind, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
}

DUCKDB_TYPES: dict[Kind, str] = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}


FINITE_KINDS: frozenset[Kind] = frozenset({"float", "timestamp"})
"""Kinds whose values can be NaN or infinite (DuckDB and Parquet timestamps have +-infinity)."""


@dataclass(frozen=True)
class Column:
    """One column of an event table.

    Every value present obeys the column's declarations: its kind; not empty unless `nullable`
    (for a string, blank text is empty too); finite (floats and timestamps: no NaN, inf or -inf)
    unless `finite` is False; within `allowed`, `min_value` and `max_value` where given; found in
    `references`; and not after the extract's cut-off when it is an `event_time`."""

    name: str
    kind: Kind
    description: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    references: str | None = None  # "table.column" this column must exist in
    event_time: bool = False  # must not lie after the extract's cut-off
    finite: bool = True  # a float or timestamp must not be NaN, inf or -inf

    @property
    def must_be_finite(self) -> bool:
        """Whether the validator rejects NaN and infinities here (kinds that can hold them)."""
        return self.finite and self.kind in FINITE_KINDS


@dataclass(frozen=True)
class Rule:
    """A row-level rule across columns, written as the SQL condition a bad row satisfies."""

    name: str
    columns: tuple[str, ...]
    bad_when: str
    message: str


@dataclass(frozen=True)
class Table:
    """One event table: its key, its columns, and the rules across them."""

    name: str
    description: str
    key: str
    columns: tuple[Column, ...]
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, ARROW_TYPES[c.kind], nullable=c.nullable) for c in self.columns]
        )


FULFILMENT_CHANNELS = ("seller", "marketplace")
CANCELLED_BY = ("seller", "buyer", "marketplace")
RETURN_REASONS = (
    "damaged",
    "wrong_item",
    "not_as_described",
    "defective",
    "no_longer_needed",
    "size_or_fit",
    "better_price",
)
REFUND_REASONS = RETURN_REASONS + ("not_received", "late_delivery", "price_adjustment")
CONTACT_TOPICS = (
    "item_not_received",
    "where_is_my_order",
    "return_request",
    "damaged_item",
    "product_question",
    "cancel_request",
)
POLICY_ACTIONS = ("warning", "suppression", "suspension", "reinstatement")


def _id(name: str, what: str) -> Column:
    return Column(name, "string", what)


def _seller_ref() -> Column:
    return Column(
        "seller_id", "string", "The seller accountable for the event.", references="sellers.seller_id"
    )


def _order_ref(nullable: bool = False) -> Column:
    return Column(
        "order_id",
        "string",
        "The order the event belongs to.",
        nullable=nullable,
        references="orders.order_id",
    )


SELLERS = Table(
    name="sellers",
    description="One row per seller account on the marketplace.",
    key="seller_id",
    columns=(
        _id("seller_id", "Marketplace seller account id."),
        Column(
            "onboarded_at",
            "timestamp",
            "When the seller was approved to sell; tenure counts from here.",
            event_time=True,
        ),
        Column("category", "string", "The seller's primary product category."),
        Column("region", "string", "The region the seller ships from (carrier disruptions are regional)."),
    ),
)

ORDERS = Table(
    name="orders",
    description="One row per order, with its promises and what actually happened to it.",
    key="order_id",
    columns=(
        _id("order_id", "Marketplace order id."),
        _seller_ref(),
        Column("ordered_at", "timestamp", "When the customer placed the order.", event_time=True),
        Column(
            "fulfilment_channel",
            "string",
            "Who ships it: 'seller' (seller-fulfilled) or 'marketplace' (the marketplace's own "
            "fulfilment network; excluded from most standards).",
            allowed=FULFILMENT_CHANNELS,
        ),
        Column("order_value", "float", "Order value (GMV) in the marketplace currency.", min_value=0.0),
        Column("item_count", "int", "Number of items in the order.", min_value=1),
        Column(
            "promised_ship_by",
            "timestamp",
            "Latest ship time promised to the customer (order time plus handling time).",
        ),
        Column(
            "promised_delivery_by",
            "timestamp",
            "Estimated delivery date shown to the customer; on-time delivery is measured against it.",
        ),
        Column(
            "shipped_at",
            "timestamp",
            "When the seller confirmed shipment; empty while unshipped or if cancelled.",
            nullable=True,
            event_time=True,
        ),
        Column(
            "carrier_handover_at",
            "timestamp",
            "First carrier scan (the parcel left the seller); empty if never scanned.",
            nullable=True,
            event_time=True,
        ),
        Column("carrier", "string", "Carrier named on the shipment.", nullable=True),
        Column(
            "tracking_valid",
            "bool",
            "Whether the tracking number was valid and scanned by the carrier; empty if unshipped.",
            nullable=True,
        ),
        Column(
            "delivered_at",
            "timestamp",
            "Carrier-confirmed delivery; empty if not (yet) delivered.",
            nullable=True,
            event_time=True,
        ),
        Column(
            "cancelled_at",
            "timestamp",
            "When the order was cancelled; empty if it was not.",
            nullable=True,
            event_time=True,
        ),
        Column(
            "cancelled_by",
            "string",
            "Who cancelled: 'seller' counts against the cancellation standard; 'buyer' and "
            "'marketplace' do not.",
            nullable=True,
            allowed=CANCELLED_BY,
        ),
        Column("cancel_reason", "string", "Free-text reason code for the cancellation.", nullable=True),
    ),
    rules=(
        Rule(
            "delivered_before_shipped",
            ("shipped_at", "delivered_at"),
            "delivered_at IS NOT NULL AND (shipped_at IS NULL OR delivered_at < shipped_at)",
            "delivery before shipment (or delivered but never shipped)",
        ),
        Rule(
            "shipped_before_ordered",
            ("ordered_at", "shipped_at"),
            "shipped_at < ordered_at",
            "shipped before the order was placed",
        ),
        Rule(
            "handover_before_shipped",
            ("shipped_at", "carrier_handover_at"),
            "carrier_handover_at IS NOT NULL AND (shipped_at IS NULL OR carrier_handover_at < shipped_at)",
            "carrier scan before the seller shipped (or scanned but never shipped)",
        ),
        Rule(
            "cancelled_before_ordered",
            ("ordered_at", "cancelled_at"),
            "cancelled_at < ordered_at",
            "cancelled before the order was placed",
        ),
        Rule(
            "cancel_without_canceller",
            ("cancelled_at", "cancelled_by"),
            "(cancelled_at IS NULL) <> (cancelled_by IS NULL)",
            "cancelled_at and cancelled_by must be both set or both empty",
        ),
        Rule(
            "promise_before_order",
            ("ordered_at", "promised_ship_by", "promised_delivery_by"),
            "promised_ship_by < ordered_at OR promised_delivery_by < promised_ship_by",
            "promised dates out of order (ship-by before order time, or delivery before ship-by)",
        ),
        Rule(
            "tracking_without_shipment",
            ("shipped_at", "tracking_valid"),
            "shipped_at IS NOT NULL AND tracking_valid IS NULL",
            "shipped order without a tracking verdict",
        ),
    ),
)

RETURNS = Table(
    name="returns",
    description="One row per return request on a delivered order.",
    key="return_id",
    columns=(
        _id("return_id", "Return id."),
        _order_ref(),
        _seller_ref(),
        Column("requested_at", "timestamp", "When the customer opened the return.", event_time=True),
        Column("reason", "string", "Customer's return reason.", allowed=RETURN_REASONS),
        Column(
            "seller_responsible",
            "bool",
            "True when the reason is the seller's fault (damaged, wrong item, not as described, defective).",
        ),
    ),
)

REFUNDS = Table(
    name="refunds",
    description="One row per refund paid to a customer.",
    key="refund_id",
    columns=(
        _id("refund_id", "Refund id."),
        _order_ref(),
        _seller_ref(),
        Column("refunded_at", "timestamp", "When the refund was issued.", event_time=True),
        Column("amount", "float", "Amount refunded in the marketplace currency.", min_value=0.0),
        Column("reason", "string", "Refund reason.", allowed=REFUND_REASONS),
        Column(
            "seller_responsible",
            "bool",
            "True when the refund is the seller's fault; only these count toward the refund standard.",
        ),
    ),
)

FEEDBACK = Table(
    name="feedback",
    description="One row per customer rating of an order.",
    key="feedback_id",
    columns=(
        _id("feedback_id", "Feedback id."),
        _order_ref(),
        _seller_ref(),
        Column("submitted_at", "timestamp", "When the customer rated the order.", event_time=True),
        Column("rating", "int", "Star rating, 1 (worst) to 5; 1-2 stars is negative feedback.", min_value=1, max_value=5),
    ),
)

CONTACTS = Table(
    name="contacts",
    description="One row per customer message to the seller.",
    key="contact_id",
    columns=(
        _id("contact_id", "Contact id."),
        _seller_ref(),
        _order_ref(nullable=True),
        Column("opened_at", "timestamp", "When the customer wrote.", event_time=True),
        Column("topic", "string", "What the customer wrote about.", allowed=CONTACT_TOPICS),
        Column(
            "first_response_at",
            "timestamp",
            "The seller's first answer; empty if unanswered. The standard counts answers within 48 h.",
            nullable=True,
            event_time=True,
        ),
    ),
    rules=(
        Rule(
            "response_before_contact",
            ("opened_at", "first_response_at"),
            "first_response_at < opened_at",
            "answered before the customer wrote",
        ),
    ),
)

POLICY_ACTIONS_TABLE = Table(
    name="policy_actions",
    description="Enforcement the marketplace took against a seller under its performance policy.",
    key="action_id",
    columns=(
        _id("action_id", "Action id."),
        _seller_ref(),
        Column("issued_at", "timestamp", "When the action took effect.", event_time=True),
        Column(
            "action",
            "string",
            "warning, suppression (listings hidden), suspension (selling stopped), or reinstatement.",
            allowed=POLICY_ACTIONS,
        ),
        Column("metric", "string", "The standard that was missed; empty for reinstatements.", nullable=True),
        Column("metric_value", "float", "The seller's value of that metric when it was evaluated.", nullable=True),
        Column("threshold", "float", "The standard's threshold at the time.", nullable=True),
        Column("policy_version", "string", "The policy version under which the action was taken."),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (SELLERS, ORDERS, RETURNS, REFUNDS, FEEDBACK, CONTACTS, POLICY_ACTIONS_TABLE)
}

MANIFEST_FILE = "_manifest.json"
"""Written beside the tables by an extract; holds its cut-off time (ISO 8601, UTC)."""
