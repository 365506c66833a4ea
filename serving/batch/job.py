"""The weekly batch scoring job: every active seller of one as-of week scored and explained by the
pinned champion, written as one Parquet partition of score records, with a run summary for the
people who staff and work the review queue.

    <out>/as_of=YYYY-MM-DD/part-00000.parquet ...   score records (serving.records.SCORE_ARROW) but for
                                                    as_of, which the partition path carries, plus run_id,
                                                    model_run_id and scored_at on every row
    <out>/as_of=YYYY-MM-DD/_summary.json            the run summary (also logged to MLflow)
    <out>.work/features/                            snapshots built from the events, when the job built them
    <out>.work/reference/                           drift references, one per model version
    <out>.work/staging/                             a partition being written

(features.platform.layout declares it.) <out> holds nothing but partitions, so pandas, pyarrow, DuckDB and
Spark read it as one table. Safe to re-run and to interrupt: a week's partition is filled in the
staging folder and swapped in whole at the end (features.platform.atomic), so readers see last run's
partition or this run's, never a mixture or neither; a crash or Ctrl-C leaves the previous one as it
was. Sellers are read, scored and written in chunks, so memory stays bounded by the chunk size (plus
a score and an id per seller for the summary).

Scores and reasons come from `serving.scoring.Scorer`, the same code the HTTP service calls, so a
seller's batch record equals the service's for the same snapshot (`read_record` reads it back).

The week's steps, each in the module that owns it: the snapshot (`snapshot`), the drift reference
(`drift`), last week's scores (`last_week`), the earlier weeks whose labels have matured (`matured`,
measured by `monitoring`), the week ranked into its lists (`ranking`), the rows written (`table`), the run
summary (`report`), the MLflow run (`tracking`), stopping (`signals`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

from features.platform import layout
from features.platform.atomic import replaced_whole
from features.platform.settings import MODELS_DIR
from serving.batch.drift import DriftCounts, drift_reference
from serving.batch.last_week import previous_scores
from serving.batch.matured import matured_outcomes
from serving.batch.monitoring import monitor
from serving.batch.ranking import place_week
from serving.batch.report import run_facts, week_summary
from serving.batch.signals import stop_signals
from serving.batch.snapshot import BatchError, check_snapshot, feature_chunks, latest_week, locate_snapshot, snapshot_rows
from serving.batch.summary import EARLY_WARNING, RECOVERY
from serving.batch.table import Stamp, clear_stale_staging, write_summary, write_week
from serving.batch.tracking import log_summary, model_registered_at, scoring_run
from serving.scoring import DEFAULT_MODEL_URI, Scorer

CHUNK_ROWS = 50_000
"""Sellers per chunk: big enough that LightGBM's threads stay busy, small enough that a chunk's
contributions, reasons and Arrow table stay in the tens of megabytes."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BatchConfig:
    out: Path
    events: Path | None = None
    features_dir: Path | None = None  # read the snapshot from here when it holds the week
    as_of: date | None = None  # default: the latest complete week
    model_uri: str = DEFAULT_MODEL_URI
    models_dir: Path = MODELS_DIR
    top: int = 5  # reasons per seller
    chunk_rows: int = CHUNK_ROWS
    log_mlflow: bool = True


@dataclass
class BatchResult:
    partition: Path
    summary: dict
    early_warning: list[dict]  # the first LISTED of the early-warning queue, as batch rows
    recovery: list[dict]  # the first LISTED of the recovery list, as batch rows
    timings: dict[str, float] = field(default_factory=dict)


def load_scorer(cfg: BatchConfig) -> Scorer:
    """The pinned model, or a BatchError that says why it cannot be scored with."""
    from models.registry import StoreUnreachable
    from models.risk_model import ModelSpecMismatch

    try:
        return Scorer.load(cfg.model_uri, cfg.models_dir)
    except StoreUnreachable:
        raise  # its own message says what to do
    except (LookupError, ModelSpecMismatch, ValueError) as err:
        raise BatchError(f"model {cfg.model_uri}: {err}") from None
    except Exception as err:  # the registry's own "not found" errors (MlflowException)
        raise BatchError(f"model {cfg.model_uri} cannot be loaded from the registry: {str(err).splitlines()[0]}") from None


def prepare(cfg: BatchConfig) -> tuple[Scorer, date, Path, str, list[Path]]:
    """Everything checked before anything is written: the model, the week, the snapshot."""
    scorer = load_scorer(cfg)
    as_of = cfg.as_of or latest_week(cfg.events, cfg.features_dir)
    folder, source = locate_snapshot(as_of, last_week_of(scorer, as_of), cfg.events, cfg.features_dir, Path(cfg.out),
                                     scorer.policy)
    files = check_snapshot(folder, as_of, scorer)
    if snapshot_rows(files) == 0:
        raise BatchError(f"the {as_of} snapshot in {folder} holds no active sellers")
    return scorer, as_of, folder, source, files


def last_week_of(scorer: Scorer, as_of: date) -> date:
    """The policy's previous evaluation date: the week the risers are measured from."""
    return as_of - timedelta(days=scorer.policy.evaluation_every_days)


def run_batch(cfg: BatchConfig, progress: Progress | None = None) -> BatchResult:
    """Score and explain every active seller of the week, write the partition whole, summarise, log."""
    t0, timings = time.perf_counter(), {}
    out = Path(cfg.out)
    layout.move_legacy_side_data(out)  # an earlier version's caches inside the table, moved beside it
    scorer, as_of, folder, source, files = prepare(cfg)
    reference = drift_reference(scorer, folder, as_of, out)
    previous = previous_scores(out, last_week_of(scorer, as_of), folder, scorer, cfg.chunk_rows)
    timings["prepare_s"] = time.perf_counter() - t0
    with _timed(timings, "monitor_s"):
        monitored = monitored_weeks(scorer, out, folder, as_of)
    with _timed(timings, "rank_s"):
        ranked = place_week(scorer, files, as_of, cfg.chunk_rows)
        # bands are places in this week's ranking: the records say where each seller stands, the summary
        # keeps the cut-offs so the HTTP service places a seller of this week exactly the same
        scorer = scorer.ranked(lambda day: ranked.cutoffs)
    partition = layout.score_partition(out, as_of)
    clear_stale_staging(partition)
    with scoring_run(cfg.models_dir, as_of, cfg.log_mlflow) as run_id:
        stamp = Stamp(run_id, datetime.now(UTC).replace(microsecond=0))
        with stop_signals() as check, replaced_whole(partition, layout.SUMMARY, staging=layout.staging_dir(out)) as tmp:
            with _timed(timings, "score_write_s"):
                drift = DriftCounts(reference)
                written = write_week(scorer, feature_chunks(scorer, files, as_of, cfg.chunk_rows), ranked, cfg.top, stamp,
                                     tmp, _after_chunk(check, drift, progress, snapshot_rows(files)))
            summary = week_summary(scorer, as_of, written, ranked, previous, drift, monitored, str(folder))
            summary["model"]["registered_at"] = model_registered_at(scorer.ref)
            summary.update(run_facts(stamp, source, partition, written.files, time.perf_counter() - t0))
            write_summary(tmp, summary)
            if cfg.log_mlflow:
                log_summary(summary, cfg.model_uri, cfg.chunk_rows, cfg.top)
            check()  # the last moment to stop before the new partition replaces the old
    timings["total_s"] = time.perf_counter() - t0
    return BatchResult(partition, summary, written.first(EARLY_WARNING), written.first(RECOVERY), timings)


def monitored_weeks(scorer: Scorer, out: Path, features_dir: Path, as_of: date) -> list[dict]:
    """The earlier scored weeks whose labels have matured by `as_of`, measured against them (oldest first)."""
    policy = scorer.policy
    weeks = matured_outcomes(out, features_dir, as_of, policy)
    return monitor(weeks, list(policy.metrics), policy.horizon_days, policy.monitoring.interval_level)


def _after_chunk(check: Callable[[], None], drift: DriftCounts, progress: Progress | None,
                 total: int) -> Callable[[pd.DataFrame, int], None]:
    """What runs after each chunk is written: stop if asked to, count its drift, report progress."""
    def after(frame: pd.DataFrame, done: int) -> None:
        check()
        drift.add(frame)
        if progress:
            progress(done, total)
    return after


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """The block's wall time recorded in `timings[name]` (seconds)."""
    t = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - t
