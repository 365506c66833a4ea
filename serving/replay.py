"""Replay a score record: find it by its id, recompute it with the exact model version and the feature
values it was computed from, and tell whether the two agree bit for bit, or exactly why it cannot be
recomputed.

Where a record is looked for, in order:

- the audit of served records (`served_scores` in the decisions database, `Store.served`): what the
  HTTP service answered, with the feature values it scored; replayed with `Scorer.score_sellers`;
- the weekly score table (`<scores>/as_of=*/part-*.parquet`): what the batch job wrote; replayed from
  the seller's row in the feature snapshot of that week (`<features>/snapshots/as_of=.../`) with
  `Scorer.score_frame`, as the job scored it.

A record id is a hash of the model version, the as-of date, the seller and the exact model inputs
(`serving.scoring.record_ids`): a recomputed record with another id was computed from other inputs."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from features.platform import layout
from serving.scoring import Scorer

SERVED, BATCH = "served", "batch"


class ReplayImpossible(Exception):
    """The record cannot be replayed; the message is one sentence saying why."""


@dataclass(frozen=True)
class Found:
    """A stored score record, as much of it as its store keeps."""

    source: str  # SERVED or BATCH
    where: str  # the database or the score table's partition, for people
    record_id: str
    seller_id: str
    as_of: date | None
    model_name: str
    model_version: str
    feature_spec_hash: str
    risk_score: float
    features: dict | None = None  # served records: the values scored
    risk_by_standard: list[dict] | None = None  # batch records keep the whole record
    reason_texts: list[str] | None = None


@dataclass(frozen=True)
class Replayed:
    """A stored record and its recomputation."""

    found: Found
    record: dict  # the recomputed record (Scorer.records)
    differences: list[str] = field(default_factory=list)  # the fields that differ, with both values

    @property
    def identical(self) -> bool:
        return not self.differences


# ------------------------------------------------------------------ finding a record


def find_served(record_id: str, db_url: str) -> Found | None:
    """The served record with this id, or None when the database holds none (or does not exist yet:
    looking never creates a SQLite file). StoreUnavailable/SQLAlchemyError when it cannot be read."""
    from sqlalchemy.engine import make_url

    from serving.store.db import describe
    from serving.store.store import Store

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not url.database.startswith("file:") and not Path(url.database).is_file():
        return None
    store = Store.open(db_url)
    try:
        row = store.served(record_id)
    finally:
        store.close()
    if row is None:
        return None
    return Found(SERVED, f"served_scores in {describe(db_url)}", row["record_id"], row["seller_id"], row["as_of"],
                 row["model_name"], row["model_version"], row["feature_spec_hash"], row["risk_score"],
                 features=row["features"])


BATCH_COLUMNS = ["record_id", "seller_id", "risk_score", "risk_by_standard", "reasons", "model_name",
                 "model_version", "feature_spec_hash"]


def find_batch(record_id: str, scores: Path | str) -> Found | None:
    """The batch record with this id in the weekly score table, or None. Reads the record_id column of
    every week, then the other needed columns of the matching rows only (DuckDB)."""
    import duckdb

    files = [str(f) for f in layout.score_files(scores)]
    if not files:
        return None
    con = duckdb.connect()
    try:
        names = {r[0] for r in con.execute("SELECT name FROM parquet_schema($files)", {"files": files}).fetchall()}
        if "record_id" not in names:  # written before records had ids
            return None
        cols = ", ".join(f'"{c}"' for c in [*BATCH_COLUMNS, layout.PARTITION_KEY])
        rows = con.execute(f"SELECT {cols} FROM read_parquet($files, hive_partitioning = true, union_by_name = true) "
                           "WHERE record_id = $id LIMIT 1", {"files": files, "id": record_id}).fetchall()
    finally:
        con.close()
    if not rows:
        return None
    r = dict(zip([*BATCH_COLUMNS, layout.PARTITION_KEY], rows[0]))
    as_of = r[layout.PARTITION_KEY]
    as_of = as_of if isinstance(as_of, date) else date.fromisoformat(str(as_of))
    return Found(BATCH, str(layout.score_partition(scores, as_of)), r["record_id"], r["seller_id"], as_of,
                 r["model_name"], r["model_version"], r["feature_spec_hash"], r["risk_score"],
                 risk_by_standard=list(r["risk_by_standard"] or []),
                 reason_texts=[x["text"] for x in r["reasons"] or []])


def find_record(record_id: str, db_url: str, scores: Path | str) -> Found:
    """The record with this id: first among served records, else in the weekly score table."""
    from sqlalchemy.exc import SQLAlchemyError

    from serving.store.db import describe
    from serving.store.store import StoreUnavailable

    unreadable = None
    try:
        found = find_served(record_id, db_url)
    except (StoreUnavailable, SQLAlchemyError, OSError) as err:
        found, unreadable = None, " ".join(str(getattr(err, "orig", None) or err).split())
    if found is not None:
        return found
    found = find_batch(record_id, scores)
    if found is not None:
        return found
    if unreadable is not None:
        raise ReplayImpossible(f"record {record_id} is not in the score table {scores}, and the database "
                               f"{describe(db_url)} could not be read: {unreadable}")
    raise ReplayImpossible(f"no score record has id {record_id}: it is neither among the served records in "
                           f"{describe(db_url)} nor in the score table {scores}")


# ------------------------------------------------------------------ recomputing it


def load_scorer(found: Found, models_dir: Path | str) -> Scorer:
    """The exact model version the record was scored with."""
    from models.registry import ModelNotFound, StoreUnreachable
    from models.risk_model import ModelSpecMismatch

    uri = f"models:/{found.model_name}/{found.model_version}"
    try:
        scorer = Scorer.load(uri, models_dir)
    except ModelNotFound as err:
        raise ReplayImpossible(f"model version {found.model_version} of {found.model_name!r}, which scored record "
                               f"{found.record_id}, is no longer in the registry ({err})") from None
    except StoreUnreachable as err:
        raise ReplayImpossible(f"the model registry cannot be reached to load {uri}: {err}") from None
    except ModelSpecMismatch as err:
        raise ReplayImpossible(f"{uri} cannot be loaded by this code: {err}") from None
    if scorer.spec.hash != found.feature_spec_hash:
        raise ReplayImpossible(f"record {found.record_id} was scored with feature spec {found.feature_spec_hash}, "
                               f"but {uri} needs spec {scorer.spec.hash}")
    return scorer


def snapshot_row(features_dir: Path | str, as_of: date, seller_id: str, scorer: Scorer) -> pd.DataFrame:
    """The seller's row of the feature snapshot of `as_of`, as the batch job reads it (as_of added)."""
    import pyarrow.dataset as ds

    files = layout.snapshot_files(features_dir, as_of)
    if not files:
        raise ReplayImpossible(f"the feature snapshot of {as_of} is missing: {layout.snapshot_partition(features_dir, as_of)} "
                               "holds no Parquet files")
    table = ds.dataset(files, format="parquet").to_table(columns=["seller_id", *scorer.spec.names],
                                                          filter=ds.field("seller_id") == seller_id)
    if table.num_rows == 0:
        raise ReplayImpossible(f"seller {seller_id} is no longer in the feature snapshot of {as_of} "
                               f"({layout.snapshot_partition(features_dir, as_of)})")
    frame = table.slice(0, 1).to_pandas()
    frame.insert(1, "as_of", as_of)
    return frame


def replay(record_id: str, db_url: str, scores: Path | str, features_dir: Path | str,
           models_dir: Path | str) -> Replayed:
    """Find the record, recompute it, and compare. ReplayImpossible says why it cannot be done."""
    found = find_record(record_id, db_url, scores)
    scorer = load_scorer(found, models_dir)
    top = len(found.reason_texts) if found.reason_texts is not None else 5
    if found.source == SERVED:
        scored = scorer.score_sellers([found.seller_id], [found.features], [found.as_of], top=top)
    else:
        scored = scorer.score_frame(snapshot_row(features_dir, found.as_of, found.seller_id, scorer), top=top)
    record = scorer.records(scored)[0]
    if found.source == BATCH and record["record_id"] != found.record_id:
        raise ReplayImpossible(
            f"the snapshot row of seller {found.seller_id} for {found.as_of} changed since record {found.record_id} "
            f"was scored: its feature values now give record {record['record_id']} "
            f"({layout.snapshot_partition(features_dir, found.as_of)})")
    return Replayed(found, record, differences(found, record))


def differences(found: Found, record: dict) -> list[str]:
    """The fields of the stored record that the recomputed one does not equal bit for bit."""
    out = []
    if record["record_id"] != found.record_id:
        out.append(f"record_id: stored {found.record_id}, replayed {record['record_id']}")
    if not same_float(found.risk_score, record["risk_score"]):
        out.append(f"risk_score: stored {found.risk_score!r}, replayed {record['risk_score']!r}")
    if found.risk_by_standard is not None:
        stored = [(r["standard"], r["risk"]) for r in found.risk_by_standard]
        now = [(r["standard"], r["risk"]) for r in record["risk_by_standard"]]
        if len(stored) != len(now) or any(a[0] != b[0] or not same_float(a[1], b[1]) for a, b in zip(stored, now)):
            out.append(f"risk_by_standard: stored {stored!r}, replayed {now!r}")
    if found.reason_texts is not None:
        now_texts = [r["text"] for r in record["reasons"]]
        if now_texts != found.reason_texts:
            out.append(f"reasons: stored {found.reason_texts!r}, replayed {now_texts!r}")
    return out


def same_float(a: float | None, b: float | None) -> bool:
    """Equal bit for bit (so -0.0 is not 0.0, and a NaN equals the same NaN)."""
    if a is None or b is None:
        return a is None and b is None
    return struct.pack("<d", float(a)) == struct.pack("<d", float(b))


def facts(result: Replayed) -> tuple[tuple[str, str], ...]:
    """The replay at a glance, for `features.platform.terminal.print_facts`."""
    f, r = result.found, result.record
    return (
        ("record id", f.record_id),
        ("found in", f"{'served records' if f.source == SERVED else 'weekly score table'} ({f.where})"),
        ("seller", f.seller_id),
        ("as of", str(f.as_of) if f.as_of is not None else "(features sent by the caller)"),
        ("model version", f"{f.model_name} v{f.model_version} (feature spec {f.feature_spec_hash})"),
        ("stored score", repr(float(f.risk_score))),
        ("replayed score", repr(float(r["risk_score"]))),
        ("replayed record id", r["record_id"]),
        ("compared", "record id, score" + (", risk by standard, reasons" if f.source == BATCH else "")),
        ("identical", "yes" if result.identical else "no"),
    )
