"""The store's commands: `accounts add` and `accounts list` manage who can sign in, and `decisions
export` writes every decision as a Parquet table for training (keyed by seller and as-of date).
`serving.main` adds the two groups to `seller-risk`. Each command opens the database of
`SELLER_RISK_DB` (default sqlite:///<data>/console.db) unless `--db` names another."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import typer
from rich.table import Table

from features.platform.terminal import console, fail, print_facts

accounts = typer.Typer(help="Reviewer accounts of the console: who can sign in and record decisions.",
                       no_args_is_help=True)
decisions = typer.Typer(help="Reviewers' decisions, kept append-only in the console's database.",
                        no_args_is_help=True)
groups = (("accounts", accounts), ("decisions", decisions))
"""(name, typer app) of each command group, for the composition root: `app.add_typer(group, name=name)`."""

DB_HELP = "The console's database, a SQLAlchemy URL (default: SELLER_RISK_DB, else sqlite:///<data>/console.db)."


@accounts.callback()
def _accounts() -> None:
    """Reviewer accounts of the console: who can sign in and record decisions."""


@decisions.callback()
def _decisions() -> None:
    """Reviewers' decisions, kept append-only in the console's database."""


def _open(db: str | None):
    from features.platform.settings import Settings
    from serving.store.store import Store, StoreUnavailable

    try:
        url = db or Settings.from_env().db_url
        return Store.open(url), url
    except (StoreUnavailable, ValueError) as err:
        fail(str(err))
    except OSError as err:  # e.g. a SQLite folder that cannot be created
        fail(f"cannot open the console database: {err}")


@accounts.command("add")
def add_account(
    username: str = typer.Argument(..., help="Sign-in name: 1 to 64 lowercase letters, digits, '.', '_' or '-'."),
    name: str | None = typer.Option(None, "--name", help="Display name shown on decisions (default: the username)."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from standard input (first line) instead of a prompt."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Create a reviewer account; the password is asked twice without echo, or read from stdin."""
    from serving.store.db import describe
    from serving.store.store import ReviewerRefused

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    store, url = _open(db)
    try:
        reviewer = store.add_reviewer(username, password, name)
    except ReviewerRefused as err:
        fail(str(err))
    finally:
        store.close()
    print_facts("Reviewer added", (
        ("username", reviewer.username),
        ("display name", reviewer.display_name),
        ("database", describe(url)),
    ))


@accounts.command("list")
def list_accounts(db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Every reviewer account, by username."""
    from serving.store.db import describe

    store, url = _open(db)
    try:
        reviewers = store.reviewers()
    finally:
        store.close()
    if not reviewers:
        console.print(f"No reviewer accounts in {describe(url)} yet: `seller-risk accounts add USERNAME` creates one.")
        return
    table = Table(title=f"Reviewers ({describe(url)})")
    for column in ("username", "display name", "created (UTC)"):
        table.add_column(column)
    for r in reviewers:
        table.add_row(r.username, r.display_name, f"{r.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@decisions.command("export")
def export_decisions(
    out: Path | None = typer.Option(None, "--out", help="Parquet file to write (default: <data>/decisions.parquet)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Write every decision, one row each with every field, as a Parquet table keyed by seller_id and
    as_of (corrections are rows of their own, pointing at what they correct); the file is replaced whole."""
    from features.platform.settings import Settings

    store, _ = _open(db)
    try:
        frame = store.decisions_frame()
    finally:
        store.close()
    out = out or Settings.from_env().data / "decisions.parquet"
    try:
        write_decisions(frame, out)
    except OSError as err:
        fail(f"cannot write {out}: {err.strerror or err}")
    print_facts("Decisions exported", (
        ("decisions", f"{len(frame):,}"),
        ("corrections among them", f"{int(frame['corrects'].notna().sum()):,}"),
        ("sellers", f"{frame['seller_id'].nunique():,}"),
        ("written to", str(out)),
    ))


def decisions_table(frame):
    """The export's Arrow table: sorted by seller_id, as_of, then decision id; as_of a date, decided_at UTC."""
    import pyarrow as pa

    from serving.store.store import DECISION_COLUMNS

    schema = pa.schema([
        ("seller_id", pa.string()), ("as_of", pa.date32()), ("id", pa.int64()), ("record_id", pa.string()),
        ("model_name", pa.string()), ("model_version", pa.string()), ("feature_spec_hash", pa.string()),
        ("risk_score", pa.float64()), ("action", pa.string()), ("note", pa.string()), ("reviewer", pa.string()),
        ("decided_at", pa.timestamp("us", tz="UTC")), ("corrects", pa.int64()),
    ])
    assert set(schema.names) == set(DECISION_COLUMNS)
    ordered = frame.sort_values(["seller_id", "as_of", "id"], kind="stable")
    columns = {}
    for field in schema:
        values = ordered[field.name]
        if field.name == "decided_at":  # UTC instants (pandas no longer hands arrow its zone-free values)
            columns[field.name] = pa.array(values.dt.tz_convert(None).to_numpy(), pa.timestamp("us")).cast(field.type)
        else:
            columns[field.name] = pa.array(values.astype(object).where(values.notna(), None), field.type)
    return pa.Table.from_pydict(columns, schema=schema)


def write_decisions(frame, out: Path) -> None:
    """Write the export to a temporary file beside `out`, then rename it over `out`: readers see the
    previous table or the new one, never half of one."""
    import pyarrow.parquet as pq

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; the export is an ordinary file
    try:
        pq.write_table(decisions_table(frame), tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
