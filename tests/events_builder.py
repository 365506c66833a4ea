"""A small builder for hand-written event histories: rows are added one business event at a time
with sensible defaults (a seller-fulfilled order that ships, is scanned and arrives on time), then
written as Parquet with the schema's Arrow types plus the extract manifest holding the cut-off."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.events.schema import MANIFEST_FILE, TABLES

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_UNSET = object()


class EventsBuilder:
    """Collects rows of every event table; `write` turns them into an events folder."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {name: [] for name in TABLES}
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n:06d}"

    def seller(self, seller_id: str, onboarded_at: datetime, category: str = "home", region: str = "pacific") -> str:
        self.rows["sellers"].append(
            {"seller_id": seller_id, "onboarded_at": onboarded_at, "category": category, "region": region})
        return seller_id

    def order(
        self,
        seller_id: str,
        ordered_at: datetime,
        *,
        channel: str = "seller",
        value: float = 25.0,
        ship_by: timedelta = DAY,
        deliver_by: timedelta = 4 * DAY,
        shipped: timedelta | None = 12 * HOUR,
        handover: timedelta | None = 18 * HOUR,
        delivered: timedelta | None = 3 * DAY,
        tracking_valid: bool | None | object = _UNSET,
        cancelled: timedelta | None = None,
        cancelled_by: str | None = None,
        order_id: str | None = None,
    ) -> str:
        """An order; every duration is measured from `ordered_at`. A cancelled order (give
        `cancelled` and `cancelled_by`) is never shipped, scanned or delivered."""
        if cancelled is not None:
            shipped = handover = delivered = None
        if tracking_valid is _UNSET:
            tracking_valid = None if shipped is None else True
        order_id = order_id or self._id("O")
        at = lambda d: None if d is None else ordered_at + d
        self.rows["orders"].append({
            "order_id": order_id,
            "seller_id": seller_id,
            "ordered_at": ordered_at,
            "fulfilment_channel": channel,
            "order_value": value,
            "item_count": 1,
            "promised_ship_by": ordered_at + ship_by,
            "promised_delivery_by": ordered_at + deliver_by,
            "shipped_at": at(shipped),
            "carrier_handover_at": at(handover),
            "carrier": None if shipped is None else "ups",
            "tracking_valid": tracking_valid,
            "delivered_at": at(delivered),
            "cancelled_at": at(cancelled),
            "cancelled_by": cancelled_by,
            "cancel_reason": None if cancelled is None else "out_of_stock",
        })
        return order_id

    def _order(self, order_id: str) -> dict:
        return next(o for o in self.rows["orders"] if o["order_id"] == order_id)

    def feedback(self, order_id: str, submitted_at: datetime, rating: int) -> str:
        fid = self._id("FB")
        self.rows["feedback"].append({"feedback_id": fid, "order_id": order_id,
                                      "seller_id": self._order(order_id)["seller_id"],
                                      "submitted_at": submitted_at, "rating": rating})
        return fid

    def return_(self, order_id: str, requested_at: datetime, reason: str = "damaged") -> str:
        rid = self._id("R")
        self.rows["returns"].append({"return_id": rid, "order_id": order_id,
                                     "seller_id": self._order(order_id)["seller_id"], "requested_at": requested_at,
                                     "reason": reason, "seller_responsible": reason in {
                                         "damaged", "wrong_item", "not_as_described", "defective"}})
        return rid

    def refund(self, order_id: str, refunded_at: datetime, amount: float = 10.0, reason: str = "damaged",
               seller_responsible: bool = True) -> str:
        rid = self._id("RF")
        self.rows["refunds"].append({"refund_id": rid, "order_id": order_id,
                                     "seller_id": self._order(order_id)["seller_id"], "refunded_at": refunded_at,
                                     "amount": amount, "reason": reason, "seller_responsible": seller_responsible})
        return rid

    def contact(self, seller_id: str, opened_at: datetime, first_response_at: datetime | None = None,
                order_id: str | None = None, topic: str = "product_question") -> str:
        cid = self._id("C")
        self.rows["contacts"].append({"contact_id": cid, "seller_id": seller_id, "order_id": order_id,
                                      "opened_at": opened_at, "topic": topic,
                                      "first_response_at": first_response_at})
        return cid

    def warning(self, seller_id: str, issued_at: datetime, metric: str = "on_time_delivery_rate",
                value: float = 0.85, threshold: float = 0.90) -> str:
        aid = self._id("A")
        self.rows["policy_actions"].append({"action_id": aid, "seller_id": seller_id, "issued_at": issued_at,
                                            "action": "warning", "metric": metric, "metric_value": value,
                                            "threshold": threshold, "policy_version": "walmart-us-2026"})
        return aid

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every table as a frame (via Arrow, so with the schema's types)."""
        return {name: self.arrow(name).to_pandas() for name in TABLES}

    def arrow(self, name: str) -> pa.Table:
        return pa.Table.from_pylist(self.rows[name], schema=TABLES[name].arrow_schema())

    def write(self, directory: Path, cutoff: datetime) -> Path:
        """The events folder: one Parquet file per table and the manifest with the cut-off."""
        return write_tables({name: self.arrow(name) for name in TABLES}, directory, cutoff)


def write_tables(tables: dict[str, pa.Table | pd.DataFrame], directory: Path, cutoff: datetime) -> Path:
    """Writes tables (Arrow, or frames converted with the schema's Arrow types) as `<name>.parquet`
    beside a manifest holding the cut-off, replacing whatever folder or file held each table."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in tables.items():
        if isinstance(data, pd.DataFrame):
            data = pa.Table.from_pandas(data, schema=TABLES[name].arrow_schema(), preserve_index=False)
        for old in (directory / name, directory / f"{name}.parquet"):
            if old.is_dir():
                shutil.rmtree(old)
            elif old.exists():
                old.unlink()
        pq.write_table(data, directory / f"{name}.parquet")
    (directory / MANIFEST_FILE).write_text(json.dumps({"cutoff": cutoff.isoformat()}))
    return directory
