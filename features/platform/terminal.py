"""What every command shows a person, whichever package owns the command: progress bars on long
work (plain lines when not a terminal), spinners, tables of labelled values, and one-line errors
instead of tracebacks. Presentation only; every number comes from the library."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

_terminal = Console()
console = _terminal if _terminal.is_terminal else Console(width=140)
"""On a terminal, its width; in a log or a pipe, wide enough for the result tables to stay legible."""


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar fed with (done, total); a line per update when output is not a terminal."""
    if not console.is_terminal:
        last = {"pct": -1}

        def report(done: int, total: int) -> None:
            pct = int(100 * done / max(total, 1))
            if pct // 10 != last["pct"] // 10 or done == total:
                console.print(f"{description}: {done:,}/{total:,} ({pct}%)")
                last["pct"] = pct

        yield report
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def print_facts(title: str, facts: tuple[tuple[str, str], ...]) -> None:
    """A two-column table of labelled values."""
    table = Table(title=title)
    table.add_column("what")
    table.add_column("value", justify="right")
    for label, value in facts:
        table.add_row(label, value)
    console.print(table)


@contextmanager
def spinner(description: str) -> Iterator[None]:
    """A spinner with elapsed time on a terminal; a start and an end line otherwise."""
    import time

    start = time.perf_counter()
    if console.is_terminal:
        with console.status(description):
            yield
    else:
        console.print(f"{description} ...")
        yield
    console.print(f"{description}: done in {time.perf_counter() - start:.1f} s")


@contextmanager
def staged_progress() -> Iterator[Callable[[str, int, int], None]]:
    """Progress of a job with several stages, fed with (stage, done, total): a bar per stage on a
    terminal, a line per stage step otherwise."""
    if not console.is_terminal:
        def report(stage: str, done: int, total: int) -> None:
            console.print(f"{stage}: {done}/{total}")

        yield report
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def num(value: float, pct: bool = False) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:.1%}" if pct else f"{value:.3f}"



def fail(message: str) -> NoReturn:
    """Stop with one line a person can act on (exit status 2), never a traceback."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code=2)
