"""Bands relative to the week's queue: what a seller's place this week asks of a reviewer.

The policy's bands (`features.policy.definition.RiskBand`) are not probability ranges: a seller missing a standard
now is on the recovery list; a seller compliant now is placed by rank among the week's compliant
sellers, counted in weekly queues (the review capacity): the first queue's worth is the early-warning
queue itself (`review`), the next (`next`), and so on, and the rest (`low`).

The weekly batch job ranks the week, finds each band's lowest score (`queue_cutoffs`) and writes those
cut-offs into the week's `_summary.json`; the HTTP service reads them back (`CutoffsReader`), so a
seller gets the same band from both, and a score sent for a week no batch has ranked is placed against
the latest week before it that the same model version ranked. Without any ranked week a compliant
seller's band is `unranked` and says how to get one. Pure functions but for the reader."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np

from features.platform import layout
from features.policy.definition import Policy

UNRANKED = "unranked"
"""The band of a seller compliant now when no batch run of the model has ranked a week (yet)."""

TIE_ATOL = 1e-9
"""The batch ranks on the model's plain predictions and records the explained score, which may differ
in the last bits; a score this close to a cut-off counts as reaching it."""


@dataclass(frozen=True)
class BandCutoff:
    band: str
    within: int  # compliant sellers ranked within this band and the ones before it
    lowest_score: float  # the score of the `within`-th compliant seller (0.0: the band reaches every one)


@dataclass(frozen=True)
class QueueCutoffs:
    """Where each ranked band starts in one week's ranking by one model version."""

    as_of: date
    model_version: str
    model_run_id: str  # what identifies the model: a version number is reused by another store
    capacity: int
    compliant_sellers: int
    cutoffs: tuple[BandCutoff, ...]

    def to_json(self) -> dict:
        return {**asdict(self), "as_of": self.as_of.isoformat()}

    @classmethod
    def from_json(cls, raw: dict) -> QueueCutoffs:
        return cls(date.fromisoformat(raw["as_of"]), str(raw["model_version"]), str(raw["model_run_id"]), int(raw["capacity"]),
                   int(raw["compliant_sellers"]), tuple(BandCutoff(c["band"], int(c["within"]), float(c["lowest_score"]))
                                                        for c in raw["cutoffs"]))


def queue_cutoffs(scores: np.ndarray, missing_now: np.ndarray, capacity: int, policy: Policy, as_of: date,
                  model_version: str, model_run_id: str) -> QueueCutoffs:
    """Each ranked band's cut-off from the week's scores: band b with `within_queues` q holds the
    compliant sellers ranked within ceil(q x capacity); its lowest score is that seller's score."""
    compliant = np.sort(np.asarray(scores, dtype="float64")[~np.asarray(missing_now, dtype=bool)])[::-1]
    out = []
    for band in policy.ranked_bands[:-1]:
        within = min(math.ceil(round(band.within_queues * capacity, 9)), len(compliant))
        out.append(BandCutoff(band.name, within, float(compliant[within - 1]) if within else 0.0))
    return QueueCutoffs(as_of, str(model_version), str(model_run_id), int(capacity), len(compliant), tuple(out))


def assign_bands(scores: np.ndarray, missing_now: np.ndarray, policy: Policy,
                 cutoffs: QueueCutoffs | None, as_of: Sequence[date | None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each seller's band and what it asks of a reviewer: the recovery band when missing a standard
    now, else the first ranked band whose cut-off the score reaches, else the last. Placed against
    another week's ranking than the seller's own, the meaning says which week."""
    scores = np.asarray(scores, dtype="float64")
    n = len(scores)
    missing_now = np.asarray(missing_now, dtype=bool)
    names = np.empty(n, dtype=object)
    meanings = np.empty(n, dtype=object)
    ranked = policy.ranked_bands
    if cutoffs is None:
        names[:] = UNRANKED
        meanings[:] = ("Not placed against a weekly queue: no weekly scoring run of this model version has ranked "
                       "a week up to this date (`seller-risk score`).")
    else:
        lows = np.array([c.lowest_score for c in cutoffs.cutoffs] + [-np.inf]) - TIE_ATOL
        # the first band whose cut-off the score reaches: cut-offs fall band by band
        idx = np.argmax(scores[:, None] >= lows[None, :], axis=1)
        names[:] = np.array([b.name for b in ranked], dtype=object)[idx]
        meanings[:] = np.array([b.meaning for b in ranked], dtype=object)[idx]
        if as_of is not None:
            other = np.array([d is not None and d != cutoffs.as_of for d in as_of], dtype=bool)
            meanings[other] = [f"{m} (placed against the queue of {cutoffs.as_of})" for m in meanings[other]]
    recovery = policy.recovery_band
    names[missing_now], meanings[missing_now] = recovery.name, recovery.meaning
    return names, meanings


class CutoffsReader:
    """The service's view of the weekly cut-offs: for a seller's as-of date, those of the latest week
    up to it that the model of `model_run_id` ranked (any week when the date is unknown). The score table is looked
    at again at most every `recheck_s` seconds (a look lists its weeks: milliseconds, against a
    sub-millisecond score), and summaries are read again only when its weeks or their times change."""

    def __init__(self, scores: Path | str, model_run_id: str, recheck_s: float = 1.0) -> None:
        self.scores, self.model_run_id, self.recheck_s = Path(scores), str(model_run_id), recheck_s
        self._key: tuple | None = None
        self._looked = -math.inf
        self._weeks: list[QueueCutoffs] = []  # oldest first

    def _state(self) -> tuple:
        try:
            weeks = layout.scored_weeks(self.scores)
        except FileNotFoundError:
            return ()
        out = []
        for w in weeks:
            try:
                out.append((w, os.stat(layout.summary_file(self.scores, w)).st_mtime_ns))
            except FileNotFoundError:
                continue
        return tuple(out)

    def weeks(self) -> list[QueueCutoffs]:
        now = time.monotonic()
        if now - self._looked < self.recheck_s:
            return self._weeks
        self._looked = now
        key = self._state()
        if key != self._key:
            found = []
            for w, _ in key:
                try:
                    raw = json.loads(layout.summary_file(self.scores, w).read_text()).get("band_cutoffs")
                except (OSError, ValueError):
                    continue
                if raw and str(raw.get("model_run_id")) == self.model_run_id:
                    found.append(QueueCutoffs.from_json(raw))
            self._weeks, self._key = found, key
        return self._weeks

    def __call__(self, as_of: date | None) -> QueueCutoffs | None:
        weeks = self.weeks()
        if as_of is not None:
            weeks = [c for c in weeks if c.as_of <= as_of]
        return weeks[-1] if weeks else None
