"""The same pipeline on Apache Spark, for marketplaces that outgrow one machine.

Only the engine changes: the events are read as Spark views with the schema's types, and the SQL
of `features.pipeline.sql` runs unchanged but for the `SPARK` dialect. Tests run it in local mode
and hold its snapshots equal to DuckDB's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.pipeline.sql import SPARK, point_flows_sql, probe_lags, snapshot_columns, snapshot_sql
from features.policy.definition import Policy
from features.pipeline.probes import probe_calendar, probe_days
from features.events.schema import TABLES
from features.pipeline.spec import FeatureSpec
from features.pipeline.world import DAILY, SELLERS, carrier_calendar, staged_sql, world_sellers_sql

SPARK_TYPES = {"string": "STRING", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "timestamp": "TIMESTAMP"}


def local_session(cores: int = 2):
    """A local Spark session in UTC, quiet, sized for this machine."""
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(f"local[{cores}]").appName("seller-risk")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", str(cores * 2))
            .config("spark.sql.ansi.enabled", "false")
            .getOrCreate())


def _table_path(events: Path, name: str) -> Path:
    for candidate in (events / name, events / f"{name}.parquet"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name}: no Parquet table at {events / name} (the Spark engine reads Parquet only)")


def register_events(spark, events: Path) -> None:
    """Each event table as a temp view with exactly the schema's columns and types."""
    for table in TABLES.values():
        df = spark.read.parquet(str(_table_path(events, table.name)))
        cols = [f"CAST(`{c.name}` AS {SPARK_TYPES[c.kind]}) AS `{c.name}`" for c in table.columns]
        df.selectExpr(*cols).createOrReplaceTempView(table.name)


def compute_spark(spark, events: Path, policy: Policy, spec: FeatureSpec, as_of_days: list[int],
                  grid_days: list[int]):
    """The snapshot rows as a Spark DataFrame."""
    register_events(spark, events)
    lags = probe_lags(policy)
    calendar = probe_calendar(as_of_days, grid_days, lags)
    spark.createDataFrame(probe_days(as_of_days, grid_days)).createOrReplaceTempView("probe_days")
    spark.createDataFrame(pd.DataFrame({"lag": pd.array(lags, dtype="int64")})).createOrReplaceTempView("probe_lags")
    spark.createDataFrame(calendar).createOrReplaceTempView("probe_calendar")
    first_point = int(calendar["point"].iloc[0])
    spark.sql(point_flows_sql(policy, SPARK, first_point)).createOrReplaceTempView("point_flows")
    _stage_world(spark, policy, as_of_days)
    return spark.sql(snapshot_sql(policy, spec, SPARK, max(grid_days))).select(*snapshot_columns(policy, spec))


def _stage_world(spark, policy: Policy, as_of_days: list[int]) -> None:
    """The world around the sellers as views, the same SQL as DuckDB's (`features.pipeline.world`); the
    daily counts, read by both aggregates, are cached so the events are scanned for them once."""
    for name, query in staged_sql(policy, SPARK, as_of_days).items():
        df = spark.sql(query)
        (df.cache() if name == DAILY else df).createOrReplaceTempView(name)
    for name, frame in carrier_calendar(as_of_days).items():
        spark.createDataFrame(frame).createOrReplaceTempView(name)
    spark.sql(world_sellers_sql(policy, SPARK)).createOrReplaceTempView(SELLERS)


def compute_spark_to(events: Path, folder: Path, policy: Policy, spec: FeatureSpec, as_of_days: list[int],
                     grid_days: list[int]) -> None:
    """Compute with a local Spark session and write Parquet partitioned by as-of date."""
    spark = local_session()
    compute_spark(spark, events, policy, spec, as_of_days, grid_days).write.partitionBy("as_of").parquet(str(folder))


def to_pandas(df) -> pd.DataFrame:
    return df.toPandas()
