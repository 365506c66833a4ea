"""The Alembic migrations that create and change the decisions and audit database, run from code: `upgrade`
brings a database to the newest revision when `Store.open` opens it, so users never need an
alembic.ini. A developer adding a revision points Alembic at this folder (`script_location`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from serving.store.db import writer

MIGRATIONS = Path(__file__).resolve().parent
"""env.py and versions/; shipped in the wheel as package data."""

MIGRATION_LOCK = 7_114_201_914_046_233
"""PostgreSQL advisory lock key taken while upgrading, so service workers starting together migrate once."""


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration built in code: this folder's scripts, and `url` when given (for the
    `alembic` command line; `upgrade` hands env.py an open connection instead)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` in one transaction (both backends have transactional DDL).
    Concurrent callers wait for each other: SQLite's write lock, PostgreSQL's advisory lock."""
    config = alembic_config()
    with writer(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
