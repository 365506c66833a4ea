"""The decisions and audit database: the tables reviewers' accounts, their decisions and the audit of served
score records live in, and how to connect to one. SQLite under data/ is the embedded default
(nothing to start); PostgreSQL, through psycopg 3, when a team outgrows one machine. The tables
are created and changed only by the Alembic migrations beside this module (serving/store/migrations/);
the models here say what the code expects, and a test holds the two equal.

Decisions and served records are append-only and tamper-evident: a correction is a new row pointing at
the one it corrects; triggers refuse UPDATE, DELETE and REPLACE on `decisions` and `served_scores`, so no
statement, the application's or one typed by hand, rewrites history; and each row carries a hash chained to
the row before it (serving.store.chain), so an edit made around the triggers is found by `audit verify`.

Served records are kept compactly: each distinct set of feature values once (`served_features`, named by
a digest; their names once per list, `served_feature_names`), each record naming it; `audit archive` moves records older than the retention to Parquet files
and leaves a checkpoint (`audit_archives`) the chain carries on from.

Console sessions live here too (`console_sessions`, only a hash of each session's id), with every sign-in
attempt (`signin_attempts`)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ACTIONS = ("no_action", "contact_seller", "formal_warning", "escalate")
"""What a reviewer can decide about a seller, mildest first."""

ROLES = ("reviewer", "leader", "administrator")
"""What an account may do: a reviewer works the queue and records decisions; a leader also sees the leader
page and exports; an administrator manages accounts, sessions and locks (and nothing else)."""

SQLITE_BUSY_SECONDS = 30.0
"""How long a SQLite writer waits for another process's write to finish before giving up."""


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in UTC, timezone-aware both ways: written as UTC, read back with tzinfo=UTC even on
    SQLite, which keeps no offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no timezone: the console stores moments in UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names, the same on every backend, so a migration can name what it changes."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ReviewerRow(Base):
    """A person who signs in to the console and records decisions."""

    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    """An argon2id hash (argon2-cffi's PHC string), never the password."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    role: Mapped[str] = mapped_column(String(16), server_default="reviewer")
    """One of ROLES."""
    locked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    """Set after too many failed sign-ins; only an administrator clears it (`accounts unlock`)."""
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    """When an administrator last cleared a lock: failures before it no longer count."""


class DecisionRow(Base):
    """One decision on one score record, as it was made; corrections are new rows."""

    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint("action IN (" + ", ".join(f"'{a}'" for a in ACTIONS) + ")", name="action"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the score record the decision was made on: its id and what makes it reproducible
    record_id: Mapped[str] = mapped_column(String(128), index=True)
    seller_id: Mapped[str] = mapped_column(String(128), index=True)
    as_of: Mapped[date] = mapped_column(Date, index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(64))
    feature_spec_hash: Mapped[str] = mapped_column(String(128))
    risk_score: Mapped[float] = mapped_column(Double)
    # the decision
    action: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(64), ForeignKey("reviewers.username"), index=True)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime())
    corrects_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("decisions.id"), unique=True)
    """The decision this one corrects; unique, so a decision is corrected once and history stays a chain."""
    prev_hash: Mapped[str] = mapped_column(String(64), server_default="")
    row_hash: Mapped[str] = mapped_column(String(64), server_default="")
    """sha256 of prev_hash and the row's content (serving.store.chain): the tamper-evident chain."""


class ServedScoreRow(Base):
    """A score record the HTTP service answered with, and the feature values it was computed from,
    so that it can be found by its id and replayed."""

    __tablename__ = "served_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[str] = mapped_column(String(128), index=True)
    seller_id: Mapped[str] = mapped_column(String(128), index=True)
    as_of: Mapped[date | None] = mapped_column(Date)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(64))
    feature_spec_hash: Mapped[str] = mapped_column(String(128))
    policy_version: Mapped[str] = mapped_column(String(64))
    risk_score: Mapped[float] = mapped_column(Double)
    features: Mapped[str] = mapped_column(Text)
    """Feature name -> value as JSON text; Python writes each float's shortest exact repr, so every
    value reads back bit for bit (a JSON column would not promise that on every backend). Rows written
    before revision 0003 hold it here; since then it is empty and `features_digest` names the values."""
    served_at: Mapped[datetime] = mapped_column(UtcDateTime())
    prev_hash: Mapped[str] = mapped_column(String(64), server_default="")
    row_hash: Mapped[str] = mapped_column(String(64), server_default="")
    features_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    """The digest of the feature values, kept once in `served_features`: a seller served a thousand
    times in a week from the same snapshot row costs one copy of its 82 values, not a thousand."""


class ServedFeaturesRow(Base):
    """The feature values served records were computed from, each distinct set once: the values as a JSON
    array in the order of their names (kept once per list of names, `served_feature_names`), named by
    `features_digest` (serving.store.chain), so an edit is found by rehashing it. Deleted only by an
    archive, once no served record still in the database names it (a trigger refuses otherwise)."""

    __tablename__ = "served_features"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    names_digest: Mapped[str] = mapped_column(String(64))
    feature_values: Mapped[str] = mapped_column(Text)


class ServedFeatureNamesRow(Base):
    """A list of feature names (a feature spec's, in its order) as a JSON array, once, named by its sha256:
    the names are two thirds of a row of values, and the same for every record of a model."""

    __tablename__ = "served_feature_names"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    names: Mapped[str] = mapped_column(Text)


class AuditArchiveRow(Base):
    """A checkpoint of a hash chain cut by `audit archive`: rows `first_id` to `last_id` were moved to the
    Parquet file `file` (its sha256 `file_sha256`), and the rows left in the database carry on from
    `last_hash`, the hash of row `last_id`. Append-only, like the chains."""

    __tablename__ = "audit_archives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain: Mapped[str] = mapped_column(String(32))
    first_id: Mapped[int] = mapped_column(Integer)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    served_from: Mapped[datetime] = mapped_column(UtcDateTime())
    served_to: Mapped[datetime] = mapped_column(UtcDateTime())
    file: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(String(64))
    archived_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ChainHeadRow(Base):
    """The last link of each hash chain (`decisions`, `served_scores`): writers lock this row to append one
    at a time, and `audit verify` finds rows removed from the end of a chain by it."""

    __tablename__ = "audit_chain_heads"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class SessionRow(Base):
    """A signed-in console session. The browser holds a random id; the database only its sha256, so
    reading the database does not let anyone ride a session."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64), ForeignKey("reviewers.username"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    address: Mapped[str] = mapped_column(String(64))


class SignInAttemptRow(Base):
    """Every sign-in attempt, as it was answered: ok, wrong (password or account), throttled or locked."""

    __tablename__ = "signin_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    success: Mapped[bool] = mapped_column(Boolean)


def database_url(url: str | URL) -> URL:
    """The URL the store connects with: `postgresql://` and `postgres://` mean psycopg 3 (the driver
    the package installs); SQLite and PostgreSQL are the backends it supports."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"console database {url!r}: not a database URL (sqlite:///PATH or "
                         "postgresql+psycopg://USER@HOST/DB)") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"console database {describe(parsed)}: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
    return parsed


def describe(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_db_engine(url: str | URL) -> Engine:
    """An engine for the decisions and audit database. SQLite: the parent folder is created, the journal is a
    write-ahead log (readers never wait for the writer), foreign keys are enforced, and a write
    transaction takes the write lock when it begins (`BEGIN IMMEDIATE`), so two processes writing at
    once wait for each other instead of failing half-way. PostgreSQL: psycopg 3, connections checked
    before use."""
    url = database_url(url)
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        _create_private(Path(url.database))
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})

    @event.listens_for(engine, "connect")
    def _sqlite_on_connect(dbapi_connection, _record) -> None:
        # SQLAlchemy's recipe for transactional SQLite: the driver stops opening transactions on its
        # own (it skips DDL), and the "begin" hook below opens each one
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.get_execution_options().get("writes") else "BEGIN")

    return engine


def _create_private(path: Path) -> None:
    """Create an empty SQLite file readable by its owner only (it holds password hashes); SQLite gives
    its -wal and -shm files the database file's mode. An existing file is left as it is."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL or an in-memory database."""
    url = database_url(url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" \
            or url.database.startswith("file:"):
        return None
    return Path(url.database)


def exposed(path: Path) -> str | None:
    """What is wrong with a file that must be private to its owner (group or others may read or write
    it), as one line saying how to fix it; None when it is private or absent."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
    if mode & 0o077:
        return f"{path} can be read by group or others (mode {mode:04o}) and holds secrets: chmod 600 {path}"
    return None


def writer(engine: Engine) -> Engine:
    """The engine for transactions that write: on SQLite they take the write lock as they begin
    (a transaction that reads, then writes, can otherwise fail when another process wrote between)."""
    return engine.execution_options(writes=True)
