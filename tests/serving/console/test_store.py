"""The console's store on a real database, the same tests on SQLite and on PostgreSQL: accounts and
sign-in, decisions bound to a score record, append-only history (corrections are new rows, the
database itself refuses UPDATE and DELETE), decisions that survive a restart, the audit of served
records bit for bit, and the export command's Parquet table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from serving.store.db import ReviewerRow
from serving.store.store import ACTIONS, DECISION_COLUMNS, DecisionRefused, RecordRef, ReviewerRefused, Store

PASSWORD = "correct horse battery"
QUICK = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""argon2id with small costs, for the tests about something else than the hash (the defaults take ~0.3 s a hash)."""
WEEK = date(2025, 3, 3)


def ref(seller: str = "S0000042", as_of: date = WEEK, score: float = 0.1 + 0.2, record: str | None = None) -> RecordRef:
    return RecordRef(f"rec-{seller}-{as_of}" if record is None else record, seller, as_of, "seller-risk", "7", "spec-abc123", score)


@pytest.fixture()
def store(db_url: str):
    s = Store.open(db_url, QUICK)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture()
def team(store: Store) -> Store:
    store.add_reviewer("alice", PASSWORD, "Alice Martin")
    store.add_reviewer("bob.k", PASSWORD)
    return store


def test_a_reviewer_signs_in_with_their_password_and_only_its_argon2_hash_is_kept(db_url: str) -> None:
    store = Store.open(db_url)  # the library's default parameters, as in production
    try:
        before = datetime.now(UTC)
        added = store.add_reviewer("alice", PASSWORD, "Alice Martin")
        assert (added.username, added.display_name) == ("alice", "Alice Martin")
        assert added.created_at.tzinfo is not None and before <= added.created_at <= datetime.now(UTC)
        assert store.authenticate("alice", PASSWORD) == added
        assert store.authenticate("alice", PASSWORD + "!") is None
        assert store.authenticate("alice", "") is None
        assert store.authenticate("nobody", PASSWORD) is None
        with store.engine.connect() as conn:
            stored = conn.execute(select(ReviewerRow.password_hash)).scalar_one()
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and PASSWORD not in stored
        assert store.reviewers() == [added]
    finally:
        store.close()


def test_account_rules_name_the_field_they_break(store: Store) -> None:
    for bad in ("Alice", "", "a b", "x" * 65, "al/ice", "élise"):
        with pytest.raises(ReviewerRefused, match="username"):
            store.add_reviewer(bad, PASSWORD)
    with pytest.raises(ReviewerRefused, match="password: at least 8 characters"):
        store.add_reviewer("alice", "short")
    assert store.add_reviewer("a.l-i_c3", PASSWORD).display_name == "a.l-i_c3"
    with pytest.raises(ReviewerRefused, match="username 'a.l-i_c3': taken"):
        store.add_reviewer("a.l-i_c3", "another password")
    assert [r.username for r in store.reviewers()] == ["a.l-i_c3"]


def test_a_decision_is_bound_to_its_score_record_and_reads_back_field_for_field(team: Store) -> None:
    record = ref()
    before = datetime.now(UTC)
    made = team.record_decision(record, "alice", "contact_seller", "Late deliveries: <script>alert(1)</script> called")
    for field in ("record_id", "seller_id", "as_of", "model_name", "model_version", "feature_spec_hash", "risk_score"):
        assert getattr(made, field) == getattr(record, field), field
    assert made.risk_score == 0.1 + 0.2  # bit for bit, not 0.3
    assert (made.action, made.note, made.reviewer, made.corrects) == (
        "contact_seller", "Late deliveries: <script>alert(1)</script> called", "alice", None)
    assert made.decided_at.tzinfo is not None and made.decided_at.utcoffset() == timedelta(0)
    assert before <= made.decided_at <= datetime.now(UTC)
    assert team.decisions_for_seller(record.seller_id) == [made]
    assert team.decision(made.id) == made
    assert team.decisions_for_seller("S9999999") == []


def test_a_correction_is_a_new_row_pointing_at_the_old_one_which_stays_as_it_was(team: Store) -> None:
    first = team.record_decision(ref(), "alice", "contact_seller", "first look")
    correction = team.record_decision(ref(), "alice", "formal_warning", "missed the refund rate", corrects=first.id)
    assert correction.id != first.id and correction.corrects == first.id
    assert team.decision(first.id) == first  # unchanged, every field
    assert team.decisions_for_seller(first.seller_id) == [correction, first]  # newest first
    again = team.record_decision(ref(), "alice", "escalate", "and again", corrects=correction.id)
    assert again.corrects == correction.id
    with pytest.raises(DecisionRefused, match=f"already corrected by decision {correction.id}"):
        team.record_decision(ref(), "alice", "no_action", "fork the history", corrects=first.id)
    with pytest.raises(DecisionRefused, match="no decision 999"):
        team.record_decision(ref(), "alice", "no_action", "", corrects=999)
    with pytest.raises(DecisionRefused, match="is on seller 'S0000042', not 'S0000043'"):
        team.record_decision(ref("S0000043"), "alice", "no_action", "", corrects=again.id)
    assert len(team.decisions_for_seller(first.seller_id)) == 3


def test_only_the_reviewer_who_made_a_decision_may_correct_it(team: Store) -> None:
    first = team.record_decision(ref(), "alice", "contact_seller", "")
    with pytest.raises(DecisionRefused, match="decision .* was made by 'alice'; only they may correct it, not 'bob.k'"):
        team.record_decision(ref(), "bob.k", "no_action", "not mine to change", corrects=first.id)
    assert team.decisions_for_seller(first.seller_id) == [first]


def test_a_decision_is_refused_with_the_reason(team: Store) -> None:
    with pytest.raises(DecisionRefused, match="action 'suspend': not one of " + ", ".join(ACTIONS)):
        team.record_decision(ref(), "alice", "suspend", "")
    with pytest.raises(DecisionRefused, match="reviewer: empty"):
        team.record_decision(ref(), " ", "no_action", "")
    with pytest.raises(DecisionRefused, match="reviewer 'carol': no such account"):
        team.record_decision(ref(), "carol", "no_action", "")
    with pytest.raises(DecisionRefused, match="record record_id: empty"):
        team.record_decision(ref(record=""), "alice", "no_action", "")
    with pytest.raises(DecisionRefused, match="record risk_score: nan is not a probability"):
        team.record_decision(ref(score=float("nan")), "alice", "no_action", "")
    assert team.decisions_frame().empty


@pytest.mark.parametrize("statement", ["UPDATE decisions SET action = 'no_action', note = 'rewritten'",
                                       "DELETE FROM decisions"])
def test_the_database_refuses_to_rewrite_a_decision_even_by_hand(team: Store, statement: str) -> None:
    made = team.record_decision(ref(), "alice", "escalate", "as made")
    with pytest.raises(DBAPIError, match="decisions are append-only"):
        with team.engine.begin() as conn:
            conn.execute(text(statement))
    if team.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="decisions are append-only"):
            with team.engine.begin() as conn:
                conn.execute(text("TRUNCATE decisions"))
    assert team.decisions_for_seller(made.seller_id) == [made]


def test_decisions_survive_closing_and_reopening_the_store(db_url: str) -> None:
    first = Store.open(db_url)
    first.add_reviewer("alice", PASSWORD)
    made = first.record_decision(ref(), "alice", "formal_warning", "before the restart")
    first.close()
    again = Store.open(db_url)  # migrations already at head: nothing to do
    try:
        assert again.decisions_for_seller(made.seller_id) == [made]
        assert again.authenticate("alice", PASSWORD) is not None
        assert again.record_decision(ref(), "alice", "escalate", "after", corrects=made.id).corrects == made.id
    finally:
        again.close()


def test_decisions_by_week_and_as_one_frame(team: Store) -> None:
    earlier = WEEK - timedelta(days=7)
    a = team.record_decision(ref("S1", earlier), "alice", "no_action", "")
    b = team.record_decision(ref("S1", WEEK), "bob.k", "contact_seller", "")
    c = team.record_decision(ref("S2", WEEK, score=0.9), "alice", "escalate", "")
    d = team.record_decision(ref("S2", WEEK, score=0.9), "alice", "formal_warning", "", corrects=c.id)
    assert team.decisions_for_week(WEEK) == [b, c, d]
    assert team.decisions_for_week(earlier) == [a]
    assert team.decisions_for_week(date(2024, 1, 1)) == []
    frame = team.decisions_frame()
    assert list(frame.columns) == list(DECISION_COLUMNS)
    assert _rows(frame) == [_plain(x) for x in (a, b, c, d)]
    assert str(frame["decided_at"].dtype) == "datetime64[us, UTC]" and str(frame["corrects"].dtype) == "Int64"


def test_served_records_come_back_with_their_features_bit_for_bit(store: Store) -> None:
    tiny = 5e-324  # the smallest subnormal double
    features = {"cancellation_rate_30d": 0.1 + 0.2, "on_time_rate": np.float64(1 / 3), "orders_30d": np.int64(41),
                "late_rate": np.float32(0.1), "tiny": tiny, "refund_rate_30d": None, "category": "electronics",
                "huge": 1.7976931348623157e308}
    served_at = datetime(2025, 3, 4, 12, 30, 15, 123456, tzinfo=UTC)
    row = {"record_id": "rec-1", "seller_id": "S0000042", "as_of": WEEK, "model_name": "seller-risk",
           "model_version": "7", "feature_spec_hash": "spec-abc123", "policy_version": "walmart-us-2026",
           "risk_score": 0.1 + 0.2, "features": features, "served_at": served_at}
    store.log_served([row, {**row, "record_id": "rec-2", "as_of": "2025-03-03", "served_at": None}])
    got = store.served("rec-1")
    assert got == {**row, "features": {**features, "late_rate": float(np.float32(0.1)), "orders_30d": 41}}
    assert got["risk_score"].hex() == (0.1 + 0.2).hex()
    assert got["features"]["cancellation_rate_30d"].hex() == (0.1 + 0.2).hex()
    assert got["features"]["tiny"] == tiny and got["features"]["late_rate"] == np.float32(0.1)
    assert store.served("rec-2")["as_of"] == WEEK and store.served("rec-2")["served_at"] > served_at
    assert store.served("rec-unknown") is None
    later = {**row, "risk_score": 0.5, "served_at": served_at + timedelta(hours=1)}
    store.log_served([later])
    assert store.served("rec-1")["risk_score"] == 0.5  # served twice: the latest
    with pytest.raises(ValueError, match="missing features"):
        store.log_served([{**row, "features": None}])


def test_accounts_commands_add_and_list_reviewers(db_url: str) -> None:
    from serving.store.cli import accounts

    runner = CliRunner()
    added = runner.invoke(accounts, ["add", "carol", "--name", "Carol Diaz", "--password-stdin", "--db", db_url],
                          input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "carol" in added.output and "Carol Diaz" in added.output and PASSWORD not in added.output
    prompted = runner.invoke(accounts, ["add", "dan", "--db", db_url], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0, prompted.output
    refused = runner.invoke(accounts, ["add", "Eve", "--password-stdin", "--db", db_url], input=PASSWORD + "\n")
    assert refused.exit_code == 2 and "username 'Eve'" in refused.output
    short = runner.invoke(accounts, ["add", "eve", "--password-stdin", "--db", db_url], input="short\n")
    assert short.exit_code == 2 and "password: at least 8 characters" in short.output
    listed = runner.invoke(accounts, ["list", "--db", db_url])
    assert listed.exit_code == 0 and "Carol Diaz" in listed.output and "dan" in listed.output
    store = Store.open(db_url)
    try:
        assert store.authenticate("carol", PASSWORD) is not None and store.authenticate("dan", PASSWORD) is not None
    finally:
        store.close()


def test_export_writes_every_decision_as_parquet_keyed_by_seller_and_week(team: Store, db_url: str, tmp_path: Path) -> None:
    from serving.store.cli import decisions

    made = [team.record_decision(ref("S2", WEEK), "alice", "escalate", "note, with \"quotes\""),
            team.record_decision(ref("S1", WEEK - timedelta(days=7)), "bob.k", "no_action", "")]
    made.append(team.record_decision(ref("S2", WEEK), "alice", "formal_warning", "", corrects=made[0].id))
    out = tmp_path / "exports" / "decisions.parquet"
    result = CliRunner().invoke(decisions, ["export", "--db", db_url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3" in result.output and str(out.name) in result.output
    assert [p.name for p in out.parent.iterdir()] == ["decisions.parquet"]  # no temporary file left
    table = pq.read_table(out)
    assert table.schema.names[:2] == ["seller_id", "as_of"] and str(table.schema.field("as_of").type) == "date32[day]"
    expected = sorted((_plain(d) for d in made), key=lambda r: (r["seller_id"], r["as_of"], r["id"]))
    assert _rows(table.to_pandas()[list(DECISION_COLUMNS)]) == expected
    again = CliRunner().invoke(decisions, ["export", "--db", db_url, "--out", str(out)])  # replaces the file whole
    assert again.exit_code == 0 and pq.read_table(out).num_rows == 3


def _plain(decision) -> dict:
    """A decision as the frame and the export hold it."""
    row = dict(decision.__dict__)
    row["decided_at"] = pd.Timestamp(row["decided_at"])
    return row


def _rows(frame: pd.DataFrame) -> list[dict]:
    return [{k: _na(v) for k, v in r.items()} for r in frame.to_dict("records")]


def _na(value):
    return None if value is pd.NA or (isinstance(value, float) and value != value) else value
