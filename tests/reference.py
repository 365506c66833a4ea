"""A deliberately plain pandas re-implementation of the policy measures, used only by tests as an
oracle: it reads the event tables as any consumer would and recomputes every policy metric for
every seller at weekly evaluation dates, independently of the simulator's own ledger (and,
later, of the feature pipeline's SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features.policy.definition import Metric, Policy
from features.events.schema import TABLES

DAY = pd.Timedelta(days=1)
ANSWER_WINDOW = pd.Timedelta(hours=48)


def read_tables(events: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(events / name) for name in TABLES}


def measure_events(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per counted event: seller_id, channel, measure, time."""
    o = t["orders"]
    channel_of = o.set_index("order_id")["fulfilment_channel"]

    def via_order(df: pd.DataFrame) -> pd.Series:
        return df["order_id"].map(channel_of).fillna("seller")

    def rows(df: pd.DataFrame, keep: pd.Series, when: pd.Series, measure: str, channel: pd.Series) -> pd.DataFrame:
        keep = keep.fillna(False).astype(bool) & when.notna()
        return pd.DataFrame({"seller_id": df.loc[keep, "seller_id"].to_numpy(), "channel": channel[keep].to_numpy(),
                             "measure": measure, "time": when[keep].to_numpy()})

    ch = o["fulfilment_channel"]
    everything = pd.Series(True, index=o.index)
    c = t["contacts"]
    c_ch = via_order(c)
    due = c["opened_at"] + ANSWER_WINDOW
    due = c["first_response_at"].where(c["first_response_at"] < due, due)
    f, r, rf = t["feedback"], t["returns"], t["refunds"]
    parts = [
        rows(o, everything, o["ordered_at"], "orders", ch),
        rows(o, o["cancelled_by"] == "seller", o["cancelled_at"], "seller_cancelled_orders", ch),
        rows(o, o["shipped_at"].notna(), o["shipped_at"], "shipped_orders", ch),
        rows(o, o["shipped_at"] > o["promised_ship_by"], o["shipped_at"], "late_shipments", ch),
        rows(o, o["tracking_valid"], o["shipped_at"], "valid_tracking_shipments", ch),
        rows(o, o["delivered_at"].notna(), o["delivered_at"], "delivered_orders", ch),
        rows(o, o["delivered_at"] <= o["promised_delivery_by"], o["delivered_at"], "on_time_deliveries", ch),
        rows(rf, rf["seller_responsible"], rf["refunded_at"], "seller_responsible_refunds", via_order(rf)),
        rows(c, pd.Series(True, index=c.index), due, "contacts_due", c_ch),
        rows(c, c["first_response_at"] <= c["opened_at"] + ANSWER_WINDOW, c["first_response_at"],
             "contacts_answered_in_time", c_ch),
        rows(f, f["rating"] <= 2, f["submitted_at"], "negative_feedback", via_order(f)),
        rows(r, pd.Series(True, index=r.index), r["requested_at"], "returns", via_order(r)),
        rows(c, c["topic"] == "item_not_received", c["opened_at"], "item_not_received_reports", c_ch),
    ]
    return pd.concat(parts, ignore_index=True)


@dataclass
class Evaluations:
    """Policy metrics for every seller at every weekly evaluation date."""

    sellers: list[str]
    dates: list[datetime]
    metrics: list[str]
    rate: np.ndarray  # (sellers, dates, metrics)
    volume: np.ndarray
    misses: np.ndarray
    active: np.ndarray  # (sellers, dates)


def evaluate(t: dict[str, pd.DataFrame], policy: Policy, start: datetime, weeks: int) -> Evaluations:
    """Every metric over its trailing window (t - W, t], at t = start + 7k days, k = 1..weeks."""
    ev = measure_events(t)
    sellers = sorted(t["sellers"]["seller_id"])
    s_idx = {s: i for i, s in enumerate(sellers)}
    n_days = weeks * 7
    # day bucket k holds (start + k days, start + k + 1 days]: exactly the right-closed windows
    bucket = np.ceil((ev["time"] - pd.Timestamp(start)) / DAY).astype(int) - 1
    ev = ev.assign(bucket=bucket, s=ev["seller_id"].map(s_idx))
    ev = ev[(ev["bucket"] >= 0) & (ev["bucket"] < n_days)]
    cum: dict[tuple[str, str], np.ndarray] = {}
    for (measure, channel), g in ev.groupby(["measure", "channel"]):
        grid = np.zeros((len(sellers), n_days + 1), np.int64)
        np.add.at(grid, (g["s"].to_numpy(), g["bucket"].to_numpy() + 1), 1)
        cum[(measure, channel)] = grid.cumsum(axis=1)

    def window(measure: str, channels: tuple[str, ...], end: int, days: int) -> np.ndarray:
        total = np.zeros(len(sellers), np.int64)
        for c in channels:
            if (measure, c) in cum:
                total += cum[(measure, c)][:, end] - cum[(measure, c)][:, max(end - days, 0)]
        return total

    metrics = list(policy.metrics)
    shape = (len(sellers), weeks, len(metrics))
    rate, volume, misses = np.full(shape, np.nan), np.zeros(shape, np.int64), np.zeros(shape, bool)
    onboarded = t["sellers"].set_index("seller_id").loc[sellers, "onboarded_at"].to_numpy()
    active = np.zeros((len(sellers), weeks), bool)
    dates = [start + timedelta(days=7 * (k + 1)) for k in range(weeks)]
    for k, when in enumerate(dates):
        end = 7 * (k + 1)
        active[:, k] = (onboarded <= np.datetime64(when)) & (window("orders", ("seller", "marketplace"), end, 30) > 0)
        for j, m in enumerate(policy.metrics.values()):
            num = sum(window(x, m.channels, end, m.window_days) for x in m.numerator)
            den = window(m.denominator, m.channels, end, m.window_days)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.where(den > 0, num / np.maximum(den, 1), np.nan)
            rate[:, k, j], volume[:, k, j] = r, den
            bad = r > m.threshold if m.direction == "at_most" else r < m.threshold
            misses[:, k, j] = (den >= m.min_count) & bad
    return Evaluations(sellers, dates, metrics, rate, volume, misses, active)


def breach_label(ev: Evaluations, horizon_weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """(label, defined): a miss at any of the next `horizon_weeks` evaluations; defined where the
    whole horizon lies inside the data."""
    any_miss = ev.misses.any(axis=2)
    n_weeks = any_miss.shape[1]
    label = np.zeros_like(any_miss)
    defined = np.zeros_like(any_miss)
    for k in range(n_weeks - horizon_weeks):
        label[:, k] = any_miss[:, k + 1: k + 1 + horizon_weeks].any(axis=1)
        defined[:, k] = True
    return label, defined


# --- the label's mechanics: the next evaluation of each standard as known at t, and late parcels in transit

RECENT = 30                          # the recent pace a projection assumes: the last 30 days
LOST_AFTER = pd.Timedelta(days=30)   # a parcel undelivered 30 days after shipping counts as lost


def _count(ev: pd.DataFrame, measures: tuple[str, ...], channels: tuple[str, ...], t: pd.Timestamp,
           days: int) -> int:
    """Counted events of these measures on these channels in (t - days, t]; none for an empty window."""
    if days <= 0:
        return 0
    keep = ev["measure"].isin(measures) & ev["channel"].isin(channels)
    keep &= (ev["time"] > t - pd.Timedelta(days=days)) & (ev["time"] <= t)
    return int(keep.sum())


def _gap(m: Metric, num: float, den: float) -> float | None:
    if den <= 0:
        return None
    return num / den - m.threshold if m.direction == "at_most" else m.threshold - num / den


def hand_standard(ev: pd.DataFrame, m: Metric, policy: Policy, t: pd.Timestamp) -> dict[str, object]:
    """One standard's next evaluation at t, from the policy's words: one cadence on, over the standard's window."""
    w, c = m.window_days, policy.evaluation_every_days
    if w <= c:  # the next evaluation's window lies wholly ahead
        return {}

    def part(days: int) -> tuple[int, int]:
        return _count(ev, m.numerator, m.channels, t, days), _count(ev, (m.denominator,), m.channels, t, days)

    def against(num: int, den: int) -> int:
        return num if m.direction == "at_most" else den - num

    (known_num, known_den), (recent_num, recent_den) = part(w - c), part(RECENT)
    num, den = known_num + recent_num * c / RECENT, known_den + recent_den * c / RECENT
    return {f"{m.name}_next_known_gap": _gap(m, known_num, known_den),
            f"{m.name}_leaving_next": against(*part(w)) - against(known_num, known_den),
            f"{m.name}_next_projected_gap": _gap(m, num, den) if den >= m.min_count else None}


def hand_late_parcels(orders: pd.DataFrame, seller: str, t: pd.Timestamp) -> int:
    """The seller's own (seller-fulfilled) parcels shipped, past their promised delivery date and neither
    delivered nor 30 days in transit (lost) at t."""
    o = orders[(orders["seller_id"] == seller) & (orders["fulfilment_channel"] == "seller")]
    never = pd.Timestamp("2200-01-01")  # a time after every event: "not yet, as far as anyone knows"
    arrived = pd.concat([o["delivered_at"].fillna(never), o["shipped_at"] + LOST_AFTER], axis=1).min(axis=1)
    in_transit = o["shipped_at"].notna() & (o["shipped_at"] <= t) & (t < arrived)
    return int((in_transit & (o["promised_delivery_by"] <= t)).sum())


def hand_mechanics(tables: dict[str, pd.DataFrame], policy: Policy, seller: str, t: pd.Timestamp) -> dict:
    ev = measure_events(tables)
    ev = ev[ev["seller_id"] == seller]
    out: dict[str, object] = {}
    for m in policy.metrics.values():
        out |= hand_standard(ev, m, policy, t)
    return out | {"late_parcels_in_transit": hand_late_parcels(tables["orders"], seller, t)}
