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
seller's batch record equals the service's for the same snapshot (`read_record` reads it back)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.platform import layout
from features.platform.atomic import alive, clean_stale, replaced_whole
from features.platform.settings import MODELS_DIR
from serving.bands import QueueCutoffs, assign_bands, queue_cutoffs
from serving.records import SCORE_ARROW
from serving.scoring import DEFAULT_MODEL_URI, Scorer, snapshot_mismatch
from serving.batch.summary import (EARLY_WARNING, PSI_ALERT, PSI_WATCH, RECOVERY, Bins, Queues, band_counts,
                                   capacity_coverage, capacity_k, drift_table, expected_breaches, queue_summary, reference_bins,
                                   risers, weekly_queues)

SCORING_EXPERIMENT = "seller-risk-scoring"
CHUNK_ROWS = 50_000
"""Sellers per chunk: big enough that LightGBM's threads stay busy, small enough that a chunk's
contributions, reasons and Arrow table stay in the tens of megabytes."""
TOP_FEATURES = 10  # features whose drift the summary reports: the model's largest by total gain
REFERENCE_ROWS = 50_000  # sample of the training weeks the drift reference is cut from
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

Progress = Callable[[int, int], None]


class BatchError(ValueError):
    """An input the job will not score (a bad snapshot, an unknown model, no events); the message
    says what is wrong. Raised before anything is written."""


# ------------------------------------------------------------------ where things are (features.platform.layout)


def latest_week(events: Path | None, features_dir: Path | None) -> date:
    """The latest complete week: the last weekly evaluation date at or before the events' cut-off
    (the date `seller-risk features` makes its latest snapshot), else the features' newest date."""
    from features.events.validation import read_cutoff

    if events is not None:
        cutoff = read_cutoff(events)
        if cutoff is not None:
            return cutoff.date()
    if features_dir is not None and layout.manifest_file(features_dir).is_file():
        return date.fromisoformat(_manifest(Path(features_dir))["as_of_dates"][-1])
    raise BatchError("no as-of date given and none to infer: the events have no manifest with a cut-off; pass --as-of")


def _manifest(features_dir: Path) -> dict:
    path = layout.manifest_file(features_dir)
    return json.loads(path.read_text()) if path.is_file() else {}


def _built_from(features_dir: Path, events: Path) -> bool:
    return _manifest(features_dir).get("events") == str(events.resolve())


def locate_snapshot(as_of: date, previous: date, events: Path | None, features_dir: Path | None, out: Path,
                    policy) -> tuple[Path, str]:
    """The features folder holding the week's snapshot, and how it was obtained: read from
    `features_dir` when it holds that week (built from `events`, when given), else built from the
    events for this week and the one before (cached in <out>'s side folder for re-runs)."""
    if features_dir is not None and layout.snapshot_partition(features_dir, as_of).is_dir():
        if events is None or _built_from(features_dir, events):
            return features_dir, f"read from {features_dir}"
    if events is None:
        raise BatchError(f"{features_dir} holds no snapshot for {as_of} and no --events were given to build it from")
    from features.platform.fingerprint import fingerprint
    from features.pipeline.snapshots import build_snapshots
    from features.events.validation import EventValidationError

    if not events.is_dir():
        raise BatchError(f"events folder {events} does not exist")
    cache = layout.features_cache(out)
    manifest = _manifest(cache)
    if (str(as_of) in manifest.get("as_of_dates", []) and _built_from(cache, events)
            and manifest.get("events_fingerprint") == fingerprint(events)):
        return cache, f"built earlier from {events} (cached in {cache})"
    try:
        build_snapshots(events, cache, policy, as_of=[previous, as_of])
    except EventValidationError as err:
        first = err.problems[0] if err.problems else "see `seller-risk validate`"
        raise BatchError(f"cannot build the {as_of} snapshot: {events} fails validation with {len(err.problems)} "
                         f"problem(s), first: {first} (`seller-risk validate --events {events}` lists them all)") from None
    except (ValueError, FileExistsError) as err:
        raise BatchError(f"cannot build the {as_of} snapshot from {events}: {err}") from None
    return cache, f"built from {events} (cached in {cache})"


# ------------------------------------------------------------------ the snapshot contract


def check_snapshot(features_dir: Path, as_of: date, scorer: Scorer) -> list[Path]:
    """The snapshot's Parquet files, after checking it is one the model can score: built with the
    model's feature spec, with exactly the spec's feature columns (none missing, none extra)."""
    folder = layout.snapshot_partition(features_dir, as_of)
    files = layout.snapshot_files(features_dir, as_of)
    if not files:
        raise BatchError(f"{features_dir} holds no snapshot for {as_of} ({folder} has no Parquet files)")
    problem = snapshot_mismatch(features_dir, files, scorer)
    if problem:
        raise BatchError(problem)
    return files


def snapshot_rows(files: list[Path]) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def read_chunks(files: list[Path], columns: list[str], as_of: date, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The snapshot's rows, a chunk at a time, with the as-of date as a column."""
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=chunk_rows, columns=columns):
            frame = batch.to_pandas()
            frame.insert(1, "as_of", as_of)
            yield frame


# ------------------------------------------------------------------ drift reference


@dataclass(frozen=True)
class Reference:
    """What the scored population is compared with: per variable, its bins and the reference counts."""

    source: str
    bins: dict[str, tuple[Bins, np.ndarray]]

    def to_json(self) -> str:
        return json.dumps({"source": self.source, "bins": [{**b.to_dict(), "counts": c.tolist()}
                                                           for b, c in self.bins.values()]})

    @classmethod
    def from_json(cls, text: str) -> Reference:
        d = json.loads(text)
        return cls(d["source"], {b["name"]: (Bins.from_dict(b), np.asarray(b["counts"], dtype="int64"))
                                 for b in d["bins"]})


NOT_WATCHED = frozenset({"week_of_year"})
"""Features whose drift means nothing: the scored week is never the training weeks' mix of weeks of
the year, so the calendar's PSI is an alert every week (8.3 on the demo)."""


def drift_features(scorer: Scorer, n: int = TOP_FEATURES) -> list[str]:
    """The features drift is watched on: the model's `n` largest by total split gain, the calendar aside."""
    gain = scorer.model.booster.feature_importance("gain")
    order = [i for i in np.argsort(-gain, kind="stable") if scorer.model.feature_names[i] not in NOT_WATCHED]
    return [scorer.model.feature_names[i] for i in order[:n]]


_SPAN = re.compile(r"(train|valid) (\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")


def training_weeks(scorer: Scorer) -> tuple[Path, date, date] | None:
    """The snapshots folder and first and last as-of week the model was fitted and calibrated on, from
    its training run's parameters (`features_dir`, `final`); None when the run does not say."""
    from mlflow import MlflowClient

    if not scorer.ref.run_id:
        return None
    try:
        params = MlflowClient().get_run(scorer.ref.run_id).data.params
    except Exception:  # a run deleted or on another server: fall back
        return None
    spans = {m.group(1): (m.group(2), m.group(3)) for m in _SPAN.finditer(params.get("final", ""))}
    if "train" not in spans or "features_dir" not in params:
        return None
    last = spans.get("valid", spans["train"])[1]
    return Path(params["features_dir"]), date.fromisoformat(spans["train"][0]), date.fromisoformat(last)


def _sample(features_dir: Path, first: date, last: date, columns: list[str], rows: int) -> pd.DataFrame:
    import duckdb

    files = [str(f) for f in layout.snapshot_files(features_dir)]
    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    if not files:
        return pd.DataFrame(columns=columns)
    con = duckdb.connect()
    con.execute("SET threads = 1")  # a repeatable sample
    return con.execute(f"SELECT {cols} FROM read_parquet($files, hive_partitioning = true) "
                       "WHERE as_of BETWEEN $first AND $last "
                       f"USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE (7)",
                       {"files": files, "first": first, "last": last}).df()


def build_reference(scorer: Scorer, sample: pd.DataFrame, features: list[str], source: str) -> Reference:
    """Bins and counts of the score and the watched features in a reference sample."""
    scores = scorer.model.probability(scorer.model.matrix(sample))
    bins = {"risk_score": reference_bins("risk_score", scores)}
    categorical = set(scorer.spec.categorical)
    bins.update({f: reference_bins(f, sample[f], f in categorical) for f in features})
    values = {"risk_score": scores, **{f: sample[f] for f in features}}
    return Reference(source, {n: (b, b.counts(values[n])) for n, b in bins.items()})


def drift_reference(scorer: Scorer, features_dir: Path, as_of: date, out: Path) -> Reference | None:
    """The population drift is measured against. First choice: a sample of the weeks the model was
    trained and calibrated on (its run's `final` split, read from the run's `features_dir`), cached
    per model version. Fallback when those snapshots are gone: the snapshots before the scored week
    in the folder being scored. None when neither exists."""
    features = drift_features(scorer)
    cache = layout.reference_file(out, scorer.ref.name, scorer.ref.version)
    if cache.is_file():
        return Reference.from_json(cache.read_text())
    columns = ["seller_id", *scorer.spec.names]
    weeks = training_weeks(scorer)
    if weeks is not None and layout.snapshots_dir(weeks[0]).is_dir():
        folder, first, last = weeks
        sample = _sample(folder, first, last, columns, REFERENCE_ROWS)
        if len(sample):
            ref = build_reference(scorer, sample, features,
                                  f"training weeks {first}..{last} of model v{scorer.ref.version} ({folder})")
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
            tmp.write_text(ref.to_json())
            tmp.replace(cache)
            return ref
    sample = _sample(features_dir, date(1970, 1, 1), as_of - timedelta(days=1), columns, REFERENCE_ROWS)
    if len(sample) == 0:
        return None
    return build_reference(scorer, sample, features,
                           f"snapshots before {as_of} in {features_dir} (the model's training weeks are not available)")


# ------------------------------------------------------------------ last week's scores


def previous_scores(out: Path, previous: date, features_dir: Path, scorer: Scorer,
                    chunk_rows: int) -> tuple[pd.DataFrame | None, str]:
    """Last week's scores to find the risers: the job's own partition for that week when there is one
    (what reviewers saw), else last week's snapshot scored now by the same model; None if neither."""
    part = layout.score_partition(out, previous)
    files = layout.score_files(out, previous)
    if files:
        prev = pa.concat_tables([pq.read_table(f, columns=["seller_id", "risk_score", "risk_band", "model_version"])
                                 for f in files]).to_pandas()
        versions = ", ".join(f"v{v}" for v in sorted(prev.pop("model_version").unique()))
        return prev, f"{previous} scores in {part} (model {versions})"
    files = layout.snapshot_files(features_dir, previous)
    if not files:
        return None, f"no scores or snapshot for {previous}"
    week = rank_week(scorer, files, previous, chunk_rows)
    missing = week.missed > 0
    cutoffs = week_cutoffs(scorer, week, previous, capacity_k(scorer.policy.review_capacity, len(missing)))
    band = assign_bands(week.risk_score, missing, scorer.policy, cutoffs)[0]
    return (pd.DataFrame({"seller_id": week.seller_id, "risk_score": week.risk_score, "risk_band": band}),
            f"{previous} snapshot scored now with model v{scorer.ref.version}")


# ------------------------------------------------------------------ the job


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


def _scored_table(scorer: Scorer, frame: pd.DataFrame, top: int, run_id: str, scored_at: datetime,
                  queues: Queues, at: int) -> tuple:
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
    table = (table.append_column("run_id", pa.repeat(pa.scalar(run_id, pa.string()), n))
             .append_column("model_run_id", pa.repeat(pa.scalar(scorer.ref.run_id, pa.string()), n))
             .append_column("scored_at", pa.repeat(pa.scalar(scored_at, pa.timestamp("ms", tz="UTC")), n))
             .append_column("queue", pa.array(queue, pa.string()))
             .append_column("queue_rank", pa.array(rank, pa.int32(), mask=rank == 0)))
    return scored, table.cast(BATCH_ARROW)


QUEUE_WORDS = {EARLY_WARNING: "In this week's early-warning queue: compliant now, among the riskiest reviewers "
                              "can look at",
               RECOVERY: "On this week's recovery list: missing a standard now"}
"""What a queued seller's band_meaning says first (the band's own meaning follows)."""


def score_chunks(scorer: Scorer, chunks: Iterator[pd.DataFrame], top: int, run_id: str, scored_at: datetime,
                 folder: Path, queues: Queues, week_ids: np.ndarray) -> Iterator[tuple[pd.DataFrame, object, pa.Table]]:
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
        scored, table = _scored_table(scorer, frame, top, run_id, scored_at, queues, at)
        pq.write_table(table.drop_columns([layout.PARTITION_KEY]), folder / f"part-{i:05d}.parquet")
        at += len(ids)
        yield frame, scored, table


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
    for frame in read_chunks(files, ["seller_id", *scorer.spec.names], as_of, chunk_rows):
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


def _listed(tables: list[pa.Table], queue: str, n: int) -> list[dict]:
    """The first n sellers of one weekly list, as batch rows."""
    if not tables:
        return []
    t = pa.concat_tables(tables)
    t = t.filter(pc.equal(t.column("queue"), queue)).sort_by([("queue_rank", "ascending")])
    return t.slice(0, n).to_pylist()


def _clean_stale(partition: Path) -> None:
    """Staging left by runs killed mid-way (their process is gone) removed from the score table's
    staging folder; a partition a killed swap left out is put back."""
    clean_stale(partition, layout.staging_dir(partition.parent))


def close_dead_runs(experiment_id: str) -> list[str]:
    """Scoring runs that MLflow still shows RUNNING although their process on this host is gone
    (killed with SIGKILL, or the machine went down) are marked KILLED; returns their ids."""
    from mlflow import MlflowClient

    client, host, closed = MlflowClient(), socket.gethostname(), []
    for r in client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        pid = r.data.tags.get("pid", "")
        if r.data.tags.get("host") == host and pid.isdigit() and not alive(int(pid)):
            client.set_terminated(r.info.run_id, status="KILLED")
            closed.append(r.info.run_id)
    return closed


def prepare(cfg: BatchConfig) -> tuple[Scorer, date, Path, str, list[Path]]:
    """Everything checked before anything is written: the model, the week, the snapshot."""
    from models.registry import StoreUnreachable
    from models.risk_model import ModelSpecMismatch

    try:
        scorer = Scorer.load(cfg.model_uri, cfg.models_dir)
    except StoreUnreachable:
        raise  # its own message says what to do
    except (LookupError, ModelSpecMismatch, ValueError) as err:
        raise BatchError(f"model {cfg.model_uri}: {err}") from None
    except Exception as err:  # the registry's own "not found" errors (MlflowException)
        raise BatchError(f"model {cfg.model_uri} cannot be loaded from the registry: {str(err).splitlines()[0]}") from None
    as_of = cfg.as_of or latest_week(cfg.events, cfg.features_dir)
    previous = as_of - timedelta(days=scorer.policy.evaluation_every_days)
    folder, source = locate_snapshot(as_of, previous, cfg.events, cfg.features_dir, Path(cfg.out), scorer.policy)
    files = check_snapshot(folder, as_of, scorer)
    if snapshot_rows(files) == 0:
        raise BatchError(f"the {as_of} snapshot in {folder} holds no active sellers")
    return scorer, as_of, folder, source, files


@contextmanager
def stop_signals() -> Iterator[Callable[[], None]]:
    """SIGINT and SIGTERM stop the run, even when Python swallows the KeyboardInterrupt (a signal that
    lands while a finalizer runs is only printed as "Exception ignored"): the handler raises it and
    remembers it, and the `check` this yields raises it again between chunks, so an interrupted run
    always ends as interrupted and leaves the previous partition. Outside the main thread: no handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    def check() -> None:
        if received:
            raise KeyboardInterrupt(f"stopped by signal {received[0]}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield check
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_batch(cfg: BatchConfig, progress: Progress | None = None) -> BatchResult:
    """Score and explain every active seller of the week, write the partition whole, summarise, log."""
    import mlflow

    from models.registry import ensure_experiment, use_store

    t0 = time.perf_counter()
    out = Path(cfg.out)
    layout.move_legacy_side_data(out)  # an earlier version's caches inside the table, moved beside it
    scorer, as_of, folder, source, files = prepare(cfg)
    previous = as_of - timedelta(days=scorer.policy.evaluation_every_days)
    reference = drift_reference(scorer, folder, as_of, out)
    prev, prev_source = previous_scores(out, previous, folder, scorer, cfg.chunk_rows)
    timings = {"prepare_s": time.perf_counter() - t0}
    t_rank = time.perf_counter()
    week = rank_week(scorer, files, as_of, cfg.chunk_rows)
    queues = weekly_queues(week.seller_id, week.risk_score, week.missed, week.unrecoverable, week.needed,
                           scorer.policy.review_capacity)
    # bands are places in this week's ranking: the records say where each seller stands, the summary
    # keeps the cut-offs so the HTTP service places a seller of this week exactly the same
    cutoffs = week_cutoffs(scorer, week, as_of, queues.capacity)
    scorer = scorer.ranked(lambda day: cutoffs)
    timings["rank_s"] = time.perf_counter() - t_rank

    partition = layout.score_partition(out, as_of)
    _clean_stale(partition)
    use_store(cfg.models_dir)
    run = None
    if cfg.log_mlflow:
        experiment = ensure_experiment(SCORING_EXPERIMENT, cfg.models_dir)
        close_dead_runs(experiment)
        run = mlflow.start_run(experiment_id=experiment, run_name=f"score {as_of}",
                               tags={"host": socket.gethostname(), "pid": str(os.getpid())})
    run_id = run.info.run_id if run else "local"
    scored_at = datetime.now(UTC).replace(microsecond=0)
    total = snapshot_rows(files)
    watched = [n for n in (reference.bins if reference else {}) if n != "risk_score"]
    try:
        with stop_signals() as check, replaced_whole(partition, layout.SUMMARY, staging=layout.staging_dir(out)) as tmp:
            t1 = time.perf_counter()
            ids, scores, bands, listed = [], [], [], []
            counts: dict[str, np.ndarray] = {}
            done = files_written = 0
            chunks = read_chunks(files, ["seller_id", *scorer.spec.names], as_of, cfg.chunk_rows)
            for frame, scored, table in score_chunks(scorer, chunks, cfg.top, run_id, scored_at, tmp, queues,
                                                     week.seller_id):
                check()
                files_written += 1
                ids.append(scored.seller_id)
                scores.append(scored.risk_score)
                bands.append(scored.risk_band)
                listed.append(table.filter(pc.less_equal(table.column("queue_rank"), LISTED)))  # null: dropped
                for name in watched:
                    c = reference.bins[name][0].counts(frame[name])
                    counts[name] = counts.get(name, 0) + c
                done += len(scored)
                if progress:
                    progress(done, total)
            timings["score_write_s"] = time.perf_counter() - t1
            current = pd.DataFrame({"seller_id": np.concatenate(ids), "risk_score": np.concatenate(scores),
                                    "risk_band": np.concatenate(bands)})
            if reference is not None:
                counts["risk_score"] = reference.bins["risk_score"][0].counts(current["risk_score"].to_numpy())
            summary = summarise(scorer, current, as_of, prev, prev_source, reference, counts)
            summary.update(queue_summary(current["risk_score"].to_numpy(), queues, week.missed_by_standard))
            summary["band_cutoffs"] = cutoffs.to_json()
            summary.update({"run_id": run_id, "scored_at": scored_at.isoformat(), "snapshot": source,
                            "partition": str(partition), "files": files_written,
                            "seconds": round(time.perf_counter() - t0, 2)})
            (tmp / layout.SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
            if run:
                _log_run(summary, cfg)
            check()  # the last moment to stop before the new partition replaces the old
        if run:
            mlflow.end_run()
    except BaseException:
        if run:
            mlflow.end_run(status="KILLED")
        raise
    timings["total_s"] = time.perf_counter() - t0
    return BatchResult(partition, summary, _listed(listed, EARLY_WARNING, LISTED), _listed(listed, RECOVERY, LISTED),
                       timings)


def summarise(scorer: Scorer, current: pd.DataFrame, as_of: date, previous: pd.DataFrame | None, previous_source: str,
              reference: Reference | None, counts: dict[str, np.ndarray]) -> dict:
    """The run summary (JSON-ready) from the week's scores, last week's and the drift counts."""
    policy = scorer.policy
    p = current["risk_score"].to_numpy()
    eb = expected_breaches(p, 0.90)
    cov = capacity_coverage(p, policy.review_capacity)
    rise = risers(current, previous) if previous is not None else pd.DataFrame()
    drift = drift_table(reference.bins, counts) if reference is not None else pd.DataFrame()
    return {
        "as_of": str(as_of),
        "model": {"name": scorer.ref.name, "version": scorer.ref.version, "run_id": scorer.ref.run_id},
        "policy_version": policy.version,
        "feature_spec_hash": scorer.spec.hash,
        "sellers_scored": int(len(p)),
        "bands": band_counts(p, current["risk_band"].to_numpy(), policy).to_dict("records"),
        "expected_breaches": {"horizon_days": policy.horizon_days, "expected": eb.expected, "std": eb.std,
                              "interval_level": eb.level, "low": eb.low, "high": eb.high},
        "review_capacity": {"sellers": cov.capacity, "expected_breaches_in_queue": cov.expected_in_queue,
                            "share_of_expected_breaches": cov.share_of_expected,
                            "lowest_score_in_queue": cov.lowest_score_in_queue,
                            "rule": policy.review_capacity.model_dump(exclude_none=True)},
        "risers": {"compared_with": previous_source, "sellers": rise.to_dict("records")},
        "drift": {"reference": reference.source if reference else "none: no training or earlier snapshots found",
                  "watch": PSI_WATCH, "alert": PSI_ALERT, "variables": drift.to_dict("records")},
    }


def _log_run(summary: dict, cfg: BatchConfig) -> None:
    import mlflow

    m = summary["model"]
    mlflow.set_tags({"as_of": summary["as_of"], "model_version": m["version"], "policy_version": summary["policy_version"],
                     "feature_spec_hash": summary["feature_spec_hash"]})
    mlflow.log_params({"as_of": summary["as_of"], "model_uri": cfg.model_uri, "model_name": m["name"],
                       "model_version": m["version"], "model_run_id": m["run_id"], "snapshot": summary["snapshot"][:490],
                       "partition": summary["partition"][:490], "chunk_rows": cfg.chunk_rows, "reasons": cfg.top,
                       "drift_reference": summary["drift"]["reference"][:490]})
    eb, cap = summary["expected_breaches"], summary["review_capacity"]
    metrics = {"sellers_scored": summary["sellers_scored"], "expected_breaches": eb["expected"],
               "expected_breaches_std": eb["std"], "expected_breaches_low": eb["low"], "expected_breaches_high": eb["high"],
               "capacity_sellers": cap["sellers"], "capacity_expected_breaches": cap["expected_breaches_in_queue"],
               "capacity_share_of_expected_breaches": cap["share_of_expected_breaches"],
               "early_warning_sellers": summary["early_warning"]["sellers"],
               "early_warning_expected_breaches": summary["early_warning"]["expected_breaches"],
               "recovery_sellers": summary["recovery"]["sellers"]}
    metrics.update({f"band.{b['band']}": b["sellers"] for b in summary["bands"]})
    metrics.update({f"psi.{d['variable']}": d["psi"] for d in summary["drift"]["variables"]})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
    mlflow.log_dict(summary, "summary.json")


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
