"""Security and audit: roles and sign-in locks on accounts, server-side console sessions, every sign-in
attempt, and tamper-evident chains on decisions and served records (prev_hash and row_hash on each row,
back-filled in id order for the rows already there, and a chain head per table). served_scores becomes
append-only like decisions, and on SQLite a REPLACE (which deletes without firing delete triggers) is
refused on both tables. Existing accounts become reviewers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from serving.store.chain import row_hash
from serving.store.db import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

REFUSAL = {"decisions": "decisions are append-only: record a correction (a new decision pointing at this one) instead",
           "served_scores": "served_scores is the audit of served records: it is append-only"}
CONTENT = {  # frozen here: what the hashes cover at this revision, typed to read back as the store writes
    "decisions": [sa.column("id", sa.Integer()), sa.column("record_id", sa.String()), sa.column("seller_id", sa.String()),
                  sa.column("as_of", sa.Date()), sa.column("model_name", sa.String()),
                  sa.column("model_version", sa.String()), sa.column("feature_spec_hash", sa.String()),
                  sa.column("risk_score", sa.Double()), sa.column("action", sa.String()), sa.column("note", sa.Text()),
                  sa.column("reviewer", sa.String()), sa.column("decided_at", UtcDateTime()),
                  sa.column("corrects_id", sa.Integer())],
    "served_scores": [sa.column("id", sa.Integer()), sa.column("record_id", sa.String()),
                      sa.column("seller_id", sa.String()), sa.column("as_of", sa.Date()),
                      sa.column("model_name", sa.String()), sa.column("model_version", sa.String()),
                      sa.column("feature_spec_hash", sa.String()), sa.column("policy_version", sa.String()),
                      sa.column("risk_score", sa.Double()), sa.column("features", sa.Text()),
                      sa.column("served_at", UtcDateTime())],
}


def upgrade() -> None:
    with op.batch_alter_table("reviewers", recreate="never") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="reviewer"))
        batch.add_column(sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True))
    for table in CONTENT:
        with op.batch_alter_table(table, recreate="never") as batch:
            batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=False, server_default=""))
            batch.add_column(sa.Column("row_hash", sa.String(64), nullable=False, server_default=""))
    _create_tables()
    _back_fill_chains()
    _append_only()


def _create_tables() -> None:
    op.create_table(
        "audit_chain_heads",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_audit_chain_heads"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_console_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_console_sessions_token_hash"),
        sa.ForeignKeyConstraint(["username"], ["reviewers.username"], name="fk_console_sessions_username_reviewers"),
    )
    op.create_index("ix_console_sessions_username", "console_sessions", ["username"])
    op.create_table(
        "signin_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signin_attempts"),
    )
    for column in ("at", "username", "address"):
        op.create_index(f"ix_signin_attempts_{column}", "signin_attempts", [column])


def _back_fill_chains() -> None:
    """Hash the rows already there in id order (the decisions trigger set aside meanwhile), and start
    each chain's head."""
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE decisions DISABLE TRIGGER decisions_no_update_or_delete")
    else:
        op.execute("DROP TRIGGER decisions_no_update")
    for name, columns in CONTENT.items():
        table = sa.table(name, *columns, sa.column("prev_hash", sa.String()), sa.column("row_hash", sa.String()))
        prev, last_id = "", 0
        for row in bind.execute(sa.select(*columns).order_by(table.c.id)).all():
            digest = row_hash(prev, row)
            bind.execute(table.update().where(table.c.id == row.id).values(prev_hash=prev, row_hash=digest))
            prev, last_id = digest, row.id
        bind.execute(sa.text("INSERT INTO audit_chain_heads (name, last_id, last_hash) VALUES (:n, :i, :h)"),
                     {"n": name, "i": last_id, "h": prev})
    if postgres:
        op.execute("ALTER TABLE decisions ENABLE TRIGGER decisions_no_update_or_delete")
    else:
        op.execute(f"CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions "
                   f"BEGIN SELECT RAISE(ABORT, '{REFUSAL['decisions']} (UPDATE refused)'); END")


def _append_only() -> None:
    """served_scores refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL, whose INSERT ... ON CONFLICT DO
    UPDATE fires the UPDATE trigger); on SQLite both tables refuse an INSERT over an existing id, which is
    what INSERT OR REPLACE and REPLACE do."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION served_scores_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{REFUSAL['served_scores']} (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
            END
            $$""")
        op.execute("CREATE TRIGGER served_scores_no_update_or_delete BEFORE UPDATE OR DELETE ON served_scores "
                   "FOR EACH ROW EXECUTE FUNCTION served_scores_append_only()")
        op.execute("CREATE TRIGGER served_scores_no_truncate BEFORE TRUNCATE ON served_scores "
                   "FOR EACH STATEMENT EXECUTE FUNCTION served_scores_append_only()")
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER served_scores_no_{event.lower()} BEFORE {event} ON served_scores "
                   f"BEGIN SELECT RAISE(ABORT, '{REFUSAL['served_scores']} ({event} refused)'); END")
    for table in CONTENT:
        op.execute(f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                   f"WHEN EXISTS (SELECT 1 FROM {table} WHERE id = NEW.id) "
                   f"BEGIN SELECT RAISE(ABORT, '{REFUSAL[table]} (REPLACE refused)'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER served_scores_no_truncate ON served_scores")
        op.execute("DROP TRIGGER served_scores_no_update_or_delete ON served_scores")
        op.execute("DROP FUNCTION served_scores_append_only()")
    else:
        for name in ("served_scores_no_update", "served_scores_no_delete", "served_scores_no_replace",
                     "decisions_no_replace"):
            op.execute(f"DROP TRIGGER {name}")
    for column in ("at", "username", "address"):
        op.drop_index(f"ix_signin_attempts_{column}", "signin_attempts")
    op.drop_table("signin_attempts")
    op.drop_index("ix_console_sessions_username", "console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("audit_chain_heads")
    for table in CONTENT:
        with op.batch_alter_table(table, recreate="never") as batch:
            batch.drop_column("row_hash")
            batch.drop_column("prev_hash")
    with op.batch_alter_table("reviewers", recreate="never") as batch:
        for column in ("cleared_at", "locked_at", "role"):
            batch.drop_column(column)
