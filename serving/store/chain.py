"""The tamper-evident chains of the audit tables: each row of `decisions` and `served_scores` carries
`row_hash` = sha256(`prev_hash` + the row's content), `prev_hash` being the row before it's `row_hash`
(empty for the first row), and `audit_chain_heads` keeps each chain's last id and hash. Triggers refuse
UPDATE, DELETE and REPLACE; should someone get around them (drop a trigger, edit the file), `verify`
names the first row that no longer matches: a changed row, a removed one, rows cut from the end, or a
trigger that is gone.

Writers append under the database's write lock (SQLite: the transaction began with BEGIN IMMEDIATE;
PostgreSQL: the chain head's row, SELECT ... FOR UPDATE), so concurrent writers keep one chain. A chain
proves nothing against someone who rewrites every row after the one they change and the head too: keep
the head hash `audit verify` prints somewhere else (a ticket, a log) to anchor it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Table, select, text
from sqlalchemy.orm import Session

from serving.store.db import Base, ChainHeadRow

CONTENT = {
    "decisions": ("id", "record_id", "seller_id", "as_of", "model_name", "model_version", "feature_spec_hash",
                  "risk_score", "action", "note", "reviewer", "decided_at", "corrects_id"),
    "served_scores": ("id", "record_id", "seller_id", "as_of", "model_name", "model_version", "feature_spec_hash",
                      "policy_version", "risk_score", "features", "served_at"),
}
"""Per chained table, the columns its hash covers, in the order they are serialized."""

TRIGGERS = {
    "sqlite": ("decisions_no_update", "decisions_no_delete", "decisions_no_replace",
               "served_scores_no_update", "served_scores_no_delete", "served_scores_no_replace"),
    "postgresql": ("decisions_no_update_or_delete", "decisions_no_truncate",
                   "served_scores_no_update_or_delete", "served_scores_no_truncate"),
}
"""The append-only triggers the migrations create (0001, 0002), per backend; `verify` checks each is there
(and, on PostgreSQL, enabled)."""


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
        row.row_hash = prev = row_hash(prev, (getattr(row, c) for c in CONTENT[table]))
    head.last_id, head.last_hash = last_id, prev


@dataclass(frozen=True)
class Verdict:
    """What `verify` found: per chain its rows and head hash, and the problems (empty: intact)."""

    rows: dict[str, int]
    heads: dict[str, str]
    problems: list[str]


def verify(connection: Connection) -> Verdict:
    """Walk each chain in id order and check every link and the head; check the triggers are there."""
    problems = missing_triggers(connection)
    rows, heads = {}, {}
    for table in CONTENT:
        count, head, problem = _walk(connection, table)
        rows[table], heads[table] = count, head
        if problem:
            problems.append(problem)
    return Verdict(rows, heads, problems)


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
    columns = [table.c[c] for c in CONTENT[table.name]]
    query = select(*columns, table.c.prev_hash, table.c.row_hash).order_by(table.c.id)
    yield from connection.execution_options(yield_per=2000).execute(query)


def _walk(connection: Connection, name: str) -> tuple[int, str, str | None]:
    """(rows, the last row's hash, the first problem or None) of one chain."""
    table = Base.metadata.tables[name]
    width = len(CONTENT[name])
    last_id, prev, count = 0, "", 0
    for r in _rows(connection, table):
        values, prev_hash, stored = r[:width], r[width], r[width + 1]
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
