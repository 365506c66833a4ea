"""Alembic's environment for the decisions and audit database: runs the revisions in versions/ on the
connection `serving.store.migrations.upgrade` hands over, or on `sqlalchemy.url` when a developer
runs the `alembic` command line with a configuration of their own."""

from __future__ import annotations

from alembic import context

from serving.store.db import Base, create_db_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Write the SQL instead of running it (`alembic upgrade head --sql`)."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_on(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")  # SQLite alters tables by copying them
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations_on(connection)
        return
    engine = create_db_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as connection:
            run_migrations_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
