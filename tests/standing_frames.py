"""Request-like standing features built by hand, for the tests of where a seller stands
(tests/features/test_standing.py) and of the words (tests/models/test_words.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def standing_frame(metric, counts_volumes: list[tuple[int, int]], trend: float = 0.009,
                   orders_7d: list[float] | None = None, recent: list[float] | None = None) -> pd.DataFrame:
    """Request-like features for a metric from (count, volume) pairs, computed as the pipeline does;
    the seller's orders of the last 7 days and the 30-day rate only when given."""
    rows = []
    for count, volume in counts_volumes:
        rate = count / volume if volume else np.nan
        gap = (rate - metric.threshold) if metric.direction == "at_most" else -(rate - metric.threshold)
        rows.append({f"{metric.name}_volume": volume, f"{metric.name}_gap": gap, f"{metric.name}_trend": trend})
    frame = pd.DataFrame(rows)
    if orders_7d is not None:
        frame["orders_7d"] = orders_7d
    if recent is not None:
        frame[f"{metric.name}_30d"] = recent
    return frame
