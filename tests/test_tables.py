"""Tables any tool can read: the weekly score table and the feature snapshots are each one
hive-partitioned table for pandas, pyarrow.dataset, DuckDB and Spark, with one `as_of` column of one
type; the batch job's side data and a killed run's staging sit outside them; paths reach SQL as
parameters, so a quote in a folder name is just a character."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from features.platform import layout
from features.platform.atomic import clean_stale, replaced_whole, staged
from serving.batch.drift import sample_weeks
from serving.batch.job import BatchConfig, run_batch
from serving.batch.table import clear_stale_staging, read_scores


@dataclass(frozen=True)
class Seen:
    """What a reader makes of a table folder."""

    names: list[str]  # its columns
    as_of_type: str  # the reader's type of the as_of column
    weeks: dict[str, tuple[int, int]]  # week -> (rows, distinct sellers)
    total: float  # the sum of a numeric column


def read_pandas(folder: Path, value: str) -> Seen:
    df = pd.read_parquet(folder)
    g = df.groupby(df["as_of"].astype(str), observed=True)["seller_id"]
    return Seen(list(df.columns), str(df["as_of"].dtype), {w: (int(g.size()[w]), int(g.nunique()[w])) for w in g.groups},
                float(df[value].sum()))


def read_arrow(folder: Path, value: str) -> Seen:
    import pyarrow.dataset as ds

    t = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    g = t.group_by("as_of").aggregate([("seller_id", "count"), ("seller_id", "count_distinct")]).to_pylist()
    return Seen(t.column_names, str(t.schema.field("as_of").type),
                {str(r["as_of"]): (r["seller_id_count"], r["seller_id_count_distinct"]) for r in g},
                float(pc.sum(t.column(value)).as_py()))


def read_duckdb(folder: Path, value: str) -> Seen:
    import duckdb

    con = duckdb.connect()
    glob = {"glob": f"{folder}/**/*.parquet"}
    rel = con.execute("SELECT * FROM read_parquet($glob, hive_partitioning = true) LIMIT 0", glob)
    names = [d[0] for d in rel.description]
    kind = con.execute("SELECT typeof(as_of) FROM read_parquet($glob, hive_partitioning = true) LIMIT 1", glob).fetchone()[0]
    rows = con.execute("SELECT CAST(as_of AS VARCHAR), count(*), count(DISTINCT seller_id) "
                       "FROM read_parquet($glob, hive_partitioning = true) GROUP BY ALL", glob).fetchall()
    total = con.execute(f'SELECT sum("{value}") FROM read_parquet($glob, hive_partitioning = true)', glob).fetchone()[0]
    return Seen(names, kind, {w: (n, d) for w, n, d in rows}, float(total))


def read_spark(spark, folder: Path, value: str) -> Seen:
    from pyspark.sql import functions as F

    df = spark.read.parquet(str(folder))
    rows = (df.groupBy(F.col("as_of").cast("string").alias("w"))
            .agg(F.count("*").alias("n"), F.countDistinct("seller_id").alias("d")).collect())
    total = df.agg(F.sum(value)).collect()[0][0]
    return Seen(df.columns, dict(df.dtypes)["as_of"], {r["w"]: (r["n"], r["d"]) for r in rows}, float(total))


READERS: dict[str, tuple[Callable[[Path, str], Seen], str]] = {
    "pandas": (read_pandas, "category"),
    "pyarrow": (read_arrow, "string"),
    "duckdb": (read_duckdb, "DATE"),
}


# ------------------------------------------------------------------ the tables


@pytest.fixture(scope="module")
def models_dir(trained) -> Path:
    return Path(trained.tracking_uri.removeprefix("sqlite:///")).parent


@pytest.fixture(scope="module")
def weeks(feature_dir: Path) -> list[date]:
    return [date.fromisoformat(d) for d in json.loads(layout.manifest_file(feature_dir).read_text())["as_of_dates"][-2:]]


@pytest.fixture(scope="module")
def scores(tmp_path_factory, feature_dir, marketplace, trained, models_dir, weeks) -> Path:
    """Two weeks written by the batch job: the first read from the features folder, the second built
    from the events (so the job's snapshot cache and its drift reference exist as well)."""
    out = tmp_path_factory.mktemp("tables") / "scores"
    uri = f"models:/seller-risk/{trained.version}"
    run_batch(BatchConfig(out, features_dir=feature_dir, as_of=weeks[0], model_uri=uri, models_dir=models_dir,
                          log_mlflow=False))
    run_batch(BatchConfig(out, events=marketplace[0], as_of=weeks[1], model_uri=uri, models_dir=models_dir,
                          log_mlflow=False))
    return out


@dataclass(frozen=True)
class Expected:
    folder: Path
    value: str  # a numeric column whose sum every reader must agree on
    weeks: dict[str, tuple[int, int]]
    total: float


@pytest.fixture(scope="module")
def score_table(scores: Path, weeks: list[date], feature_dir: Path) -> Expected:
    """What the job wrote, from its own reader: every active seller once per week."""
    counts, total = {}, 0.0
    for w in weeks:
        t = read_scores(scores, w, ["seller_id", "risk_score"])
        snapshot = pq.read_table(layout.snapshot_partition(feature_dir, w), columns=["seller_id"]).num_rows
        assert t.num_rows == snapshot
        counts[str(w)] = (t.num_rows, t.num_rows)
        total += float(pc.sum(t.column("risk_score")).as_py())
    return Expected(scores, "risk_score", counts, total)


@pytest.fixture(scope="module")
def snapshot_table(feature_dir: Path) -> Expected:
    """What build_snapshots wrote: its manifest's dates and rows, one row per seller and week."""
    manifest = json.loads(layout.manifest_file(feature_dir).read_text())
    counts, total = {}, 0.0
    for w in manifest["as_of_dates"]:
        t = pa.concat_tables([pq.read_table(f, columns=["orders_30d"])
                              for f in layout.snapshot_files(feature_dir, date.fromisoformat(w))])
        counts[w] = (t.num_rows, t.num_rows)
        total += float(pc.sum(t.column("orders_30d")).as_py())
    assert sum(n for n, _ in counts.values()) == manifest["rows"]
    return Expected(layout.snapshots_dir(feature_dir), "orders_30d", counts, total)


def check(seen: Seen, expected: Expected, as_of_type: str) -> None:
    assert seen.names.count("as_of") == 1
    assert seen.as_of_type == as_of_type
    assert seen.weeks == expected.weeks  # every week, every seller once: nothing read twice or missed
    assert seen.total == pytest.approx(expected.total, rel=1e-12)


def test_the_tables_hold_nothing_but_partitions(scores, feature_dir, weeks) -> None:
    assert sorted(p.name for p in scores.iterdir()) == [layout.partition_name(w) for w in weeks]
    assert layout.features_cache(scores).is_dir()  # the job built the second week's snapshot beside the table
    assert list(layout.reference_file(scores, "seller-risk", "0").parent.glob("*.json"))  # and its drift reference
    assert not layout.staging_dir(scores).exists()
    snapshots = layout.snapshots_dir(feature_dir)
    assert all(layout.partition_date(p.name) for p in snapshots.iterdir())
    for files in (layout.score_files(scores), layout.snapshot_files(feature_dir)):
        assert files and not [f for f in files if "as_of" in pq.read_schema(f).names]  # the path carries it


@pytest.mark.parametrize("reader", READERS)
def test_each_reader_reads_the_score_table_as_one_table(reader, score_table) -> None:
    read, kind = READERS[reader]
    check(read(score_table.folder, score_table.value), score_table, kind)


@pytest.mark.parametrize("reader", READERS)
def test_each_reader_reads_the_snapshots_as_one_table(reader, snapshot_table) -> None:
    read, kind = READERS[reader]
    check(read(snapshot_table.folder, snapshot_table.value), snapshot_table, kind)


# ------------------------------------------------------------------ a killed run


KILLED_RUN = """
import sys
from datetime import date
from pathlib import Path
from serving.batch.job import BatchConfig, run_batch
out, features, models, uri, week = sys.argv[1:]
run_batch(BatchConfig(Path(out), features_dir=Path(features), as_of=date.fromisoformat(week), model_uri=uri,
                      models_dir=Path(models), chunk_rows=10, log_mlflow=False))
"""


@pytest.fixture(scope="module")
def killed_run(scores, feature_dir, trained, models_dir, weeks, score_table, snapshot_table) -> Path:
    """A real run re-scoring the latest week, SIGKILLed while it writes: its staging stays behind."""
    cmd = [sys.executable, "-c", KILLED_RUN, str(scores), str(feature_dir), str(models_dir),
           f"models:/seller-risk/{trained.version}", str(weeks[1])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tmp = staged(layout.score_partition(scores, weeks[1]), layout.staging_dir(scores), proc.pid)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and len(list(tmp.glob("part-*.parquet"))) < 3:
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert len(list(tmp.glob("part-*.parquet"))) >= 3
    return tmp


@pytest.mark.parametrize("reader", READERS)
def test_a_killed_runs_staging_changes_nothing_the_readers_see(reader, killed_run, scores, score_table) -> None:
    assert killed_run.is_dir() and scores not in killed_run.parents  # left behind, outside the table
    read, kind = READERS[reader]
    check(read(score_table.folder, score_table.value), score_table, kind)


@pytest.mark.slow
@pytest.mark.spark
def test_spark_reads_both_tables_as_one_table_each(killed_run, score_table, snapshot_table) -> None:
    from features.pipeline.spark import local_session

    spark = local_session()
    check(read_spark(spark, score_table.folder, score_table.value), score_table, "date")  # a killed run's staging too
    check(read_spark(spark, snapshot_table.folder, snapshot_table.value), snapshot_table, "date")


def test_the_next_run_clears_a_killed_runs_staging(killed_run, scores, weeks, score_table) -> None:
    clear_stale_staging(layout.score_partition(scores, weeks[1]))
    assert not killed_run.exists() and not layout.staging_dir(scores).exists()
    assert layout.features_cache(scores).is_dir()  # side data stays
    check(read_duckdb(score_table.folder, score_table.value), score_table, "DATE")


# ------------------------------------------------------------------ paths are parameters


def _tiny_snapshots(folder: Path, weeks: list[date]) -> None:
    for i, w in enumerate(weeks):
        part = layout.snapshot_partition(folder, w)
        part.mkdir(parents=True)
        pq.write_table(pa.table({"seller_id": [f"S{i}{k}" for k in range(5)], "orders_30d": [i * 10 + k for k in range(5)]}),
                       part / "part-000-0.parquet")
    layout.spec_file(folder).write_text(json.dumps({"features": [{"name": "orders_30d"}]}))


def test_a_quote_in_a_path_is_just_a_character(tmp_path: Path) -> None:
    from features.pipeline.snapshots import read_snapshots

    folder = tmp_path / "o'brien's features'); SELECT 1; --"
    weeks = [date(2025, 1, 6) + timedelta(days=7 * i) for i in range(3)]
    _tiny_snapshots(folder, weeks)
    sample = sample_weeks(folder, weeks[0], weeks[1], ["seller_id", "orders_30d"], 100)
    assert sorted(sample["orders_30d"]) == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    assert sample_weeks(folder, weeks[2] + timedelta(days=1), weeks[2] + timedelta(days=2), ["seller_id"], 100).empty
    one = read_snapshots(folder, weeks[2])
    assert one["orders_30d"].tolist() == [20, 21, 22, 23, 24] and set(one["as_of"].dt.date) == {weeks[2]}
    assert len(read_snapshots(folder)) == 15


# ------------------------------------------------------------------ the swap


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_folder_is_replaced_whole_from_staging_outside_the_table(tmp_path: Path) -> None:
    table = tmp_path / "scores"
    part = layout.score_partition(table, date(2025, 1, 6))
    for version in ("old", "new"):
        with replaced_whole(part, layout.SUMMARY, staging=layout.staging_dir(table)) as tmp:
            assert table not in tmp.parents
            (tmp / "part-0.parquet").write_text(version)
            (tmp / layout.SUMMARY).write_text(version)
    assert (part / "part-0.parquet").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores"]  # no staging or side folder left
    with pytest.raises(RuntimeError), replaced_whole(part, layout.SUMMARY, staging=layout.staging_dir(table)) as tmp:
        (tmp / "part-0.parquet").write_text("broken")
        raise RuntimeError("killed")
    assert (part / "part-0.parquet").read_text() == "new" and not layout.staging_dir(table).exists()


def test_clean_stale_removes_dead_runs_staging_and_puts_back_a_partition_a_swap_left_out(tmp_path: Path) -> None:
    table = tmp_path / "scores"
    part, staging = layout.score_partition(table, date(2025, 1, 6)), layout.staging_dir(table)
    dead = _dead_pid()
    staged(part, staging, dead).mkdir(parents=True)
    staged(part, staging, 1).mkdir()  # a live process's staging (pid 1 always runs) is left alone
    (staging / f"{part.name}.old-{dead}").mkdir()  # killed between the two renames of a swap
    (staging / f"{part.name}.old-{dead}" / "part-0.parquet").write_text("previous")
    clean_stale(part, staging)
    assert (part / "part-0.parquet").read_text() == "previous"
    assert sorted(p.name for p in staging.iterdir()) == [staged(part, staging, 1).name]
