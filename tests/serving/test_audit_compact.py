"""The audit of served records is compact and still tamper-evident: a record names its feature values by
digest and each distinct set of values is kept once, so a seller served many times from one snapshot week
costs well under 1 KB a record; the values come back bit for bit; `audit verify` finds an edited or deleted
set of values as it finds an edited record; and records written before the compact form verify and read
as they did. The audit thread writes the calls that queued during a commit in one transaction, and a
request's future resolves only once its rows are committed (readable by another connection)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, text

from serving.api.audit import ServedAudit
from serving.store.store import Store
from tests.serving.console.conftest import db_url, postgres_cluster  # noqa: F401  (both backends)

FEATURES = 82  # the size of the walmart-us-2026 feature spec


def features_of(seller: int) -> dict:
    """A seller's feature row as the service audits it: full-precision rates, counts, a category."""
    rng = random.Random(seller)
    row = {f"rate_{i}": rng.random() for i in range(FEATURES - 2)}
    return {**row, "orders_30d": rng.randint(0, 5000), "category": "electronics"}


def served(record: int, seller: int, **extra) -> dict:
    return {"record_id": f"{record:016x}", "seller_id": f"S{seller:07d}", "as_of": date(2026, 1, 5),
            "model_name": "seller-risk", "model_version": "7", "feature_spec_hash": "f50a9b58dbfd6e0a",
            "policy_version": "walmart-us-2026", "risk_score": 1 / (record + 3), "features": features_of(seller),
            **extra}


def _file_size(path: Path) -> int:
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def test_a_week_of_repeat_requests_costs_under_1_kb_a_served_record(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    store = Store.open(f"sqlite:///{path}")
    try:
        store.log_served([served(0, 0)])
        before = _file_size(path)
        sellers, requests = 50, 2000  # each seller served 40 times from the same snapshot row
        for i in range(1, requests + 1):
            store.log_served([served(i, i % sellers)])
        per_record = (_file_size(path) - before) / requests
        with store.engine.connect() as con:
            kept = con.execute(text("SELECT COUNT(*) FROM served_features")).scalar()
            assert con.execute(text("SELECT COUNT(*) FROM served_feature_names")).scalar() == 1
            inline = con.execute(text("SELECT MAX(LENGTH(features)) FROM served_scores")).scalar()
        assert kept == sellers and inline == 0
        assert per_record < 1024, per_record
        assert store.verify().problems == []
    finally:
        store.close()


def test_values_come_back_bit_for_bit_and_an_edit_or_a_deletion_of_them_is_found(db_url: str) -> None:  # noqa: F811
    store = Store.open(db_url)
    try:
        store.log_served([served(1, 1), served(2, 2), served(3, 1)])
        assert store.served(f"{3:016x}")["features"] == features_of(1)
        assert store.served(f"{2:016x}")["risk_score"].hex() == (1 / 5).hex()
        assert store.verify().problems == []
        with store.engine.connect() as con:
            digest = con.execute(text("SELECT features_digest FROM served_scores WHERE id = 2")).scalar()
        for statement in (f"UPDATE served_features SET feature_values = '[]' WHERE digest = '{digest}'",
                          f"DELETE FROM served_features WHERE digest = '{digest}'",
                          "DELETE FROM served_scores WHERE id = 3"):
            with pytest.raises(Exception, match="append-only"), store.engine.begin() as con:
                con.execute(text(statement))
        _set_aside_triggers(store.engine, "served_features")
        with store.engine.begin() as con:
            con.execute(text("UPDATE served_features SET feature_values = REPLACE(feature_values, :was, :now) "
                             "WHERE digest = :d"), {"was": '"electronics"', "now": '"toys"', "d": digest})
        changed = f"served_features {digest}: the values or their names do not match their digest (they were changed)"
        assert changed in store.verify().problems
        with store.engine.begin() as con:
            con.execute(text(f"DELETE FROM served_features WHERE digest = '{digest}'"))
        assert (f"served_scores row 2: its feature values {digest} are gone from served_features (deleted)"
                in store.verify().problems)
    finally:
        store.close()


def test_the_names_are_kept_once_and_an_edit_of_them_is_found(db_url: str) -> None:  # noqa: F811
    store = Store.open(db_url)
    try:
        store.log_served([served(i, i) for i in range(1, 6)])
        with store.engine.connect() as con:
            assert con.execute(text("SELECT COUNT(*) FROM served_feature_names")).scalar() == 1
        _set_aside_triggers(store.engine, "served_feature_names")
        with store.engine.begin() as con:
            con.execute(text("UPDATE served_feature_names SET names = REPLACE(names, 'orders_30d', 'orders_7d')"))
        problems = store.verify().problems
        assert any(p.endswith("the values or their names do not match their digest (they were changed)")
                   for p in problems), problems
    finally:
        store.close()


def test_a_record_pointed_at_other_values_breaks_its_hash(db_url: str) -> None:  # noqa: F811
    store = Store.open(db_url)
    try:
        store.log_served([served(1, 1), served(2, 2)])
        _set_aside_triggers(store.engine, "served_scores")
        with store.engine.begin() as con:
            con.execute(text("UPDATE served_scores SET features_digest = "
                             "(SELECT features_digest FROM served_scores WHERE id = 1) WHERE id = 2"))
        problems = store.verify().problems
        assert "served_scores row 2: its content does not match its hash (the row was changed)" in problems
    finally:
        store.close()


def test_records_written_before_the_compact_form_verify_and_read_beside_new_ones(tmp_path: Path) -> None:
    from serving.store.db import create_db_engine
    from serving.store.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'console.db'}"
    engine = create_db_engine(url)
    upgrade(engine, "0002")  # the values in the record itself, hashed as they were
    with engine.begin() as con:
        con.execute(text("INSERT INTO served_scores (id, record_id, seller_id, as_of, model_name, model_version, "
                         "feature_spec_hash, policy_version, risk_score, features, served_at, prev_hash, row_hash) "
                         "VALUES (1, 'old', 'S1', '2026-01-05', 'seller-risk', '7', 'h', 'p', 0.5, "
                         "'{\"x\": 0.1}', '2026-01-06 09:00:00.000000', '', :h)"),
                    {"h": _legacy_hash()})
        con.execute(text("UPDATE audit_chain_heads SET last_id = 1, last_hash = :h WHERE name = 'served_scores'"),
                    {"h": _legacy_hash()})
    engine.dispose()
    store = Store.open(url)  # to 0003
    try:
        store.log_served([served(2, 2)])
        verdict = store.verify()
        assert verdict.problems == [] and verdict.rows["served_scores"] == 2
        assert store.served("old")["features"] == {"x": 0.1}
        assert store.served(f"{2:016x}")["features"] == features_of(2)
    finally:
        store.close()


def _legacy_hash() -> str:
    from serving.store.chain import row_hash

    return row_hash("", [1, "old", "S1", date(2026, 1, 5), "seller-risk", "7", "h", "p", 0.5, '{"x": 0.1}',
                         datetime(2026, 1, 6, 9, tzinfo=UTC)])


def _set_aside_triggers(engine, table: str) -> None:
    """Drop (SQLite) or disable (PostgreSQL) a table's triggers, as someone with the file would."""
    from serving.store.chain import TRIGGERS

    with engine.begin() as con:
        for name in TRIGGERS[engine.dialect.name]:
            if name.startswith(table + "_no"):
                con.execute(text(f"DROP TRIGGER {name}" if engine.dialect.name == "sqlite"
                                 else f"ALTER TABLE {table} DISABLE TRIGGER {name}"))


def test_a_reply_waits_for_its_committed_row_and_queued_calls_share_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    url = f"sqlite:///{path}"
    Store.open(url).close()
    audit = ServedAudit(url, within_s=3.0)
    audit.write([served(0, 0)])  # opened, as after the first request
    commits = []
    event.listen(audit._store.engine, "commit", lambda _conn: commits.append(1))
    seen_when_resolved: dict[int, bool] = {}

    def committed(record: int) -> bool:  # another connection, as another process would read
        with sqlite3.connect(path) as con:
            return con.execute("SELECT 1 FROM served_scores WHERE record_id = ?", (f"{record:016x}",)).fetchone() is not None

    async def calls() -> list[str | None]:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # a slow commit elsewhere: the calls queue behind it
        futures = []
        for i in range(1, 7):
            future = audit.submit([served(i, i)])
            future.add_done_callback(lambda _f, i=i: seen_when_resolved.__setitem__(i, committed(i)))
            futures.append(future)
            await asyncio.sleep(0.01)
        holder.execute("ROLLBACK")
        holder.close()
        return await asyncio.gather(*(ServedAudit.wait([f]) for f in futures))

    try:
        assert asyncio.run(calls()) == [None] * 6
    finally:
        audit.close()
    assert seen_when_resolved == {i: True for i in range(1, 7)}
    assert len(commits) <= 2, commits  # the first call waited for the lock; the other five queued behind it
