"""The console's first tables: reviewers, their append-only decisions, and the audit of served
score records. A trigger refuses UPDATE and DELETE on decisions on both backends, so even a
statement typed by hand cannot rewrite a decision: a correction is a new row.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ACTIONS = ("no_action", "contact_seller", "formal_warning", "escalate")  # frozen here: a later revision changes it
REFUSAL = "decisions are append-only: record a correction (a new decision pointing at this one) instead"


def upgrade() -> None:
    _create_reviewers()
    _create_decisions()
    _create_served_scores()
    _make_decisions_append_only()


def _create_reviewers() -> None:
    op.create_table(
        "reviewers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reviewers"),
        sa.UniqueConstraint("username", name="uq_reviewers_username"),
    )


def _create_decisions() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("seller_id", sa.String(128), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("feature_spec_hash", sa.String(128), nullable=False),
        sa.Column("risk_score", sa.Double(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("corrects_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        sa.ForeignKeyConstraint(["reviewer"], ["reviewers.username"], name="fk_decisions_reviewer_reviewers"),
        sa.ForeignKeyConstraint(["corrects_id"], ["decisions.id"], name="fk_decisions_corrects_id_decisions"),
        sa.UniqueConstraint("corrects_id", name="uq_decisions_corrects_id"),
        sa.CheckConstraint("action IN (" + ", ".join(f"'{a}'" for a in ACTIONS) + ")", name="ck_decisions_action"),
    )
    for column in ("record_id", "seller_id", "as_of", "reviewer"):
        op.create_index(f"ix_decisions_{column}", "decisions", [column])


def _create_served_scores() -> None:
    op.create_table(
        "served_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("seller_id", sa.String(128), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("feature_spec_hash", sa.String(128), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("risk_score", sa.Double(), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_served_scores"),
    )
    for column in ("record_id", "seller_id"):
        op.create_index(f"ix_served_scores_{column}", "served_scores", [column])


def _make_decisions_append_only() -> None:
    """A trigger refuses UPDATE and DELETE on decisions (and TRUNCATE on PostgreSQL)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{REFUSAL} (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
            END
            $$""")
        op.execute("CREATE TRIGGER decisions_no_update_or_delete BEFORE UPDATE OR DELETE ON decisions "
                   "FOR EACH ROW EXECUTE FUNCTION decisions_append_only()")
        op.execute("CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions "
                   "FOR EACH STATEMENT EXECUTE FUNCTION decisions_append_only()")
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER decisions_no_{event.lower()} BEFORE {event} ON decisions "
                       f"BEGIN SELECT RAISE(ABORT, '{REFUSAL} ({event} refused)'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER decisions_no_truncate ON decisions")
        op.execute("DROP TRIGGER decisions_no_update_or_delete ON decisions")
        op.execute("DROP FUNCTION decisions_append_only()")
    else:
        op.execute("DROP TRIGGER decisions_no_delete")
        op.execute("DROP TRIGGER decisions_no_update")
    op.drop_table("served_scores")
    op.drop_table("decisions")
    op.drop_table("reviewers")
