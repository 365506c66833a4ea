"""Retention of the served records' audit: `audit archive` moves the records older than the retention to
Parquet files (real ones, every column, values bit for bit), the chain stays verifiable across the cut and
across the files, a record archived can still be found for replay, an edited archive file is found, and an
archive interrupted (the database locked when the rows would go, or the process killed after the file was
written) leaves every row in the database and no file the next run does not clear."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from serving.store.store import Store
from tests.serving.console.conftest import db_url, postgres_cluster  # noqa: F401  (both backends)
from tests.serving.test_audit_compact import features_of, served

NOW = datetime.now(UTC).replace(microsecond=0)


def _history(store: Store) -> None:
    """30 records served 120 to 91 days ago (sellers 0-9), then 10 served today, two of them sellers whose
    values the old records share."""
    store.log_served([served(i, i % 10, served_at=NOW - timedelta(days=120 - i)) for i in range(30)])
    store.log_served([served(30 + i, i + 8, served_at=NOW) for i in range(10)])


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_archive_moves_old_records_to_parquet_and_the_chain_verifies_across_the_cut(db_url: str,  # noqa: F811
                                                                                   tmp_path: Path) -> None:
    store = Store.open(db_url)
    folder = tmp_path / "audit"
    try:
        _history(store)
        head = store.verify().heads["served_scores"]
        made = store.archive_served(NOW - timedelta(days=90), folder, most_rows=20)
        assert [(a.first_id, a.last_id, a.rows) for a in made] == [(1, 20, 20), (21, 30, 10)]
        assert _files(folder) == ["served_scores-000000000001-000000000020.parquet",
                                  "served_scores-000000000021-000000000030.parquet"]
        verdict = store.verify(archives=True)
        assert verdict.problems == [] and verdict.heads["served_scores"] == head
        assert verdict.rows["served_scores"] == 10 and verdict.archived["served_scores"] == 30
        table = pq.read_table(folder / _files(folder)[0])
        assert table.num_rows == 20 and table.column("record_id").to_pylist()[3] == f"{3:016x}"
        first = store.served(f"{3:016x}")  # from the archive file: what replay reads
        assert first["features"] == features_of(3) and first["risk_score"].hex() == (1 / 6).hex()
        assert first["served_at"] == NOW - timedelta(days=117)
        with store.engine.connect() as con:
            kept = con.execute(text("SELECT COUNT(*) FROM served_features")).scalar()
            names = con.execute(text("SELECT COUNT(*) FROM served_feature_names")).scalar()
        assert (kept, names) == (10, 1)  # sellers 8 and 9 are still named by today's records, 0-7 went
        store.log_served([served(40, 1)])  # the chain carries on after the cut
        assert store.verify(archives=True).problems == []
        assert store.archive_served(NOW - timedelta(days=90), folder) == []  # nothing older left
    finally:
        store.close()


def test_an_edited_archive_file_or_a_row_removed_after_the_cut_is_found(tmp_path: Path) -> None:
    url, folder = f"sqlite:///{tmp_path / 'console.db'}", tmp_path / "audit"
    store = Store.open(url)
    try:
        _history(store)
        (made,) = store.archive_served(NOW - timedelta(days=90), folder)
        table = pq.read_table(made.file)
        scores = table.column("risk_score").to_pylist()
        scores[5] = 0.0
        pq.write_table(table.set_column(table.schema.get_field_index("risk_score"), "risk_score",
                                        [scores]), made.file)
        assert store.verify().problems == []  # the database alone still chains from the checkpoint
        problems = store.verify(archives=True).problems
        assert problems == [f"served_scores archive 1: {made.file} is not the file archived (its sha256 differs)"]
        with store.engine.begin() as con:
            con.execute(text("DROP TRIGGER served_scores_no_delete"))
            con.execute(text("DELETE FROM served_scores WHERE id = 31"))
        assert "served_scores row 31 missing (deleted): the chain jumps from row 30 to 32" in store.verify().problems
    finally:
        store.close()


def test_an_archive_that_cannot_delete_its_rows_keeps_them_all_and_leaves_no_file(tmp_path: Path) -> None:
    path, folder = tmp_path / "console.db", tmp_path / "audit"
    url = f"sqlite:///{path}"
    Store.open(url).close()
    store = Store.open(url, lock_wait_s=0.2)
    try:
        _history(store)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the database as the rows would go
        try:
            with pytest.raises(OperationalError, match="locked"):
                store.archive_served(NOW - timedelta(days=90), folder)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert _files(folder) == []
        verdict = store.verify(archives=True)
        assert verdict.problems == [] and verdict.rows["served_scores"] == 40 and verdict.archived["served_scores"] == 0
        assert len(store.archive_served(NOW - timedelta(days=90), folder)) == 1  # and the next run does it
        assert store.verify(archives=True).problems == []
    finally:
        store.close()


def test_what_a_killed_archive_left_is_cleared_by_the_next_run(tmp_path: Path) -> None:
    from serving.store.archive import file_name, write_atomically

    url, folder = f"sqlite:///{tmp_path / 'console.db'}", tmp_path / "audit"
    store = Store.open(url)
    try:
        _history(store)
        # killed after its file was renamed into place (no checkpoint yet), and another while writing one
        write_atomically(pa.table({"id": list(range(1, 26))}), folder / file_name(1, 25))
        (folder / f".{file_name(1, 30)}.x1y2.tmp").write_bytes(b"PAR1 half")
        assert store.verify().problems == [] and store.verify().rows["served_scores"] == 40
        (made,) = store.archive_served(NOW - timedelta(days=90), folder)
        assert _files(folder) == [file_name(1, 30)] and made.rows == 30
        assert store.verify(archives=True).problems == []
    finally:
        store.close()


def test_the_archive_command_uses_the_retention_setting_and_verify_walks_the_files(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    from serving.main import app

    url, folder = f"sqlite:///{tmp_path / 'console.db'}", tmp_path / "kept"
    store = Store.open(url)
    try:
        _history(store)
    finally:
        store.close()
    monkeypatch.setenv("SELLER_RISK_AUDIT_RETENTION_DAYS", "100")
    monkeypatch.setenv("SELLER_RISK_AUDIT_ARCHIVE", str(folder))
    result = CliRunner().invoke(app, ["audit", "archive", "--db", url])
    assert result.exit_code == 0, result.output
    assert "records archived" in result.output and "21" in result.output  # served 120 to 101 days ago
    assert _files(folder) == ["served_scores-000000000001-000000000021.parquet"]
    result = CliRunner().invoke(app, ["audit", "verify", "--archives", "--db", url])
    assert result.exit_code == 0, result.output
    assert "served_scores: 19 rows intact in order after 21 archived" in result.output
