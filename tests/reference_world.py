"""The world around a seller (features of family "world") recomputed in plain pandas from the event tables, an
oracle for tests that shares no code with `features.pipeline.world` or the spec's SQL: the late, invalid-tracking,
return and 1-2 star rates of a seller's region, carriers and category, and the marketplace's volume and lateness
against their own recent level."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TD_DAY = pd.Timedelta(days=1)
RUNNING_LATE = 1.5  # a (region, carrier) 7-day late rate at least this multiple of its 90-day one ...
VOLUME_WEEKS = 8    # ... and marketplace orders of the last week against the 8 before, as the issue defines them


def _within(times: pd.Series, t: pd.Timestamp, oldest: int, newest: int = 0) -> pd.Series:
    """Times in (t - oldest days, t - newest days]."""
    return (times > t - oldest * TD_DAY) & (times <= t - newest * TD_DAY)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


class Hand:
    """The event tables as any consumer reads them, each row with its seller's region and category and
    (returns, ratings) its order's channel."""

    def __init__(self, events: Path) -> None:
        def read(name: str) -> pd.DataFrame:  # a table is a file (`<name>.parquet`) or a folder of parts
            return pd.read_parquet(events / name if (events / name).exists() else events / f"{name}.parquet")

        sellers = read("sellers").set_index("seller_id")
        o = read("orders")
        o["region"] = o["seller_id"].map(sellers["region"])
        o["category"] = o["seller_id"].map(sellers["category"])
        by_order = o.set_index("order_id")[["fulfilment_channel", "category"]]
        self.sellers, self.orders = sellers, o
        self.returns = read("returns").join(by_order, on="order_id")
        self.feedback = read("feedback").join(by_order, on="order_id")
        sf = o[o["fulfilment_channel"] == "seller"]  # on-time delivery, tracking and returns count these
        self.delivered = sf[sf["delivered_at"].notna()].assign(
            late=lambda d: d["delivered_at"] > d["promised_delivery_by"])
        self.shipped = sf[sf["shipped_at"].notna()].assign(invalid=lambda d: ~d["tracking_valid"].astype(bool))

    def late_rate(self, where: pd.Series | bool, t: pd.Timestamp, days: int) -> float | None:
        d = self.delivered
        w = _within(d["delivered_at"], t, days) & where
        return _ratio(int(d.loc[w, "late"].sum()), int(w.sum()))

    def invalid_rate(self, where: pd.Series | bool, t: pd.Timestamp, days: int) -> float | None:
        s = self.shipped
        w = _within(s["shipped_at"], t, days) & where
        return _ratio(int(s.loc[w, "invalid"].sum()), int(w.sum()))

    def return_rate(self, where_returns: pd.Series, where_delivered: pd.Series, t: pd.Timestamp) -> float | None:
        r = self.returns
        n = int((_within(r["requested_at"], t, 60) & (r["fulfilment_channel"] == "seller") & where_returns).sum())
        return _ratio(n, int((_within(self.delivered["delivered_at"], t, 60) & where_delivered).sum()))

    def negative_rate(self, where_feedback: pd.Series, where_orders: pd.Series, t: pd.Timestamp) -> float | None:
        f = self.feedback
        n = int((_within(f["submitted_at"], t, 60) & (f["rating"] <= 2) & where_feedback).sum())
        return _ratio(n, int((_within(self.orders["ordered_at"], t, 60) & where_orders).sum()))

    def carriers(self, sid: str, t: pd.Timestamp) -> tuple[float | None, float | None]:
        """(late rate of the seller's recent carriers in its region weighted by its shipments, share of
        its shipments on a carrier running late now)."""
        region, d = self.sellers.at[sid, "region"], self.delivered
        s = self.shipped
        mine = s[(s["seller_id"] == sid) & _within(s["shipped_at"], t, 30) & s["carrier"].notna()]
        counts = mine.groupby("carrier").size()
        if counts.empty:
            return None, None
        market_7 = self.late_rate(True, t, 7)
        weighted = known = running = 0.0
        for carrier, n in counts.items():
            pair = (d["region"] == region) & (d["carrier"] == carrier)
            rate_7, rate_90 = self.late_rate(pair, t, 7), self.late_rate(pair, t, 90)
            if rate_7 is not None:
                weighted, known = weighted + n * rate_7, known + n
                if rate_90 is not None and market_7 is not None and rate_7 >= RUNNING_LATE * rate_90 \
                        and rate_7 > market_7:
                    running += n
        return (weighted / known if known else None), running / counts.sum()

    def marketplace(self, t: pd.Timestamp) -> dict[str, float | None]:
        placed = self.orders["ordered_at"]
        last, before = int(_within(placed, t, 7).sum()), int(_within(placed, t, 7 * (VOLUME_WEEKS + 1), 7).sum())
        covered = placed.min() <= t - (7 * (VOLUME_WEEKS + 1) - 1) * TD_DAY  # events reach back over those weeks
        late_7, late_90 = self.late_rate(True, t, 7), self.late_rate(True, t, 90)
        return {"marketplace_order_volume_vs_8w": _ratio(last, before / VOLUME_WEEKS) if covered else None,
                "marketplace_late_delivery_vs_90d": None if late_7 is None or late_90 is None else _ratio(late_7, late_90)}

    def world(self, sid: str, t: pd.Timestamp) -> dict[str, float | None]:
        """Every world feature of a seller at t."""
        region, category = self.sellers.at[sid, "region"], self.sellers.at[sid, "category"]
        d, s, o = self.delivered, self.shipped, self.orders
        out: dict[str, float | None] = {}
        for days in (7, 30):
            out[f"region_late_delivery_rate_{days}d"] = self.late_rate(d["region"] == region, t, days)
            out[f"region_invalid_tracking_rate_{days}d"] = self.invalid_rate(s["region"] == region, t, days)
        out["late_delivery_rate_vs_region_30d"] = _minus(self.late_rate(d["seller_id"] == sid, t, 30),
                                                         out["region_late_delivery_rate_30d"])
        out["invalid_tracking_rate_vs_region_30d"] = _minus(self.invalid_rate(s["seller_id"] == sid, t, 30),
                                                            out["region_invalid_tracking_rate_30d"])
        r, f = self.returns, self.feedback
        out["category_return_rate_60d"] = self.return_rate(r["category"] == category, d["category"] == category, t)
        out["return_rate_vs_category_60d"] = _minus(
            self.return_rate(r["seller_id"] == sid, d["seller_id"] == sid, t), out["category_return_rate_60d"])
        out["category_negative_feedback_rate_60d"] = self.negative_rate(f["category"] == category,
                                                                        o["category"] == category, t)
        out["negative_feedback_rate_vs_category_60d"] = _minus(
            self.negative_rate(f["seller_id"] == sid, o["seller_id"] == sid, t),
            out["category_negative_feedback_rate_60d"])
        out["carrier_late_delivery_rate_7d"], out["carriers_running_late_share_30d"] = self.carriers(sid, t)
        return {**out, **self.marketplace(t)}
