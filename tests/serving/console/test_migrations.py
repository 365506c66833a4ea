"""The console's migrations and its models cannot drift apart: `alembic upgrade head` on an empty
database gives exactly the tables, columns, types, keys and indexes the models declare (Alembic's
autogenerate comparison finds nothing to change), on SQLite and on PostgreSQL; the chain goes down
and up again; and the wheel ships the migration scripts."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from serving.store.db import Base, create_db_engine
from serving.store.migrations import MIGRATIONS, alembic_config, upgrade

ROOT = Path(__file__).resolve().parents[3]


def _differences(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def test_upgrade_head_on_an_empty_database_gives_exactly_the_models_tables(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
        assert _differences(engine) == []
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == _head()
        upgrade(engine)  # again: at head already, nothing happens
        assert _differences(engine) == []
    finally:
        engine.dispose()


def test_service_workers_opening_a_new_database_together_migrate_it_once(db_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from serving.store.store import Store

    with ThreadPoolExecutor(4) as pool:  # an engine (and connections) each, as separate worker processes have
        stores = list(pool.map(lambda _: Store.open(db_url), range(4)))
    try:
        assert _differences(stores[0].engine) == []
        with stores[0].engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == _head()
    finally:
        for store in stores:
            store.close()


def test_the_migrations_go_down_to_nothing_and_up_again(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'console.db'}")
    try:
        upgrade(engine)
        from alembic import command

        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade(engine)
        assert _differences(engine) == []
    finally:
        engine.dispose()


def test_one_head_and_every_migration_file_ships_in_the_wheel() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert len(scripts.get_heads()) == 1
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["serving"]
    serving = ROOT / "serving"
    files = [p for p in MIGRATIONS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any(p.parent.name == "versions" for p in files)
    for path in files:
        relative = path.relative_to(serving).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in package_data), f"{relative} is not package data"


def _head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
