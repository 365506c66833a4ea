"""The weekly score table: a batch row's columns, the week's rows written a chunk at a time into the
staging folder, and the written rows read back (`read_scores`, `read_record`). Where its files sit is
features.platform.layout's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.platform import layout
from features.platform.atomic import clean_stale
from serving.batch.ranking import RankedWeek
from serving.batch.snapshot import BatchError
from serving.batch.summary import EARLY_WARNING, RECOVERY, Queues
from serving.records import SCORE_ARROW
from serving.scoring import Scorer

LISTED = 10  # sellers of each weekly list handed back for printing

BATCH_ARROW = (SCORE_ARROW.append(pa.field("run_id", pa.string()))
               .append(pa.field("model_run_id", pa.string()))
               .append(pa.field("scored_at", pa.timestamp("ms", tz="UTC")))
               .append(pa.field("queue", pa.string()))
               .append(pa.field("queue_rank", pa.int32())))
"""A batch row as read back (`read_scores`): the score record, the scoring run (MLflow run id in
SCORING_EXPERIMENT), the training run of the model, when it was scored, and the seller's place in this
week's lists: `queue` "early_warning" (compliant now, among the riskiest reviewers can look at),
"recovery" (missing a standard now) or null, and `queue_rank` 1.. within it (null when in neither)."""
BATCH_FILE_ARROW = layout.without_partition_column(BATCH_ARROW)
"""A batch row as its Parquet file holds it: without as_of, which the partition path carries."""

QUEUE_WORDS = {EARLY_WARNING: "In this week's early-warning queue: compliant now, among the riskiest reviewers "
                              "can look at",
               RECOVERY: "On this week's recovery list: missing a standard now"}
"""What a queued seller's band_meaning says first (the band's own meaning follows)."""


# ------------------------------------------------------------------ writing


@dataclass(frozen=True)
class Stamp:
    """What every row of one run carries: the scoring run's id and when it scored."""

    run_id: str
    scored_at: datetime


def _scored_table(scorer: Scorer, frame: pd.DataFrame, top: int, stamp: Stamp, queues: Queues, at: int) -> tuple:
    """A chunk's score records as batch rows (the score record plus the run's columns and the seller's
    place in this week's lists; rows `at`.. of `queues`)."""
    scored = scorer.score_frame(frame, top=top)
    n = len(scored)
    queue, rank = queues.queue[at:at + n], queues.rank[at:at + n]
    table = scorer.table(scored)
    meaning = scored.band_meaning.copy()
    sizes = {EARLY_WARNING: queues.early_warning, RECOVERY: queues.recovery}
    for i in np.flatnonzero(queue != None):  # noqa: E711 (column-wise None test)
        meaning[i] = (f"{QUEUE_WORDS[queue[i]]} (#{rank[i]:,} of {sizes[queue[i]]:,}): {meaning[i]}")
    table = table.set_column(table.schema.get_field_index("band_meaning"), "band_meaning",
                             pa.array(meaning, pa.string()))
    table = (table.append_column("run_id", pa.repeat(pa.scalar(stamp.run_id, pa.string()), n))
             .append_column("model_run_id", pa.repeat(pa.scalar(scorer.ref.run_id, pa.string()), n))
             .append_column("scored_at", pa.repeat(pa.scalar(stamp.scored_at, pa.timestamp("ms", tz="UTC")), n))
             .append_column("queue", pa.array(queue, pa.string()))
             .append_column("queue_rank", pa.array(rank, pa.int32(), mask=rank == 0)))
    return scored, table.cast(BATCH_ARROW)


def score_chunks(scorer: Scorer, chunks: Iterator[pd.DataFrame], top: int, stamp: Stamp, folder: Path,
                 queues: Queues, week_ids: np.ndarray) -> Iterator[tuple[pd.DataFrame, object, pa.Table]]:
    """Score, explain and write each chunk as folder/part-NNNNN.parquet (without as_of: the partition
    path carries it); yields (frame, scored, table), the table with as_of. One chunk at a time, LightGBM
    on every core: scoring two chunks side by side with a thread each (so one chunk's reasons are worded
    while another's TreeSHAP runs) measured slower on 2 cores. The chunks come in the order `rank_week`
    read them (`week_ids`), so each seller's place in the week's lists is found by position."""
    at = 0
    for i, frame in enumerate(chunks):
        ids = frame["seller_id"].astype(str).to_numpy(dtype=object)
        if not np.array_equal(ids, week_ids[at:at + len(ids)]):
            raise BatchError("the snapshot changed while it was being scored; run the job again")
        scored, table = _scored_table(scorer, frame, top, stamp, queues, at)
        pq.write_table(table.drop_columns([layout.PARTITION_KEY]), folder / f"part-{i:05d}.parquet")
        at += len(ids)
        yield frame, scored, table


@dataclass(frozen=True)
class Written:
    """What the job keeps of the rows it wrote: every seller's score and band (for the summary), the
    head of each weekly list (for printing), and how many files."""

    scores: pd.DataFrame  # seller_id, risk_score, risk_band
    listed: list[pa.Table]
    files: int

    def first(self, queue: str, n: int = LISTED) -> list[dict]:
        """The first n sellers of one weekly list, as batch rows."""
        if not self.listed:
            return []
        t = pa.concat_tables(self.listed)
        t = t.filter(pc.equal(t.column("queue"), queue)).sort_by([("queue_rank", "ascending")])
        return t.slice(0, n).to_pylist()


def write_week(scorer: Scorer, chunks: Iterator[pd.DataFrame], ranked: RankedWeek, top: int, stamp: Stamp,
               folder: Path, after_chunk: Callable[[pd.DataFrame, int], None]) -> Written:
    """The week's rows scored, explained and written into `folder` a chunk at a time; after each chunk
    `after_chunk(frame, sellers written so far)` runs (to stop, count drift, report progress)."""
    ids, scores, bands, listed = [], [], [], []
    done = 0
    for frame, scored, table in score_chunks(scorer, chunks, top, stamp, folder, ranked.queues,
                                             ranked.week.seller_id):
        done += len(scored)
        after_chunk(frame, done)
        ids.append(scored.seller_id)
        scores.append(scored.risk_score)
        bands.append(scored.risk_band)
        listed.append(table.filter(pc.less_equal(table.column("queue_rank"), LISTED)))  # null: dropped
    current = pd.DataFrame({"seller_id": np.concatenate(ids), "risk_score": np.concatenate(scores),
                            "risk_band": np.concatenate(bands)})
    return Written(current, listed, len(listed))


def write_summary(folder: Path, summary: dict) -> None:
    """The run summary beside the week's rows."""
    (folder / layout.SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")


def clear_stale_staging(partition: Path) -> None:
    """Staging left by runs killed mid-way (their process is gone) removed from the score table's
    staging folder; a partition a killed swap left out is put back."""
    clean_stale(partition, layout.staging_dir(partition.parent))


# ------------------------------------------------------------------ reading back


def read_record(out: Path | str, as_of: date, seller_id: str) -> dict | None:
    """One seller's score record from a written partition, shaped like `Scorer.records` output (the
    HTTP response), so the two can be compared field by field; None when the seller is not there."""
    import pyarrow.dataset as ds

    files = layout.score_files(out, as_of)
    if not files:
        return None
    columns = [n for n in SCORE_ARROW.names if n != layout.PARTITION_KEY]
    table = ds.dataset(files, format="parquet").to_table(columns=columns, filter=ds.field("seller_id") == seller_id)
    if table.num_rows == 0:
        return None
    row = layout.with_partition_column(table.slice(0, 1), as_of, SCORE_ARROW.get_field_index(layout.PARTITION_KEY))
    return row.select(SCORE_ARROW.names).to_pylist()[0]


def read_scores(out: Path | str, as_of: date, columns: list[str] | None = None) -> pa.Table:
    """A written week's score rows (all columns of BATCH_ARROW by default), as_of included."""
    import pyarrow.dataset as ds

    columns = list(BATCH_ARROW.names) if columns is None else list(columns)
    files = layout.score_files(out, as_of)
    stored = [c for c in columns if c != layout.PARTITION_KEY]
    table = (ds.dataset(files, format="parquet").to_table(columns=stored) if files
             else BATCH_FILE_ARROW.empty_table().select(stored))
    if layout.PARTITION_KEY in columns:
        table = layout.with_partition_column(table, as_of, columns.index(layout.PARTITION_KEY))
    return table.select(columns)
