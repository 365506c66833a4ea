"""Where the tables this project writes live on disk, declared once: every reader and writer asks
here instead of spelling a path itself.

Two tables are meant to be read by any tool (pandas, pyarrow.dataset, DuckDB, Spark) as one
hive-partitioned table, so each holds nothing but its partitions:

    <features>/snapshots/as_of=YYYY-MM-DD/part-*.parquet   the feature snapshots, one partition per week
    <scores>/as_of=YYYY-MM-DD/part-*.parquet                the weekly score table (the batch job)
    <scores>/as_of=YYYY-MM-DD/_summary.json                 that week's run summary ("_": readers skip it)

The partition path carries `as_of`; the Parquet files never hold an `as_of` column of their own,
so readers find one `as_of` column of one type (a date in DuckDB and Spark, a string or category in
pyarrow and pandas unless told `partitioning()`).

Beside the snapshots, in the features folder (outside the `snapshots/` table):

    <features>/latest.parquet      the newest week, with its `as_of` column (what the service loads)
    <features>/feature_spec.json   the spec (and its hash) the snapshots were built with
    <features>/_snapshots.json     what was built from what: policy, cut-off, dates, counts

Side data and staging never sit inside a table folder. Each folder this project writes (a score
table, a features folder) has a side folder beside it, `<folder>.work/`:

    <scores>.work/features/        snapshots the batch job built from events (a features folder)
    <scores>.work/reference/       drift references, one JSON per model version
    <folder>.work/staging/         new versions being filled; a finished one is swapped in whole
                                   (features.platform.atomic), a killed run's is removed by the next run

Staging belongs to the one writer of its folder (the batch job for a score table, the snapshot
build for a features folder): nothing else writes there, so a leftover whose process is gone can
be deleted safely. A sibling, not a temporary folder elsewhere, because the swap is a rename and
renames only work within one file system.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

PARTITION_KEY = "as_of"
"""The partition column of both tables: the as-of week, in the folder name `as_of=YYYY-MM-DD`."""
PART_GLOB = "part-*.parquet"
"""The data files of a partition (DuckDB, pyarrow and Spark writers all name theirs part-...)."""

SNAPSHOTS = "snapshots"
LATEST = "latest.parquet"
SPEC_FILE = "feature_spec.json"
MANIFEST = "_snapshots.json"
SUMMARY = "_summary.json"

WORK_SUFFIX = ".work"
STAGING = "staging"
FEATURES_CACHE = "features"
REFERENCE = "reference"
LEGACY_SIDE = {"_features": FEATURES_CACHE, "_reference": REFERENCE}
"""Side folders that earlier versions kept inside the score table, and where they live now."""


# ------------------------------------------------------------------ partitions (both tables)


def partition_name(as_of: date) -> str:
    return f"{PARTITION_KEY}={as_of:%Y-%m-%d}"


def partition_date(name: str) -> date | None:
    """The week of a partition folder's name; None for anything else (hidden or staging folders)."""
    prefix = f"{PARTITION_KEY}="
    if not name.startswith(prefix):
        return None
    try:
        return date.fromisoformat(name.removeprefix(prefix))
    except ValueError:
        return None


def partition_files(partition: Path) -> list[Path]:
    """A partition's data files, in name order."""
    return sorted(Path(partition).glob(PART_GLOB))


def table_partitions(table: Path | str) -> dict[date, Path]:
    """A table folder's partitions holding data, by week, oldest first."""
    found = {}
    folder = Path(table)
    if folder.is_dir():
        for p in folder.iterdir():
            d = partition_date(p.name)
            if d is not None and p.is_dir() and partition_files(p):
                found[d] = p
    return dict(sorted(found.items()))


def table_files(table: Path | str, as_of: date | None = None) -> list[Path]:
    """The data files of a table folder (one week, or all), oldest week first."""
    if as_of is not None:
        return partition_files(Path(table) / partition_name(as_of))
    return [f for p in table_partitions(table).values() for f in partition_files(p)]


def partitioning():
    """pyarrow's view of the partition folders, with `as_of` as a date (pyarrow would infer a string)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    return ds.partitioning(pa.schema([(PARTITION_KEY, pa.date32())]), flavor="hive")


def with_partition_column(table, as_of: date, position: int = 1):
    """A pyarrow table read from one partition, with `as_of` put back at `position` (its place in
    the score record); a table that already holds it (written by an earlier version) is left as is."""
    import pyarrow as pa

    if PARTITION_KEY in table.column_names:
        return table
    column = pa.repeat(pa.scalar(as_of, pa.date32()), table.num_rows)
    return table.add_column(min(position, table.num_columns), pa.field(PARTITION_KEY, pa.date32()), column)


def without_partition_column(schema):
    """A row schema as a partition's files hold it: without `as_of`."""
    import pyarrow as pa

    return pa.schema([f for f in schema if f.name != PARTITION_KEY], metadata=schema.metadata)


# ------------------------------------------------------------------ the features folder


def snapshots_dir(features: Path | str) -> Path:
    """The snapshots table: every week's partition, nothing else."""
    return Path(features) / SNAPSHOTS


def snapshot_partition(features: Path | str, as_of: date) -> Path:
    return snapshots_dir(features) / partition_name(as_of)


def snapshot_files(features: Path | str, as_of: date | None = None) -> list[Path]:
    return table_files(snapshots_dir(features), as_of)


def latest_snapshot(features: Path | str) -> Path:
    return Path(features) / LATEST


def spec_file(features: Path | str) -> Path:
    return Path(features) / SPEC_FILE


def manifest_file(features: Path | str) -> Path:
    return Path(features) / MANIFEST


# ------------------------------------------------------------------ the score table


def score_partition(scores: Path | str, as_of: date) -> Path:
    """The folder of one week's score records."""
    return Path(scores) / partition_name(as_of)


def score_files(scores: Path | str, as_of: date | None = None) -> list[Path]:
    return table_files(scores, as_of)


def summary_file(scores: Path | str, as_of: date) -> Path:
    return score_partition(scores, as_of) / SUMMARY


def scored_weeks(scores: Path | str) -> list[date]:
    """The weeks a score table holds, oldest first."""
    return list(table_partitions(scores))


# ------------------------------------------------------------------ side data and staging


def work_dir(folder: Path | str) -> Path:
    """The side folder of a folder this project writes: `<folder>.work`, its sibling."""
    folder = Path(os.path.abspath(folder)) if Path(folder).name in ("", ".", "..") else Path(folder)
    return folder.with_name(folder.name + WORK_SUFFIX)


def staging_dir(folder: Path | str) -> Path:
    """Where new versions of `folder`, or of its partitions, are filled before being swapped in."""
    return work_dir(folder) / STAGING


def features_cache(scores: Path | str) -> Path:
    """The features folder the batch job builds from events when it is given no snapshot."""
    return work_dir(scores) / FEATURES_CACHE


def reference_file(scores: Path | str, model_name: str, version: str) -> Path:
    """The cached drift reference of one model version."""
    return work_dir(scores) / REFERENCE / f"{model_name}-v{version}.json"


def move_legacy_side_data(scores: Path | str) -> None:
    """Side folders an earlier version kept inside the score table moved out to its side folder
    (dropped where the side folder already has its own), so the table holds only partitions."""
    import shutil

    for old, new in LEGACY_SIDE.items():
        src = Path(scores) / old
        if not src.is_dir():
            continue
        dest = work_dir(scores) / new
        if dest.exists():
            shutil.rmtree(src, ignore_errors=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            src.rename(dest)
