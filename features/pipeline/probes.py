"""The dates the point-in-time pipeline evaluates, as small frames both engines (DuckDB, Spark)
register as tables: `probe_days` (as-of and label-grid dates) and `probe_calendar` (each day mapped
to the probe point whose running totals hold it)."""

from __future__ import annotations

from bisect import bisect_left

import pandas as pd

EPOCH = pd.Timestamp("1970-01-01")


def probe_days(as_of_days: list[int], grid_days: list[int]) -> pd.DataFrame:
    """One row per date the pipeline evaluates: as-of dates get features, grid dates feed labels; each
    with its ISO week of the year (the season, a context feature)."""
    days = sorted(set(as_of_days) | set(grid_days))
    return pd.DataFrame({
        "as_of_day": pd.array(days, dtype="int64"),
        "is_as_of": [d in set(as_of_days) for d in days],
        "is_grid": [d in set(grid_days) for d in days],
        "week_of_year": pd.array([(EPOCH + pd.Timedelta(days=d)).isocalendar().week for d in days], dtype="int64"),
    })


def probe_calendar(as_of_days: list[int], grid_days: list[int], lags: list[int]) -> pd.DataFrame:
    """Each day from the first probe point to the last, with the first probe point at or after it:
    the point whose span of days (since the point before) holds that day. A probe point is a day
    a running total is read at: t - 1 - lag for every evaluated date t and lag."""
    points = sorted({d - 1 - lag for d in set(as_of_days) | set(grid_days) for lag in lags})
    days = list(range(points[0], points[-1] + 1))
    return pd.DataFrame({
        "day": pd.array(days, dtype="int64"),
        "point": pd.array([points[bisect_left(points, day)] for day in days], dtype="int64"),
    })
