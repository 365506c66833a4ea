"""Feature snapshots: every active seller's behaviour vector, policy status and label at every
weekly as-of date, computed in one pass (daily flows, then rolling windows), written as Parquet
partitioned by as-of date, plus the latest snapshot that serving reads.

The output folder's layout (the snapshots table, latest.parquet, feature_spec.json, _snapshots.json)
is declared in features.platform.layout; the snapshot files hold no `as_of` column, their partition path does.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from features.platform import layout
from features.platform.atomic import replaced_whole
from features.platform.fingerprint import fingerprint
from features.pipeline.sql import DUCKDB, point_flows_sql, probe_lags, snapshot_columns, snapshot_sql
from features.policy.definition import Policy
from features.pipeline.probes import probe_calendar, probe_days
from features.events.schema import TABLES
from features.platform.settings import Settings
from features.pipeline.spec import FeatureSpec, feature_spec
from features.pipeline.world import DAILY, SELLERS as WORLD_SELLERS, carrier_calendar, staged_sql, world_sellers_sql
from features.events.validation import open_events, read_cutoff

EPOCH = date(1970, 1, 1)
MANIFEST = layout.MANIFEST
Engine = Literal["duckdb", "spark"]
Progress = Callable[[int, int], None]


def day_number(d: date) -> int:
    return (d - EPOCH).days


def from_day_number(n: int) -> date:
    return EPOCH + timedelta(days=int(n))


def evaluation_grid(cutoff: datetime, first_day: int, every_days: int) -> list[int]:
    """Weekly evaluation days, anchored on the extract's cut-off and going back to the first events."""
    last = day_number(cutoff.date())  # the last midnight at or before the cut-off
    return sorted(d for d in range(last, first_day, -every_days))


@dataclass
class SnapshotRun:
    """What a snapshot build produced."""

    policy_version: str
    spec_hash: str
    engine: str
    cutoff: str
    as_of_dates: list[str]
    rows: int
    sellers: int
    labelled_rows: int
    breach_rate: float
    early_warning_share: float
    early_warning_breach_rate: float
    events: str = ""
    events_fingerprint: str = ""  # features.platform.fingerprint of the events folder read


def _first_event_day(con: duckdb.DuckDBPyConnection) -> int:
    first = con.execute("SELECT min(ordered_at) FROM orders").fetchall()[0][0]
    if first is None:
        raise ValueError("orders: the table is empty; there is nothing to build features from")
    return day_number(first.date())


def plan_dates(con: duckdb.DuckDBPyConnection, cutoff: datetime, policy: Policy,
               as_of: list[date] | None) -> tuple[list[int], list[int]]:
    """(as-of days, evaluation grid days): by default every weekly date of the extract."""
    grid = evaluation_grid(cutoff, _first_event_day(con), policy.evaluation_every_days)
    if not as_of:
        return grid, grid
    late = [d for d in as_of if datetime.combine(d, datetime.min.time()) > cutoff]
    if late:
        raise ValueError(f"--as-of {', '.join(map(str, late))} lies after the extract cut-off {cutoff}")
    return sorted({day_number(d) for d in as_of}), grid


ORDERS_PER_PASS = 5_000_000
"""Sellers are processed in buckets of about this many orders, so memory stays bounded."""


def seller_buckets(con: duckdb.DuckDBPyConnection) -> int:
    """How many seller buckets keep each pass near ORDERS_PER_PASS orders."""
    orders = con.execute("SELECT count(*) FROM orders").fetchall()[0][0]
    return max(1, -(-orders // ORDERS_PER_PASS))


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def seller_ranges(con: duckdb.DuckDBPyConnection, n: int) -> list[str]:
    """`n` SQL conditions on seller_id that split the sellers into contiguous ranges of seller_id,
    about equal in count, and together hold every value. Exports written seller by seller (as the
    simulator's are) keep each range in a few row groups, so a pass reads only its own part of the
    files instead of scanning every event and throwing three quarters away."""
    count = con.execute("SELECT count(*) FROM sellers").fetchall()[0][0]
    step = max(1, -(-count // n))
    bounds = [row[0] for row in con.execute(f"""
        SELECT seller_id FROM (SELECT seller_id, row_number() OVER (ORDER BY seller_id) - 1 AS i FROM sellers)
        WHERE i > 0 AND i % {step} = 0 ORDER BY seller_id""").fetchall()]
    edges = [None, *map(_quoted, bounds), None]
    return [" AND ".join([*([f"seller_id >= {lo}"] if lo else []), *([f"seller_id < {hi}"] if hi else [])]) or "TRUE"
            for lo, hi in zip(edges, edges[1:])]


def stage_world(con: duckdb.DuckDBPyConnection, policy: Policy, as_of_days: list[int], grid_days: list[int]) -> None:
    """Stage the world around the sellers (`features.pipeline.world.STAGED`: aggregates over ALL sellers at
    each as-of date) once per build, before the passes over buckets of sellers. They are tables of the
    database, which every cursor of `con` sees (temp tables and registered frames are each connection's own)."""
    con.register("probe_days", probe_days(as_of_days, grid_days))
    for name, query in staged_sql(policy, DUCKDB, as_of_days).items():
        con.execute(f"CREATE OR REPLACE TABLE {name} AS {query}")
    con.execute(f"DROP TABLE {DAILY}")  # read by the others only


def prepare_duckdb(con: duckdb.DuckDBPyConnection, policy: Policy, spec: FeatureSpec, as_of_days: list[int],
                   grid_days: list[int], sellers: str = "TRUE", world_staged: bool = False) -> str:
    """Stage the flows of the sellers matching `sellers` per probe point, and the world around each of them
    (first the aggregates over all sellers, `stage_world`, unless `world_staged`); return the query of their
    snapshot rows."""
    if not world_staged:
        stage_world(con, policy, as_of_days, grid_days)
    lags = probe_lags(policy)
    calendar = probe_calendar(as_of_days, grid_days, lags)
    con.register("probe_days", probe_days(as_of_days, grid_days))
    con.register("probe_lags", pd.DataFrame({"lag": pd.array(lags, dtype="int64")}))
    con.register("probe_calendar", calendar)
    staged = point_flows_sql(policy, DUCKDB, int(calendar["point"].iloc[0]), sellers)
    con.execute(f"CREATE OR REPLACE TEMP TABLE point_flows AS {staged}")
    for name, frame in carrier_calendar(as_of_days).items():
        con.register(name, frame)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {WORLD_SELLERS} AS {world_sellers_sql(policy, DUCKDB, sellers)}")
    columns = ", ".join(snapshot_columns(policy, spec))
    return f"SELECT {columns} FROM ({snapshot_sql(policy, spec, DUCKDB, max(grid_days))}) s"


PARALLEL_PASSES = 2
"""Passes run side by side: much of a pass (its window functions) runs on one core, so a second
pass keeps the other core busy. Buckets are sized so two in flight fit the memory one used to."""


def _pass_connections(con: duckdb.DuckDBPyConnection, n: int) -> list[duckdb.DuckDBPyConnection]:
    """Up to `n` connections that can each run a pass: cursors of `con` when they see the events
    (Parquet exports are views every connection sees; frames and CSV registered on `con` are not),
    else `con` alone."""
    cursors = [con.cursor() for _ in range(n)]
    try:
        for cur in cursors:
            cur.execute("SET TimeZone = 'UTC'")
            for table in TABLES:
                cur.execute(f'SELECT * FROM "{table}" LIMIT 0')
    except duckdb.Error:
        for cur in cursors:
            cur.close()
        return [con]
    return cursors


def write_duckdb(con: duckdb.DuckDBPyConnection, folder: Path, policy: Policy, spec: FeatureSpec,
                 as_of_days: list[int], grid_days: list[int], progress: Progress | None = None) -> None:
    """Compute and write the snapshots bucket by bucket of sellers (Parquet, partitioned by as-of date),
    PARALLEL_PASSES buckets at a time, after staging the world around them once (`stage_world`)."""
    ranges = seller_ranges(con, seller_buckets(con))
    for d in as_of_days:  # made up front, so passes writing side by side never race to create them
        (folder / layout.partition_name(from_day_number(d))).mkdir(parents=True, exist_ok=True)
    todo = iter(enumerate(ranges))
    lock = threading.Lock()
    done = 0

    def run(cur: duckdb.DuckDBPyConnection) -> None:
        nonlocal done
        while True:
            with lock:
                b, sellers = next(todo, (None, None))
            if sellers is None:
                return
            query = prepare_duckdb(cur, policy, spec, as_of_days, grid_days, sellers, world_staged=True)
            cur.execute(f"COPY ({query}) TO $folder "
                        f"(FORMAT parquet, PARTITION_BY ({layout.PARTITION_KEY}), FILENAME_PATTERN 'part-{b:03d}-{{i}}', "
                        "OVERWRITE_OR_IGNORE)", {"folder": str(folder)})
            cur.execute(f"DROP TABLE point_flows; DROP TABLE {WORLD_SELLERS}")
            with lock:
                done += 1
                if progress:
                    progress(done, len(ranges))

    stage_world(con, policy, as_of_days, grid_days)
    connections = _pass_connections(con, min(PARALLEL_PASSES, len(ranges)))
    try:
        with ThreadPoolExecutor(len(connections)) as pool:
            for future in [pool.submit(run, c) for c in connections]:
                future.result()
    finally:
        for c in connections:
            if c is not con:
                c.close()


def _files(folder: Path) -> list[str]:
    """The snapshot files of a features folder, as DuckDB's read_parquet takes them (a parameter)."""
    files = [str(f) for f in layout.snapshot_files(folder)]
    if not files:
        raise FileNotFoundError(f"{layout.snapshots_dir(folder)} holds no snapshot files")
    return files


def _summarise(con: duckdb.DuckDBPyConnection, folder: Path) -> dict:
    row = con.execute("""
        SELECT count(*), count(DISTINCT seller_id), count(breach), avg(CAST(breach AS DOUBLE)),
               avg(CAST(compliant_at_t AS DOUBLE)),
               avg(CASE WHEN compliant_at_t THEN CAST(breach AS DOUBLE) END)
        FROM read_parquet($files, hive_partitioning = true)""", {"files": _files(folder)}).fetchall()[0]
    keys = ("rows", "sellers", "labelled_rows", "breach_rate", "early_warning_share", "early_warning_breach_rate")
    return {k: (v if v is not None else float("nan")) for k, v in zip(keys, row)}


def build_snapshots(events: Path | str, out: Path | str, policy: Policy, as_of: list[date] | None = None,
                    engine: Engine = "duckdb", cutoff: datetime | None = None,
                    progress: Progress | None = None) -> SnapshotRun:
    """Validate the events, compute the snapshots with `engine`, and write them (all or nothing)."""
    events, out = Path(events), Path(out)
    spec = feature_spec(policy)
    con = open_events(events, cutoff)  # validates first: bad events stop here, before anything is written
    con.execute(f"SET memory_limit = '{Settings.from_env().duckdb_memory}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET temp_directory = $dir", {"dir": str(Path(tempfile.gettempdir()) / "seller-risk-duckdb")})
    cutoff = cutoff or read_cutoff(events) or datetime.utcnow()
    as_of_days, grid_days = plan_dates(con, cutoff, policy, as_of)
    with replaced_whole(out, MANIFEST) as tmp:
        if engine == "duckdb":
            write_duckdb(con, layout.snapshots_dir(tmp), policy, spec, as_of_days, grid_days, progress)
        else:
            from features.pipeline.spark import compute_spark_to

            compute_spark_to(events, layout.snapshots_dir(tmp), policy, spec, as_of_days, grid_days)
        latest = from_day_number(max(as_of_days))
        con.execute("""COPY (SELECT * FROM read_parquet($files, hive_partitioning = true)
                        WHERE as_of = $latest ORDER BY seller_id)
                        TO $out (FORMAT parquet)""",
                    {"files": _files(tmp), "latest": latest, "out": str(layout.latest_snapshot(tmp))})
        layout.spec_file(tmp).write_text(spec.to_json() + "\n")
        run = SnapshotRun(policy.version, spec.hash, engine, cutoff.isoformat(),
                          [str(from_day_number(d)) for d in as_of_days], **_summarise(con, tmp),
                          events=str(events.resolve()), events_fingerprint=fingerprint(events))
        layout.manifest_file(tmp).write_text(json.dumps(asdict(run), indent=2) + "\n")
    return run


def read_snapshots(folder: Path | str, as_of: date | None = None) -> pd.DataFrame:
    """Snapshots as a frame (one as-of date, or all), columns in spec order, sorted by date and seller."""
    folder = Path(folder)
    where, params = ("WHERE as_of = $as_of", {"as_of": as_of}) if as_of else ("", {})
    con = duckdb.connect()
    df = con.execute(f"SELECT * FROM read_parquet($files, hive_partitioning = true) {where} ORDER BY as_of, seller_id",
                     {"files": _files(folder), **params}).df()
    spec = json.loads(layout.spec_file(folder).read_text())
    first = ["seller_id", "as_of"] + [f["name"] for f in spec["features"]]
    return df[first + [c for c in df.columns if c not in first]]
