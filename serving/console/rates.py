"""A seller's standards week by week, as the seller page charts them: each standard's rate (the
policy's own, features.policy.standing, from a snapshot's volume, gap and trend), whether it was
evaluated and whether it was missed; and `RateCube`, every seller's rates over the latest snapshot
weeks kept in memory so a seller page needs one binary search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.platform import layout
from features.policy.definition import Policy
from features.policy.standing import standing

CHART_WEEKS = 13  # a seller's rates are charted over the last quarter of snapshots
RATE_INPUTS = ("volume", "gap", "trend")  # what features.policy.standing reads of each standard


@dataclass(frozen=True)
class Rates:
    """One seller's standards week by week: rate (NaN without volume), evaluated, missed; (weeks, standards)."""

    weeks: list[date]
    standards: list[str]
    rate: np.ndarray
    evaluated: np.ndarray
    missing: np.ndarray


def rates_of(rows: pd.DataFrame, policy: Policy) -> Rates:
    """A seller's snapshot rows (as_of, each standard's volume, gap and trend) as the policy's rates."""
    names = list(policy.metrics)
    if rows.empty:
        return Rates([], names, np.zeros((0, len(names))), np.zeros((0, len(names)), bool),
                     np.zeros((0, len(names)), bool))
    stands = [standing(rows, policy.metrics[m]) for m in names]
    weeks = [pd.Timestamp(d).date() for d in rows["as_of"]]  # DuckDB gives Timestamps; the pages speak dates
    return Rates(weeks, names, np.column_stack([s.rate for s in stands]),
                 np.column_stack([s.evaluated for s in stands]), np.column_stack([s.missing for s in stands]))


@dataclass
class RateCube:
    """Every seller's rate per standard over the latest snapshot weeks, kept in memory so a seller page
    needs one binary search, not a scan of every week's file: (weeks, sellers, standards) float32 rates
    (NaN: no volume, or not in that week's snapshot) and evaluated / missed flags. About 3.4 MB per week
    per 100,000 sellers with 8 standards."""

    weeks: list[date]
    standards: list[str]
    ids: np.ndarray  # sorted seller ids (every week's)
    rate: np.ndarray
    evaluated: np.ndarray
    missing: np.ndarray

    @classmethod
    def read(cls, weeks: list[tuple[date, Path]], policy: Policy) -> RateCube:
        names = list(policy.metrics)
        columns = ["seller_id", *(f"{m}_{s}" for m in names for s in RATE_INPUTS)]
        frames = [pq.read_table(layout.partition_files(p), columns=columns).to_pandas() for _, p in weeks]
        ids = np.unique(np.concatenate([f["seller_id"].to_numpy(dtype=str) for f in frames])) if frames \
            else np.array([], dtype=str)
        shape = (len(frames), len(ids), len(names))
        rate = np.full(shape, np.nan, dtype="float32")
        evaluated, missing = np.zeros(shape, bool), np.zeros(shape, bool)
        for w, frame in enumerate(frames):
            at = np.searchsorted(ids, frame["seller_id"].to_numpy(dtype=str))
            for j, m in enumerate(names):
                s = standing(frame, policy.metrics[m])
                rate[w, at, j], evaluated[w, at, j], missing[w, at, j] = s.rate, s.evaluated, s.missing
        return cls([d for d, _ in weeks], names, ids, rate, evaluated, missing)

    def seller(self, seller_id: str, weeks: list[date]) -> Rates:
        i = int(np.searchsorted(self.ids, seller_id))
        rows = [self.weeks.index(d) for d in weeks]
        if i >= len(self.ids) or self.ids[i] != seller_id:
            return Rates([], self.standards, np.zeros((0, len(self.standards))), np.zeros((0, 0), bool),
                         np.zeros((0, 0), bool))
        rate = self.rate[rows, i, :].astype("float64")
        known = ~np.isnan(rate).all(axis=1)  # weeks the seller was in the snapshot
        return Rates([d for d, k in zip(weeks, known) if k], self.standards, rate[known],
                     self.evaluated[rows, i, :][known], self.missing[rows, i, :][known])
