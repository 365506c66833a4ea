"""The week's snapshot the job scores: which week, where its features come from (a features folder
that holds it, else built from the events and cached beside the score table), the check that the
model can score it, and its rows read a chunk at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.platform import layout
from serving.scoring import Scorer, snapshot_mismatch


class BatchError(ValueError):
    """An input the job will not score (a bad snapshot, an unknown model, no events); the message
    says what is wrong. Raised before anything is written."""


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
    events for this week, the one before and the earlier scored weeks whose labels have matured (for
    monitoring), cached in <out>'s side folder for re-runs."""
    from serving.batch.matured import due_weeks

    if features_dir is not None and layout.snapshot_partition(features_dir, as_of).is_dir():
        if events is None or _built_from(features_dir, events):
            return features_dir, f"read from {features_dir}"
    if events is None:
        raise BatchError(f"{features_dir} holds no snapshot for {as_of} and no --events were given to build it from")
    if not events.is_dir():
        raise BatchError(f"events folder {events} does not exist")
    cache = layout.features_cache(out)
    weeks = sorted({*due_weeks(out, as_of, policy), previous, as_of})
    if _cached(cache, weeks, events):
        return cache, f"built earlier from {events} (cached in {cache})"
    _build(events, cache, policy, weeks)
    return cache, f"built from {events} (cached in {cache})"


def _cached(cache: Path, weeks: list[date], events: Path) -> bool:
    """Whether the side folder already holds the weeks, built from these very events."""
    from features.platform.fingerprint import fingerprint

    manifest = _manifest(cache)
    return (all(str(w) in manifest.get("as_of_dates", []) for w in weeks) and _built_from(cache, events)
            and manifest.get("events_fingerprint") == fingerprint(events))


def _build(events: Path, cache: Path, policy, weeks: list[date]) -> None:
    """The weeks' snapshots built from the events into the side folder; a failure says why, as a BatchError."""
    from features.events.validation import EventValidationError
    from features.pipeline.snapshots import build_snapshots

    as_of = weeks[-1]
    try:
        build_snapshots(events, cache, policy, as_of=weeks)
    except EventValidationError as err:
        first = err.problems[0] if err.problems else "see `seller-risk validate`"
        raise BatchError(f"cannot build the {as_of} snapshot: {events} fails validation with {len(err.problems)} "
                         f"problem(s), first: {first} (`seller-risk validate --events {events}` lists them all)") from None
    except (ValueError, FileExistsError) as err:
        raise BatchError(f"cannot build the {as_of} snapshot from {events}: {err}") from None


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
    """Sellers in the snapshot, from the Parquet footers."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def read_chunks(files: list[Path], columns: list[str], as_of: date, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The snapshot's rows, a chunk at a time, with the as-of date as a column."""
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=chunk_rows, columns=columns):
            frame = batch.to_pandas()
            frame.insert(1, "as_of", as_of)
            yield frame


def feature_chunks(scorer: Scorer, files: list[Path], as_of: date, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The snapshot's sellers with the model's features, a chunk at a time, in file order."""
    return read_chunks(files, ["seller_id", *scorer.spec.names], as_of, chunk_rows)
