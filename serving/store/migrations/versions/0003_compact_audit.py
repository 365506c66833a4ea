"""A compact audit with retention: each distinct set of served feature values is kept once
(`served_features`: the values in order, named by a digest; their names once per list,
`served_feature_names`) and a served record names it (`served_scores.features_digest`) instead of
carrying 82 names and values; `audit_archives` records each cut of
a chain moved to Parquet by `audit archive`. served_scores still refuses DELETE, except of rows an
archive checkpoint already covers; served_features refuses UPDATE, and DELETE of values a served
record still names; audit_archives is append-only. Rows written before stay as they are (their
features in place, their hashes unchanged).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SERVED = "served_scores is the audit of served records: it is append-only"
FEATURES = "served_features holds the values of served records: it is append-only"
NAMES = "served_feature_names holds the names of served feature values: it is append-only"
ARCHIVES = "audit_archives is the record of archived audit rows: it is append-only"
ARCHIVED = "(SELECT COALESCE(MAX(last_id), 0) FROM audit_archives WHERE chain = 'served_scores')"
"""The last served record an archive covers: rows up to it may be deleted, no others."""


def upgrade() -> None:
    with op.batch_alter_table("served_scores", recreate="never") as batch:
        batch.add_column(sa.Column("features_digest", sa.String(64), nullable=True))
    op.create_index("ix_served_scores_features_digest", "served_scores", ["features_digest"])
    op.create_table(
        "served_features",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("names_digest", sa.String(64), nullable=False),
        sa.Column("feature_values", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_served_features"),
    )
    op.create_table(
        "served_feature_names",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("names", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_served_feature_names"),
    )
    op.create_table(
        "audit_archives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(32), nullable=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("served_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("served_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_archives"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def _sqlite_triggers() -> None:
    op.execute("DROP TRIGGER served_scores_no_delete")
    op.execute(f"CREATE TRIGGER served_scores_no_delete BEFORE DELETE ON served_scores WHEN OLD.id > {ARCHIVED} "
               f"BEGIN SELECT RAISE(ABORT, '{SERVED} (DELETE refused: the row is not archived)'); END")
    op.execute("CREATE TRIGGER served_features_no_update BEFORE UPDATE ON served_features "
               f"BEGIN SELECT RAISE(ABORT, '{FEATURES} (UPDATE refused)'); END")
    op.execute("CREATE TRIGGER served_features_no_delete BEFORE DELETE ON served_features "
               "WHEN EXISTS (SELECT 1 FROM served_scores WHERE features_digest = OLD.digest) "
               f"BEGIN SELECT RAISE(ABORT, '{FEATURES} (DELETE refused: a served record names them)'); END")
    op.execute("CREATE TRIGGER served_features_no_replace BEFORE INSERT ON served_features "
               "WHEN EXISTS (SELECT 1 FROM served_features WHERE digest = NEW.digest) "
               f"BEGIN SELECT RAISE(ABORT, '{FEATURES} (REPLACE refused)'); END")
    op.execute("CREATE TRIGGER served_feature_names_no_update BEFORE UPDATE ON served_feature_names "
               f"BEGIN SELECT RAISE(ABORT, '{NAMES} (UPDATE refused)'); END")
    op.execute("CREATE TRIGGER served_feature_names_no_delete BEFORE DELETE ON served_feature_names "
               "WHEN EXISTS (SELECT 1 FROM served_features WHERE names_digest = OLD.digest) "
               f"BEGIN SELECT RAISE(ABORT, '{NAMES} (DELETE refused: served values name them)'); END")
    op.execute("CREATE TRIGGER served_feature_names_no_replace BEFORE INSERT ON served_feature_names "
               "WHEN EXISTS (SELECT 1 FROM served_feature_names WHERE digest = NEW.digest) "
               f"BEGIN SELECT RAISE(ABORT, '{NAMES} (REPLACE refused)'); END")
    for event in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER audit_archives_no_{event.lower()} BEFORE {event} ON audit_archives "
                   f"BEGIN SELECT RAISE(ABORT, '{ARCHIVES} ({event} refused)'); END")
    op.execute("CREATE TRIGGER audit_archives_no_replace BEFORE INSERT ON audit_archives "
               "WHEN EXISTS (SELECT 1 FROM audit_archives WHERE id = NEW.id) "
               f"BEGIN SELECT RAISE(ABORT, '{ARCHIVES} (REPLACE refused)'); END")


def _postgres_triggers() -> None:
    op.execute(f"""
        CREATE OR REPLACE FUNCTION served_scores_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND OLD.id <= {ARCHIVED} THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION '{SERVED} (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
        END
        $$""")
    op.execute(f"""
        CREATE FUNCTION served_features_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM served_scores WHERE features_digest = OLD.digest) THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION '{FEATURES} (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
        END
        $$""")
    op.execute(f"""
        CREATE FUNCTION served_feature_names_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM served_features WHERE names_digest = OLD.digest) THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION '{NAMES} (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
        END
        $$""")
    op.execute(f"""
        CREATE FUNCTION audit_archives_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{ARCHIVES} (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
        END
        $$""")
    for table in ("served_features", "served_feature_names", "audit_archives"):
        op.execute(f"CREATE TRIGGER {table}_no_update_or_delete BEFORE UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()")


def downgrade() -> None:
    """Back to 0002, which keeps every record's values in its own row: refused once a record names values
    in served_features or an archive has cut the chain (0002 could not read or verify those)."""
    bind = op.get_bind()
    kept = bind.execute(sa.text("SELECT (SELECT COUNT(*) FROM served_features) + (SELECT COUNT(*) FROM audit_archives)"))
    if kept.scalar():
        raise RuntimeError("cannot downgrade below revision 0003: served records keep their features in "
                           "served_features, or archives cut the served records' chain")
    if bind.dialect.name == "postgresql":
        for table in ("served_features", "served_feature_names", "audit_archives"):
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_update_or_delete ON {table}")
            op.execute(f"DROP FUNCTION {table}_append_only()")
        op.execute(f"""
            CREATE OR REPLACE FUNCTION served_scores_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{SERVED} (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
            END
            $$""")
    else:
        for name in ("served_features_no_update", "served_features_no_delete", "served_features_no_replace",
                     "served_feature_names_no_update", "served_feature_names_no_delete",
                     "served_feature_names_no_replace",
                     "audit_archives_no_update", "audit_archives_no_delete", "audit_archives_no_replace",
                     "served_scores_no_delete"):
            op.execute(f"DROP TRIGGER {name}")
        op.execute("CREATE TRIGGER served_scores_no_delete BEFORE DELETE ON served_scores "
                   f"BEGIN SELECT RAISE(ABORT, '{SERVED} (DELETE refused)'); END")
    op.drop_table("audit_archives")
    op.drop_table("served_feature_names")
    op.drop_table("served_features")
    op.drop_index("ix_served_scores_features_digest", "served_scores")
    with op.batch_alter_table("served_scores", recreate="never") as batch:
        batch.drop_column("features_digest")
