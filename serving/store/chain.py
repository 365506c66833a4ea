"""The tamper-evident chains of the audit tables: each row of `decisions` and `served_scores` carries
`row_hash` = sha256(`prev_hash` + the row's content), `prev_hash` being the row before it's `row_hash`
(empty for the first row), and `audit_chain_heads` keeps each chain's last id and hash. Triggers refuse
UPDATE, DELETE and REPLACE; should someone get around them (drop a trigger, edit the file), `verify`
names the first row that no longer matches: a changed row, a removed one, rows cut from the end, or a
trigger that is gone.

Served records name their feature values by digest (`features_digest`, kept once in `served_features`,
their names once per list in `served_feature_names`): the row's hash covers the digest, and `verify`
rehashes each set of values and each list of names and finds a record whose values are gone.
`audit archive` moves the oldest rows of `served_scores` to Parquet and leaves a checkpoint
(`audit_archives`: the last archived row's id and hash); the chain in the database carries on from it,
and `verify` starts there (serving.store.archive walks the files).

Writers append under the database's write lock (SQLite: the transaction began with BEGIN IMMEDIATE;
PostgreSQL: the chain head's row, SELECT ... FOR UPDATE), so concurrent writers keep one chain. A chain
proves nothing against someone who rewrites every row after the one they change and the head too: keep
the head hash `audit verify` prints somewhere else (a ticket, a log) to anchor it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Table, bindparam, select, text
from sqlalchemy.orm import Session

from serving.store.db import (
    AuditArchiveRow,
    Base,
    ChainHeadRow,
    ServedFeatureNamesRow,
    ServedFeaturesRow,
    ServedScoreRow,
)

CONTENT = {
    "decisions": ("id", "record_id", "seller_id", "as_of", "model_name", "model_version", "feature_spec_hash",
                  "risk_score", "action", "note", "reviewer", "decided_at", "corrects_id"),
    "served_scores": ("id", "record_id", "seller_id", "as_of", "model_name", "model_version", "feature_spec_hash",
                      "policy_version", "risk_score", "features", "served_at"),
}
"""Per chained table, the columns its hash covers, in the order they are serialized."""

ADDED = {"decisions": (), "served_scores": ("features_digest",)}
"""Per chained table, columns a later revision added: each enters the hash after CONTENT's only when it is
set, so the rows written before it keep their hashes."""

TRIGGERS = {
    "sqlite": ("decisions_no_update", "decisions_no_delete", "decisions_no_replace",
               "served_scores_no_update", "served_scores_no_delete", "served_scores_no_replace",
               "served_features_no_update", "served_features_no_delete", "served_features_no_replace",
               "served_feature_names_no_update", "served_feature_names_no_delete", "served_feature_names_no_replace",
               "audit_archives_no_update", "audit_archives_no_delete", "audit_archives_no_replace"),
    "postgresql": ("decisions_no_update_or_delete", "decisions_no_truncate",
                   "served_scores_no_update_or_delete", "served_scores_no_truncate",
                   "served_features_no_update_or_delete", "served_features_no_truncate",
                   "served_feature_names_no_update_or_delete", "served_feature_names_no_truncate",
                   "audit_archives_no_update_or_delete", "audit_archives_no_truncate"),
}
"""The append-only triggers the migrations create (0001, 0002, 0003), per backend; `verify` checks each is
there (and, on PostgreSQL, enabled)."""


def canonical(values: Iterable[object]) -> str:
    """A row's content as one JSON text, the same on every backend: dates ISO, moments in UTC to the
    microsecond, floats as their shortest exact repr, text as it is."""
    return json.dumps([_plain(v) for v in values], ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def row_hash(prev_hash: str, values: Iterable[object]) -> str:
    """The hash a row carries: sha256 of the previous row's hash, a newline, and its content."""
    return hashlib.sha256(f"{prev_hash}\n{canonical(values)}".encode()).hexdigest()


def text_digest(text: str) -> str:
    """The sha256 of a text: the name a list of feature names is kept under."""
    return hashlib.sha256(text.encode()).hexdigest()


def features_digest(names_digest: str, values: str) -> str:
    """The name a set of served feature values is kept under: the sha256 of its names' digest, a newline,
    and the values' JSON array."""
    return text_digest(f"{names_digest}\n{values}")


def feature_texts(features: dict, default=None) -> tuple[str, str]:
    """A set of feature values as kept: its names and its values, each a compact JSON array in the same
    order (`default`: how values JSON cannot write are written). A text read back and written again is
    the same text, so an archive's values rehash to their digest."""
    return (json.dumps(list(features), separators=(",", ":")),
            json.dumps(list(features.values()), default=default, separators=(",", ":")))


def hashed(table: str, get) -> list[object]:
    """What a row's hash covers: CONTENT's columns, then each ADDED column that is set (`get(column)`)."""
    values = [get(c) for c in CONTENT[table]]
    return values + [v for v in (get(c) for c in ADDED[table]) if v is not None]


def link(session: Session, table: str, rows: list) -> None:
    """Give ORM rows of `table` (not yet flushed) their ids and hashes, after the chain's last row, and
    move the chain head on; in the writing transaction, which this serializes with other writers."""
    head = session.scalar(select(ChainHeadRow).where(ChainHeadRow.name == table).with_for_update())
    if head is None:  # the migration makes both heads; a database made by hand may lack one
        head = ChainHeadRow(name=table, last_id=0, last_hash="")
        session.add(head)
    last_id, prev = head.last_id, head.last_hash
    for row in rows:
        last_id += 1
        row.id, row.prev_hash = last_id, prev
        row.row_hash = prev = row_hash(prev, hashed(table, lambda c, row=row: getattr(row, c)))
    head.last_id, head.last_hash = last_id, prev


_HEADS = Base.metadata.tables["audit_chain_heads"]
_LOCK_HEAD = select(_HEADS.c.last_id, _HEADS.c.last_hash).where(_HEADS.c.name == bindparam("name")).with_for_update()
_MOVE_HEAD = _HEADS.update().where(_HEADS.c.name == bindparam("chain")).values(last_id=bindparam("id"),
                                                                               last_hash=bindparam("hash"))


def lock_head(connection: Connection, table: str):
    """The chain's head (last_id, last_hash), locked until the transaction ends (SQLite: the transaction
    holds the write lock already), so writers of the chain wait for each other; None when there is none."""
    return connection.execute(_LOCK_HEAD, {"name": table}).first()


def append(connection: Connection, table: str, rows: list[dict]) -> None:
    """`link` for plain rows (column -> value) written with Core statements: each gets its id, prev_hash
    and row_hash, and the head moves on; in the connection's writing transaction."""
    head = lock_head(connection, table)
    if head is None:
        connection.execute(_HEADS.insert().values(name=table, last_id=0, last_hash=""))
        head = (0, "")
    last_id, prev = head
    for row in rows:
        last_id += 1
        row["id"], row["prev_hash"] = last_id, prev
        row["row_hash"] = prev = row_hash(prev, hashed(table, lambda c, row=row: row.get(c)))
    connection.execute(_MOVE_HEAD, {"chain": table, "id": last_id, "hash": prev})


@dataclass(frozen=True)
class Verdict:
    """What `verify` found: per chain its rows and head hash, and the problems (empty: intact)."""

    rows: dict[str, int]
    heads: dict[str, str]
    problems: list[str]
    archived: dict[str, int] = field(default_factory=dict)  # per chain, the rows archives moved to Parquet


def verify(connection: Connection) -> Verdict:
    """Walk each chain in id order, from its last archive checkpoint, and check every link and the head;
    check the served records' feature values and the triggers."""
    problems = missing_triggers(connection)
    rows, heads, archived = {}, {}, {}
    for table in CONTENT:
        cuts = checkpoints(connection, table)
        problems += _cut_problems(table, cuts)
        start = (cuts[-1].last_id, cuts[-1].last_hash) if cuts else (0, "")
        count, head, problem = _walk(connection, table, start)
        rows[table], heads[table], archived[table] = count, head, sum(c.rows for c in cuts)
        if problem:
            problems.append(problem)
    return Verdict(rows, heads, problems + _features_problems(connection), archived)


def checkpoints(connection: Connection, table: str) -> list:
    """The archive checkpoints of a chain, in the order they were made (id, first_id, last_id, last_hash,
    rows, file, file_sha256)."""
    archives = AuditArchiveRow
    return list(connection.execute(
        select(archives.id, archives.first_id, archives.last_id, archives.last_hash, archives.rows, archives.file,
               archives.file_sha256).where(archives.chain == table).order_by(archives.id)))


def _cut_problems(table: str, cuts: list) -> list[str]:
    """Each archive must take up where the one before ended, and hold the rows it says."""
    problems, last = [], 0
    for cut in cuts:
        if cut.first_id != last + 1 or cut.rows != cut.last_id - cut.first_id + 1:
            problems.append(f"{table}: archive {cut.id} holds rows {cut.first_id} to {cut.last_id} ({cut.rows} rows) "
                            f"after rows to {last} were archived (an archive checkpoint was changed)")
        last = cut.last_id
    return problems


def _features_problems(connection: Connection) -> list[str]:
    """Each set of served feature values and each list of names must still match its digest, and what a
    served record (or a set of values) names must still be there."""
    values, names, served = ServedFeaturesRow, ServedFeatureNamesRow, ServedScoreRow
    problems = []
    gone = connection.execute(
        select(served.id, served.features_digest).outerjoin(values, values.digest == served.features_digest)
        .where(served.features_digest.is_not(None), values.digest.is_(None)).order_by(served.id).limit(1)).first()
    if gone is not None:
        problems.append(f"served_scores row {gone.id}: its feature values {gone.features_digest} are gone from "
                        "served_features (deleted)")
    query = select(values.digest, values.names_digest, values.feature_values, names.names).outerjoin(
        names, names.digest == values.names_digest)
    for digest, names_digest, kept, listed in connection.execution_options(yield_per=2000).execute(query):
        if listed is None:
            problems.append(f"served_features {digest}: its names {names_digest} are gone from served_feature_names")
            break
        if features_digest(names_digest, kept) != digest or text_digest(listed) != names_digest:
            problems.append(f"served_features {digest}: the values or their names do not match their digest "
                            "(they were changed)")
            break
    return problems


def missing_triggers(connection: Connection) -> list[str]:
    """One line per append-only trigger that is gone (or disabled, on PostgreSQL)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        there = set(connection.scalars(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'")))
    else:
        there = set(connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
    return [f"trigger {name} dropped (or disabled): the table it guarded can be rewritten"
            for name in TRIGGERS[dialect] if name not in there]


def _rows(connection: Connection, table: Table) -> Iterator:
    columns = [table.c[c] for c in (*CONTENT[table.name], *ADDED[table.name])]
    query = select(*columns, table.c.prev_hash, table.c.row_hash).order_by(table.c.id)
    yield from connection.execution_options(yield_per=2000).execute(query)


def _walk(connection: Connection, name: str, start: tuple[int, str]) -> tuple[int, str, str | None]:
    """(rows, the last row's hash, the first problem or None) of one chain, from `start` (the id and hash
    of the last archived row; (0, "") when none was archived)."""
    table = Base.metadata.tables[name]
    width, added = len(CONTENT[name]), len(ADDED[name])
    (last_id, prev), count = start, 0
    for r in _rows(connection, table):
        values = [*r[:width], *(v for v in r[width:width + added] if v is not None)]
        prev_hash, stored = r[width + added], r[width + added + 1]
        row_id = values[0]
        if row_id != last_id + 1:
            gone = f"row {last_id + 1}" if row_id == last_id + 2 else f"rows {last_id + 1} to {row_id - 1}"
            return count, prev, f"{name} {gone} missing (deleted): the chain jumps from row {last_id} to {row_id}"
        if prev_hash != prev:
            return count, prev, (f"{name} row {row_id}: its prev_hash does not match row {last_id}'s hash "
                                 "(a row before it was replaced or rehashed)")
        if row_hash(prev, values) != stored:
            return count, prev, f"{name} row {row_id}: its content does not match its hash (the row was changed)"
        last_id, prev, count = row_id, stored, count + 1
    head = connection.execute(select(ChainHeadRow.last_id, ChainHeadRow.last_hash)
                              .where(ChainHeadRow.name == name)).first()
    if head is None:
        if count:
            return count, prev, f"{name}: the chain head is missing (audit_chain_heads has no {name!r} row)"
    elif (head.last_id, head.last_hash) != (last_id, prev):
        return count, prev, (f"{name} rows after {last_id} missing: the chain head names row {head.last_id} "
                             f"as the last, the table ends at row {last_id} (rows cut from the end, or the head edited)")
    return count, prev, None
