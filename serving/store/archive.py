"""Retention of the served records' audit: the rows of `served_scores` older than the retention move to
Parquet files a person can open (one row per served record, every column, the feature values as one JSON
object of names and values, from which their digest is computed again), and the database keeps a checkpoint (`audit_archives`) the chain carries on
from, so `audit verify` still walks it, and with `--archives` walks the files too.

Nothing is lost or half-written when an archive is interrupted: a file is written under a temporary name,
flushed and renamed, and only then, in one transaction, its checkpoint is added and its rows (and the
feature values no other record names) deleted. Killed before the transaction commits, the rows are all
still in the database and the file is a leftover no checkpoint names, removed by the next archive.

Files are named `served_scores-<first id>-<last id>.parquet` (ids zero-padded, so they sort in chain order)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, bindparam, delete, exists, select

from serving.store import chain
from serving.store.db import AuditArchiveRow, ServedFeatureNamesRow, ServedFeaturesRow, ServedScoreRow

CHAIN = "served_scores"
NAME = re.compile(r"served_scores-(\d{12})-(\d{12})\.parquet")
COLUMNS = ("id", "record_id", "seller_id", "as_of", "model_name", "model_version", "feature_spec_hash",
           "policy_version", "risk_score", "features", "features_digest", "served_at", "prev_hash", "row_hash")
"""An archive file's columns: a served record as the database kept it, its feature values resolved."""


class ArchiveRaced(RuntimeError):
    """Another archive of the same database cut the chain meanwhile; nothing of this one was kept."""


@dataclass(frozen=True)
class Archived:
    """One archive made: the file, the rows it holds and the hash the chain carries on from."""

    file: Path
    first_id: int
    last_id: int
    rows: int
    last_hash: str
    served_from: datetime
    served_to: datetime


def file_name(first_id: int, last_id: int) -> str:
    return f"{CHAIN}-{first_id:012d}-{last_id:012d}.parquet"


def archive_next(engine: Engine, writer: Engine, before: datetime, folder: Path, most_rows: int,
                 now: datetime) -> Archived | None:
    """Archive the oldest rows still in the database served before `before` (at most `most_rows`, and no
    row after one served later: the cut is a prefix of the chain); None when there are none."""
    with engine.connect() as connection:
        cuts = chain.checkpoints(connection, CHAIN)
        start = cuts[-1].last_id if cuts else 0
        rows = _due(connection, start, before, most_rows)
    if not rows:
        return None
    folder = Path(folder)
    path = folder / file_name(rows[0]["id"], rows[-1]["id"])
    digest = write_atomically(_table(rows), path)
    made = Archived(path.resolve(), rows[0]["id"], rows[-1]["id"], len(rows), rows[-1]["row_hash"],
                    min(r["served_at"] for r in rows), max(r["served_at"] for r in rows))
    try:
        with writer.begin() as connection:
            _cut(connection, start, made, digest, {r["features_digest"] for r in rows} - {None}, now)
    except BaseException:
        path.unlink(missing_ok=True)  # the rows are all still in the database
        raise
    return made


def _due(connection, start: int, before: datetime, most_rows: int) -> list[dict]:
    """The rows after the last archived one, in chain order, up to the first served at or after `before`."""
    served, kept, names = ServedScoreRow, ServedFeaturesRow, ServedFeatureNamesRow
    query = (select(*(served.__table__.c[c] for c in COLUMNS), kept.feature_values, names.names)
             .outerjoin(kept, kept.digest == served.features_digest)
             .outerjoin(names, names.digest == kept.names_digest)
             .where(served.id > start).order_by(served.id).limit(most_rows))
    rows = []
    for r in connection.execution_options(yield_per=5000).execute(query):
        if r.served_at >= before:
            break
        row = {c: getattr(r, c) for c in COLUMNS}
        if r.features_digest:  # the values with their names, as one JSON object a person reads
            row["features"] = json.dumps(dict(zip(json.loads(r.names), json.loads(r.feature_values))),
                                         separators=(",", ":"))
        rows.append(row)
    return rows


def _cut(connection, start: int, made: Archived, file_sha256: str, digests: set[str], now: datetime) -> None:
    """In one transaction: the checkpoint, then the archived rows and the values no remaining row names. The
    chain's head is locked first, so no record naming values about to go is appended meanwhile."""
    chain.lock_head(connection, CHAIN)
    latest = connection.execute(select(AuditArchiveRow.last_id).where(AuditArchiveRow.chain == CHAIN)
                                .order_by(AuditArchiveRow.id.desc()).limit(1).with_for_update()).scalar()
    if (latest or 0) != start:
        raise ArchiveRaced(f"another archive cut {CHAIN} through row {latest} meanwhile: run `audit archive` again")
    connection.execute(AuditArchiveRow.__table__.insert().values(
        chain=CHAIN, first_id=made.first_id, last_id=made.last_id, last_hash=made.last_hash, rows=made.rows,
        served_from=made.served_from, served_to=made.served_to, file=str(made.file), file_sha256=file_sha256,
        archived_at=now))
    connection.execute(delete(ServedScoreRow).where(ServedScoreRow.id.between(made.first_id, made.last_id)))
    unnamed = (delete(ServedFeaturesRow)
               .where(ServedFeaturesRow.digest.in_(bindparam("digests", expanding=True)),
                      ~exists().where(ServedScoreRow.features_digest == ServedFeaturesRow.digest)))
    ordered = sorted(digests)
    for i in range(0, len(ordered), 500):
        connection.execute(unnamed, {"digests": ordered[i:i + 500]})
    names = ServedFeatureNamesRow
    connection.execute(delete(names).where(~exists().where(ServedFeaturesRow.names_digest == names.digest)))


def _table(rows: list[dict]):
    import pyarrow as pa

    schema = pa.schema([
        ("id", pa.int64()), ("record_id", pa.string()), ("seller_id", pa.string()), ("as_of", pa.date32()),
        ("model_name", pa.string()), ("model_version", pa.string()), ("feature_spec_hash", pa.string()),
        ("policy_version", pa.string()), ("risk_score", pa.float64()), ("features", pa.string()),
        ("features_digest", pa.string()), ("served_at", pa.timestamp("us", tz="UTC")), ("prev_hash", pa.string()),
        ("row_hash", pa.string()),
    ])
    return pa.Table.from_pydict({c: [r[c] for r in rows] for c in COLUMNS}, schema=schema)


def write_atomically(table, path: Path) -> str:
    """Write a Parquet table under a temporary name beside `path`, flush it to disk, rename it to `path`
    (readers see no file or the whole file), flush the folder; the file's sha256. Private to its owner:
    it holds what sellers were scored on."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return digest


def clear_leftovers(folder: Path, cuts: list) -> list[Path]:
    """Remove what an interrupted archive left in `folder`: temporary files, and archive files past the last
    checkpoint that no checkpoint names (their rows are still in the database). The files removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    named = {Path(c.file).resolve() for c in cuts}
    last = cuts[-1].last_id if cuts else 0
    gone = []
    for path in folder.iterdir():
        match = NAME.fullmatch(path.name)
        stale = (path.name.startswith(f".{CHAIN}-") and path.name.endswith(".tmp")) or \
            (match is not None and int(match.group(1)) > last and path.resolve() not in named)
        if stale:
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


def file_problems(cuts: list) -> list[str]:
    """Walk each archive file a checkpoint names: there, unchanged (its sha256), and its rows chained from
    the previous archive's last hash to the checkpoint's. One line per problem found."""
    problems, prev = [], ""
    for cut in cuts:
        problem = _file_problem(cut, prev)
        if problem:
            problems.append(problem)
        prev = cut.last_hash
    return problems


def _file_problem(cut, prev: str) -> str | None:
    import pyarrow.parquet as pq

    path = Path(cut.file)
    if not path.is_file():
        return f"{CHAIN} archive {cut.id}: its file {path} is missing (rows {cut.first_id} to {cut.last_id})"
    with path.open("rb") as fh:
        if hashlib.file_digest(fh, "sha256").hexdigest() != cut.file_sha256:
            return f"{CHAIN} archive {cut.id}: {path} is not the file archived (its sha256 differs)"
    expected = cut.first_id
    for row in pq.read_table(path).to_pylist():
        stored = "" if row["features_digest"] else row["features"]
        if row["id"] != expected or row["prev_hash"] != prev or \
                chain.row_hash(prev, chain.hashed(CHAIN, lambda c, row=row, stored=stored:
                                                  stored if c == "features" else row[c])) != row["row_hash"]:
            return f"{CHAIN} archive {cut.id}: row {row['id']} of {path} does not chain (changed, removed or reordered)"
        if row["features_digest"] and _digest_of(row["features"]) != row["features_digest"]:
            return f"{CHAIN} archive {cut.id}: the feature values of row {row['id']} in {path} were changed"
        prev, expected = row["row_hash"], expected + 1
    if expected != cut.last_id + 1 or prev != cut.last_hash:
        return f"{CHAIN} archive {cut.id}: {path} ends at row {expected - 1}, its checkpoint at row {cut.last_id}"
    return None


def _digest_of(features: str) -> str:
    """The digest a set of archived values was kept under in the database."""
    names, values = chain.feature_texts(json.loads(features))
    return chain.features_digest(chain.text_digest(names), values)


def find_archived(cuts: list, record_id: str) -> dict | None:
    """The served record with this id in the archive files (the latest served, newest file first), as
    `Store.served` hands it back; None when no file there holds it."""
    import pyarrow.dataset as ds

    for cut in reversed(cuts):
        if not Path(cut.file).is_file():
            continue
        found = ds.dataset(cut.file, format="parquet").to_table(filter=ds.field("record_id") == record_id).to_pylist()
        if found:
            row = max(found, key=lambda r: (r["served_at"], r["id"]))
            keep = ("record_id", "seller_id", "as_of", "model_name", "model_version", "feature_spec_hash",
                    "policy_version", "risk_score", "served_at")
            return {**{k: row[k] for k in keep}, "features": json.loads(row["features"])}
    return None
