"""The console's databases for tests: a SQLite file per test, and a throwaway PostgreSQL cluster
started once per session (Debian's server binaries, `make postgres` installs them) with a fresh
database per test. Tests take `db_url`, parametrized over both backends; the PostgreSQL case is
marked `postgres` (and so `slow`)."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

NO_POSTGRES = "PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/pg_ctl): run `make postgres`"


@dataclass(frozen=True)
class PostgresCluster:
    """A running throwaway cluster: superuser `postgres`, trust authentication, a unix socket only."""

    bin_dir: Path
    socket_dir: Path
    port: int
    user: str = "postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket_dir}&port={self.port}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """initdb into a temporary folder, start on a free port listening on a unix socket in that folder,
    stop and remove it at the end. Root cannot run PostgreSQL, so as root the folder belongs to the
    `postgres` system user and the server runs as that user. Missing binaries fail the run in CI
    (the `CI` variable is set) and skip the PostgreSQL cases elsewhere."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail(NO_POSTGRES)
        pytest.skip(NO_POSTGRES)
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="seller-risk-pg-"))  # not under pytest's tmp: that is private to this user
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        try:
            shutil.chown(root, "postgres", "postgres")
        except LookupError:
            shutil.rmtree(root)
            pytest.fail("running as root, PostgreSQL needs the `postgres` system user: run `make postgres`")
    data, port = root / "data", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--no-locale", "--no-sync")
        options = (f"-p {port} -k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=40 -c shared_buffers=32MB")
        run(str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-o", options,
            "-l", str(root / "server.log"))
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield PostgresCluster(bin_dir, root, port)
    finally:
        try:
            run(str(bin_dir / "pg_ctl"), "stop", "-w", "-D", str(data), "-m", "immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)


_databases = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty console database on each backend: a SQLite file in the test's folder, or a new database
    in the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'console.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database(f"console_{os.getpid()}_{next(_databases)}")
