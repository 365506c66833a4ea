"""The store's commands: `accounts add`, `list`, `revoke-sessions` and `unlock` manage who can sign in,
`decisions export` writes every decision as a Parquet table for training (keyed by seller and as-of
date), `audit verify` checks the hash chains of decisions and served records and the append-only
triggers, and `audit archive` moves served records past the retention to Parquet files. `serving.main` adds the three groups to `seller-risk`. Each command opens the database of
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
audit = typer.Typer(help="The tamper-evident audit: decisions and served records, hash-chained.", no_args_is_help=True)
groups = (("accounts", accounts), ("decisions", decisions), ("audit", audit))
"""(name, typer app) of each command group, for the composition root: `app.add_typer(group, name=name)`."""

DB_HELP = "The console's database, a SQLAlchemy URL (default: SELLER_RISK_DB, else sqlite:///<data>/console.db)."


@accounts.callback()
def _accounts() -> None:
    """Reviewer accounts of the console: who can sign in and record decisions."""


@decisions.callback()
def _decisions() -> None:
    """Reviewers' decisions, kept append-only in the console's database."""


@audit.callback()
def _audit() -> None:
    """The tamper-evident audit: decisions and served records, hash-chained."""


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
    role: str = typer.Option("reviewer", "--role", help="reviewer (queue, sellers, decisions), leader (also the "
                                                        "leader page and exports) or administrator (accounts, "
                                                        "sessions, locks)."),
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
        reviewer = store.add_reviewer(username, password, name, role)
    except ReviewerRefused as err:
        fail(str(err))
    finally:
        store.close()
    print_facts("Reviewer added", (
        ("username", reviewer.username),
        ("display name", reviewer.display_name),
        ("role", reviewer.role),
        ("database", describe(url)),
    ))


@accounts.command("list")
def list_accounts(db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Every reviewer account, by username."""
    from serving.store.db import describe

    store, url = _open(db)
    try:
        reviewers, sessions = store.reviewers(), store.open_sessions()
    finally:
        store.close()
    if not reviewers:
        console.print(f"No reviewer accounts in {describe(url)} yet: `seller-risk accounts add USERNAME` creates one.")
        return
    table = Table(title=f"Reviewers ({describe(url)})")
    for column in ("username", "display name", "role", "created (UTC)", "open sessions", "sign-in"):
        table.add_column(column)
    for r in reviewers:
        table.add_row(r.username, r.display_name, r.role, f"{r.created_at:%Y-%m-%d %H:%M}",
                      str(sessions.get(r.username, 0)), "locked" if r.locked else "")
    console.print(table)


@accounts.command("revoke-sessions")
def revoke_sessions(username: str = typer.Argument(..., help="The account whose sessions end now."),
                    db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """End every console session of an account: its cookies no longer open any page."""
    store, _ = _open(db)
    try:
        if username not in {r.username for r in store.reviewers()}:
            fail(f"no account {username!r}: `seller-risk accounts list` shows them")
        ended = store.revoke_sessions(username)
    finally:
        store.close()
    console.print(f"{ended} session(s) of {username} ended.")


@accounts.command("unlock")
def unlock_account(username: str = typer.Argument(..., help="The account locked after failed sign-ins."),
                   db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Clear an account's sign-in lock (set after too many wrong passwords) and its failures so far."""
    store, _ = _open(db)
    try:
        found = store.unlock(username)
    finally:
        store.close()
    if not found:
        fail(f"no account {username!r}: `seller-risk accounts list` shows them")
    console.print(f"{username} may sign in again.")


@audit.command("verify")
def verify_audit(
    archives: bool = typer.Option(False, "--archives", help="Also walk the Parquet files `audit archive` wrote "
                                                            "(each must be there, unchanged and chained)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Walk the hash chains of decisions and served records in id order and check the append-only triggers.

    Exit 0: intact (the head hashes are printed: keep them elsewhere to anchor the chains); 1: the first
    row of each chain that does not match (a changed, replaced or deleted row), and any trigger gone. Archived
    served records are checked from their checkpoint on, and with --archives in their files too."""
    from serving.store.db import describe

    store, url = _open(db)
    try:
        verdict = store.verify(archives=archives)
    finally:
        store.close()
    for table, rows in verdict.rows.items():
        moved = verdict.archived.get(table, 0)
        console.print(f"{table}: {rows:,} rows intact in order{f' after {moved:,} archived' if moved else ''}, "
                      f"last hash {verdict.heads[table] or '(empty)'}", highlight=False)
    if verdict.problems:
        for line in verdict.problems:
            console.print(f"TAMPERED: {line}", soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(code=1)
    console.print(f"The audit of {describe(url)} is intact{' (archive files included)' if archives else ''}.",
                  highlight=False)


@audit.command("archive")
def archive_audit(
    older_than_days: int | None = typer.Option(None, "--older-than-days", min=0,
                                               help="Archive served records older than this "
                                                    "(default: SELLER_RISK_AUDIT_RETENTION_DAYS, 90)."),
    out: Path | None = typer.Option(None, "--out", help="Folder of the Parquet files (default: "
                                                        "SELLER_RISK_AUDIT_ARCHIVE, else <data>/audit)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Move the served records older than the retention from the database to Parquet files, oldest first.

    Each file is written whole before its rows leave the database, in one transaction with a checkpoint the
    hash chain carries on from; an interrupted run leaves every row in the database, and the next run
    clears what it left. `audit verify --archives` walks the files."""
    from datetime import UTC, datetime, timedelta

    from features.platform.settings import Settings
    from serving.store.db import describe

    settings = Settings.from_env()
    days = settings.audit_retention_days if older_than_days is None else older_than_days
    folder = out or settings.audit_archive_dir
    before = datetime.now(UTC) - timedelta(days=days)
    store, url = _open(db)
    try:
        made = store.archive_served(before, folder)
    except OSError as err:
        fail(f"cannot write the archive in {folder}: {err.strerror or err}")
    finally:
        store.close()
    print_facts("Served records archived", (
        ("served before", f"{before:%Y-%m-%d %H:%M} UTC ({days} days ago)"),
        ("records archived", f"{sum(a.rows for a in made):,}"),
        ("files", "\n".join(str(a.file) for a in made) or "(none: nothing that old)"),
        ("chain carries on from", made[-1].last_hash if made else "(unchanged)"),
        ("database", describe(url)),
    ))


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
