"""The audit write keeps within the request's time: a database another writer keeps locked is a 503
naming it (AuditUnavailable) well before the request would time out, and the record of a reply that
was never sent is never written, not even once the lock clears."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from serving.api.audit import AuditUnavailable, ServedAudit
from serving.store.store import Store


def _row(record_id: str) -> dict:
    return {"record_id": record_id, "seller_id": "S1", "as_of": None, "model_name": "seller-risk", "model_version": "1",
            "feature_spec_hash": "h", "policy_version": "p", "risk_score": 0.25, "features": {"orders_7d": 3.0}}


@pytest.fixture
def db(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "console.db"
    url = f"sqlite:///{path}"
    Store.open(url).close()  # the tables, as `seller-risk serve` finds them
    return url, path


def _locked(path: Path) -> sqlite3.Connection:
    """Another process's writer holding the database's write lock."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    return con


def test_a_locked_database_is_refused_within_the_write_s_time_naming_it(db) -> None:
    url, path = db
    audit = ServedAudit(url, within_s=1.0)
    holder = _locked(path)
    try:
        started = time.monotonic()
        with pytest.raises(AuditUnavailable) as refused:
            audit.write([_row("r-locked")], deadline=time.monotonic() + audit.within_s)
        took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert took < 0.9, took  # SQLite's default busy timeout (30 s) would outlast any request
    assert str(path) in str(refused.value) and "locked" in str(refused.value) and "\n" not in str(refused.value)
    audit.write([_row("r-after")])
    store = Store.open(url)
    assert store.served("r-locked") is None and store.served("r-after") is not None
    assert store.verify().problems == []
    store.close()
    audit.close()


def test_writes_queued_behind_a_lock_are_refused_not_written_late(db) -> None:
    """Requests whose writes wait in line behind one stuck on the lock all get their 503 in time, and
    none of their records appears after the lock clears."""
    url, path = db
    audit = ServedAudit(url, within_s=1.0)
    audit.write([_row("r-open")])  # opened before the lock, as after the first request

    async def three() -> list[str | None]:
        futures = [audit.submit([_row(f"r-{i}")]) for i in range(3)]
        return await asyncio.gather(*(ServedAudit.wait([f]) for f in futures))

    holder = _locked(path)
    try:
        started = time.monotonic()
        answers = asyncio.run(three())
        took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    audit.close()
    assert all(a and str(path) in a for a in answers), answers
    assert took < 1.2, took
    store = Store.open(url)
    assert [store.served(f"r-{i}") for i in range(3)] == [None, None, None]
    store.close()


def test_the_warm_up_rehearses_a_write_and_keeps_nothing(db) -> None:
    """A worker opens the audit and runs a write's statements before it says ready (rolled back), so the
    first request does not pay for them; the chain is as if it never happened."""
    url, path = db
    audit = ServedAudit(url)
    assert audit.warm_up([_row("r-rehearsed")]) is None
    assert audit._store is not None  # opened before any request
    store = Store.open(url)
    assert store.served("r-rehearsed") is None
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT count(*) FROM served_scores").fetchone() == (0,)
    audit.write([_row("r-served")])
    assert store.served("r-served") is not None and store.verify().problems == []
    store.close()
    audit.close()


def test_a_warm_up_that_cannot_open_the_audit_says_why_and_the_first_write_tries_again(tmp_path: Path) -> None:
    """The worker still starts (its requests get the 503 naming the database until it can be written)."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the database's folder should be")
    audit = ServedAudit(f"sqlite:///{blocked}/console.db")
    why = audit.warm_up([_row("r-1")])
    assert why and "\n" not in why
    with pytest.raises(AuditUnavailable, match="not-a-folder"):
        audit.write([_row("r-1")])
    audit.close()
