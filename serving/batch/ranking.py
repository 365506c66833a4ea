"""The week ranked before a row is written: a first, cheap pass over the snapshot (scores without
explanations, where each seller stands against each standard) that places every seller in the
week's lists (`summary.weekly_queues`) and sets where each band starts in the ranking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from serving.bands import QueueCutoffs, queue_cutoffs
from serving.batch.snapshot import feature_chunks
from serving.batch.summary import Queues, weekly_queues
from serving.scoring import Scorer


@dataclass(frozen=True)
class Week:
    """The week's sellers in the order the job reads them, with what places them in the weekly lists:
    the score, how many standards each misses now, how many of those no run of good orders brings back
    alone, and the good outcomes in a row the others need (summed)."""

    seller_id: np.ndarray
    risk_score: np.ndarray
    missed: np.ndarray
    unrecoverable: np.ndarray
    needed: np.ndarray
    missed_by_standard: dict[str, int]


def rank_week(scorer: Scorer, files: list[Path], as_of: date, chunk_rows: int) -> Week:
    """A first, cheap pass over the snapshot (scores without explanations, standings) to place every
    seller in the week's lists before any row is written. Scores here come from the model's predict,
    which may differ from the explained score in the last bits: the lists are decided on these."""
    parts = []
    by_standard = dict.fromkeys(scorer.policy.metrics, 0)
    for frame in feature_chunks(scorer, files, as_of, chunk_rows):
        X = scorer.model.matrix(frame)
        stand = scorer.standings(X)
        miss = np.column_stack([s.missing for s in stand.values()])
        recovery = np.column_stack([np.where(s.missing, s.recovery, 0) for s in stand.values()])
        for name, s in stand.items():
            by_standard[name] += int(s.missing.sum())
        parts.append((frame["seller_id"].astype(str).to_numpy(dtype=object), scorer.model.probability(X),
                      miss.sum(axis=1), (recovery < 0).sum(axis=1), np.where(recovery > 0, recovery, 0).sum(axis=1)))
    cols = [np.concatenate([p[k] for p in parts]) for k in range(5)]
    return Week(*cols, by_standard)


def week_cutoffs(scorer: Scorer, week: Week, as_of: date, capacity: int) -> QueueCutoffs:
    """Where each band starts in the week's ranking by the scorer's model (`serving.bands`)."""
    return queue_cutoffs(week.risk_score, week.missed > 0, capacity, scorer.policy, as_of, scorer.ref.version,
                         scorer.ref.run_id)


@dataclass(frozen=True)
class RankedWeek:
    """The week ranked: its sellers in reading order, their places in the weekly lists, and the band
    cut-offs the summary keeps so the HTTP service places a seller of this week exactly the same."""

    week: Week
    queues: Queues
    cutoffs: QueueCutoffs


def place_week(scorer: Scorer, files: list[Path], as_of: date, chunk_rows: int) -> RankedWeek:
    """Every seller of the week placed: ranked, queued up to reviewer capacity, bands cut."""
    week = rank_week(scorer, files, as_of, chunk_rows)
    queues = weekly_queues(week.seller_id, week.risk_score, week.missed, week.unrecoverable, week.needed,
                           scorer.policy.review_capacity)
    return RankedWeek(week, queues, week_cutoffs(scorer, week, as_of, queues.capacity))
