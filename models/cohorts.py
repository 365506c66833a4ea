"""The cohorts sellers are judged in, and how well-calibrated scores are, declared once: training's
promotion gate checks them, and the analysts' notebooks slice by them, so "new sellers" or a
calibration error mean the same thing in both."""

from __future__ import annotations

import numpy as np
import pandas as pd

NEW_SELLER_DAYS = 90
"""Sellers approved fewer days ago than this are 'new'; sellers of unknown tenure count as new."""
VOLUME_CUTS = (30, 300, 3000)
"""Orders in the last 90 days that separate the volume bands: <30, 30-299, 300-2999, >=3000."""
VOLUME_BANDS = ("<30", "30-299", "300-2999", ">=3000")
TENURE_BANDS = ("new", "established")


def tenure_band(tenure_days: pd.Series) -> np.ndarray:
    """'new' (under NEW_SELLER_DAYS, or unknown) or 'established', per seller."""
    tenure = pd.to_numeric(tenure_days, errors="coerce")
    return np.where(tenure >= NEW_SELLER_DAYS, "established", "new")  # NaN >= 90 is False


def volume_band(orders_90d: pd.Series) -> pd.Categorical:
    """The seller's volume band by orders in the last 90 days (ordered, small to large)."""
    return pd.cut(pd.to_numeric(orders_90d, errors="coerce"), [-np.inf, *VOLUME_CUTS, np.inf],
                  right=False, labels=list(VOLUME_BANDS))


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Observed breach rate against mean predicted score in equal-width score bins on [0, 1]
    (a score of exactly 1 falls in the last bin); one row per non-empty bin."""
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    idx = np.clip(np.floor(p * bins).astype(int), 0, bins - 1)
    frame = pd.DataFrame({"bin": idx, "y": y, "p": p})
    out = frame.groupby("bin", sort=True).agg(count=("y", "size"), breach_rate=("y", "mean"),
                                              mean_score=("p", "mean")).reset_index()
    out["lower"], out["upper"] = out["bin"] / bins, (out["bin"] + 1) / bins
    return out[["bin", "lower", "upper", "count", "mean_score", "breach_rate"]]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """How far, on average over sellers, the predicted breach probability is from the observed
    breach rate of sellers scored alike (equal-width bins, weighted by bin size)."""
    table = calibration_bins(y, p, bins)
    n = table["count"].sum()
    if n == 0:
        return float("nan")
    return float((table["count"] / n * (table["breach_rate"] - table["mean_score"]).abs()).sum())
