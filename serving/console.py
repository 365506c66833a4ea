"""What the CLI shows a person: progress bars on long work (plain when not a terminal) and
results as tables. Presentation only; every number comes from the library."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


def print_problems(problems: list, events: Path) -> None:
    """Every validation problem, one row each, or a clear all-good line."""
    if not problems:
        console.print(f"[green]OK[/green]: {events} holds valid event tables.")
        return
    table = Table(title=f"{len(problems)} problem(s) in {events}", show_lines=True)
    for name in ("table", "column", "problem", "rows", "examples"):
        table.add_column(name, overflow="fold")
    for p in problems:
        examples = "\n".join(", ".join(f"{k}={v}" for k, v in e.items()) for e in p.examples)
        table.add_row(p.table, p.column or "", p.problem, f"{p.count:,}" if p.count else "", examples)
    console.print(table)


def _in_range(value: float, lo_hi: tuple[float, float] | None) -> str:
    if lo_hi is None:
        return ""
    lo, hi = lo_hi
    ok = lo <= value <= hi
    return f"[{'green' if ok else 'red'}]{lo:.0%} to {hi:.0%} {'ok' if ok else 'OUT OF RANGE'}[/]"


def print_simulation_summary(summary, out: Path) -> None:
    """The simulated marketplace at a glance: size, realism rates against targets, enforcement."""
    from features.simulation.run import REALISM_TARGETS

    c = summary.counts
    size = Table(title=f"Event tables in {out}")
    size.add_column("table")
    size.add_column("rows", justify="right")
    for name, rows in summary.rows.items():
        size.add_row(name, f"{rows:,}")
    console.print(size)

    rates = Table(title=f"Realism (policy {summary.policy_version})")
    for name, justify in (("rate", "left"), ("value", "right"), ("public range", "left")):
        rates.add_column(name, justify=justify)
    for name, value in summary.rates.items():
        rates.add_row(name.replace("_", " "), f"{value:.2%}", _in_range(value, REALISM_TARGETS.get(name)))
    console.print(rates)

    drivers = Table(title="Breaches ahead, by standard")
    drivers.add_column("standard")
    drivers.add_column("active seller-weeks followed by a miss", justify="right")
    for name, value in sorted(summary.per_metric_miss_share.items(), key=lambda kv: -kv[1]):
        drivers.add_row(name, f"{value:.2%}")
    console.print(drivers)

    s = summary.sellers
    _print_facts("Sellers and enforcement", (
        ("sellers", f"{summary.config['sellers']:,}"),
        ("joined during the period", f"{c['sellers_joining_during_period']:,}"),
        ("orders per seller: median / p90 / max", f"{s['orders_per_seller_median']:,.0f} / "
                                                   f"{s['orders_per_seller_p90']:,.0f} / {s['orders_per_seller_max']:,}"),
        ("share of orders from the top 1% of sellers", f"{s['top_1pct_sellers_share_of_orders']:.1%}"),
        ("regional carrier disruptions", f"{c['disruptions']:,}"),
        ("warnings / suppressions / suspensions / reinstated",
         f"{c['actions_warning']:,} / {c['actions_suppression']:,} / {c['actions_suspension']:,} / "
         f"{c['actions_reinstatement']:,}"),
    ))


def _print_facts(title: str, facts: tuple[tuple[str, str], ...]) -> None:
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


def print_snapshot_summary(run, out: Path) -> None:
    """What the snapshots hold: dates, sellers, the label base rate and the early-warning set."""
    dates = run.as_of_dates
    _print_facts(f"Feature snapshots in {out}", (
        ("policy / feature spec hash", f"{run.policy_version} / {run.spec_hash}"),
        ("as-of dates", f"{len(dates)} ({dates[0]} to {dates[-1]})"),
        ("seller-weeks (active sellers x dates)", f"{run.rows:,}"),
        ("sellers", f"{run.sellers:,}"),
        ("seller-weeks with a known label", f"{run.labelled_rows:,}"),
        ("base rate: breach within the horizon", f"{run.breach_rate:.2%}"),
        ("early-warning set: compliant at t", f"{run.early_warning_share:.2%} of seller-weeks"),
        ("breach rate in the early-warning set", f"{run.early_warning_breach_rate:.2%}"),
    ))


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


def _num(value: float, pct: bool = False) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:.1%}" if pct else f"{value:.3f}"


def print_training_summary(result) -> None:
    """The backtest against the baselines, the model's size, and the gate's verdict."""
    from training.train import summary_rows

    table = Table(title=f"Backtest, pooled over {len(result.folds)} folds (test weeks only)")
    cols = (("model", "model"), ("sellers", "population"), ("ROC AUC", "roc_auc"), ("PR AUC", "pr_auc"),
            ("precision @ capacity", "precision_at_capacity"), ("recall @ capacity", "recall_at_capacity"),
            ("lift @ capacity", "lift_at_capacity"), ("Brier", "brier"), ("ECE", "ece"), ("base rate", "base_rate"))
    for name, _ in cols:
        table.add_column(name, justify="left" if name in {"model", "sellers"} else "right")
    for row in summary_rows(result).to_dict("records"):
        table.add_row(row["model"], row["population"].replace("_", "-"),
                      *(_num(row[k], pct=k in {"precision_at_capacity", "recall_at_capacity", "base_rate"})
                        for _, k in cols[2:]))
    console.print(table)
    for fold in result.folds:
        console.print(f"  {fold.describe()}")
    s = result.size
    search = result.search
    _print_facts("Model", (
        ("registered as", f"seller-risk v{result.version} (alias challenger)"),
        ("MLflow run / store", f"{result.run_id} / {result.tracking_uri}"),
        ("search", f"{len(search.trials)} trials, chose #{search.chosen.number} "
                   f"(best PR AUC #{search.best.number})" if search else "skipped (fixed parameters)"),
        ("parameters", ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.params.items())),
        ("trees / leaves / max depth", f"{s.trees} / {s.leaves} / {s.max_depth}"),
        ("explanation cost (sum of leaves x depth^2)", f"{s.explanation_cost:,}"),
        ("calibration (Platt slope, intercept)", f"{result.model.calibration.slope:.3f}, {result.model.calibration.intercept:.3f}"),
    ))
    gate = Table(title="Promotion gate: " + ("[green]passed[/]" if result.gate.passed else "[red]failed[/]"))
    gate.add_column("check")
    gate.add_column("result")
    gate.add_column("detail", overflow="fold")
    for c in result.gate.checks:
        gate.add_row(c["check"], "[green]pass[/]" if c["passed"] else "[red]fail[/]", c["detail"])
    console.print(gate)


def print_move(move) -> None:
    """What a promote or rollback did, and why."""
    verdict = "[green]done[/]" if move.done else "[red]refused[/]"
    console.print(f"{move.action} {verdict}: champion {move.from_version or 'none'} -> "
                  f"{(move.to_version if move.done else move.from_version) or 'none'}")
    for reason in move.reasons:
        console.print(f"  {reason}")


def print_score_summary(summary: dict) -> None:
    """A weekly scoring run at a glance: bands, expected case volume, queue coverage, risers, drift."""
    eb, cap, m = summary["expected_breaches"], summary["review_capacity"], summary["model"]
    n = summary["sellers_scored"]
    _print_facts(f"Scores for {summary['as_of']} (run {summary['run_id']})", (
        ("model / policy", f"{m['name']} v{m['version']} / {summary['policy_version']}"),
        ("snapshot", summary["snapshot"]),
        ("sellers scored", f"{n:,}"),
        (f"expected breaches within {eb['horizon_days']} days",
         f"{eb['expected']:,.1f} ({eb['interval_level']:.0%} interval {eb['low']:,.1f} to {eb['high']:,.1f})"),
        ("weekly review capacity", f"{cap['sellers']:,} sellers (scores >= {cap['lowest_score_in_queue']:.3f})"),
        ("expected breaches in the queue",
         f"{cap['expected_breaches_in_queue']:,.1f} ({cap['share_of_expected_breaches']:.1%} of all)"),
        ("written to", summary["partition"]),
        ("time", f"{summary['seconds']:.1f} s"),
    ))
    bands = Table(title="Sellers per risk band")
    for name, justify in (("band", "left"), ("sellers", "right"), ("share", "right"), ("expected breaches", "right")):
        bands.add_column(name, justify=justify)
    for b in summary["bands"]:
        bands.add_row(b["band"], f"{b['sellers']:,}", f"{b['share']:.1%}", f"{b['expected_breaches']:,.1f}")
    console.print(bands)
    rise = summary["risers"]
    risers = Table(title=f"Biggest risers (against {rise['compared_with']})")
    for name, justify in (("seller", "left"), ("before", "right"), ("now", "right"), ("change", "right"), ("band", "left")):
        risers.add_column(name, justify=justify)
    for r in rise["sellers"]:
        risers.add_row(r["seller_id"], f"{r['risk_score_previous']:.3f}", f"{r['risk_score']:.3f}",
                       f"+{r['change']:.3f}", f"{r['risk_band_previous'] or '?'} -> {r['risk_band']}")
    console.print(risers)
    drift = summary["drift"]
    colour = {"stable": "green", "watch": "yellow", "alert": "red"}
    table = Table(title=f"Drift (PSI; watch >= {drift['watch']}, alert >= {drift['alert']}) against {drift['reference']}")
    for name, justify in (("variable", "left"), ("PSI", "right"), ("level", "left")):
        table.add_column(name, justify=justify)
    for d in drift["variables"]:
        level = d["level"]
        table.add_row(d["variable"], _num(d["psi"]), f"[{colour.get(level, 'white')}]{level}[/]")
    console.print(table)


def print_riskiest(records: list[dict]) -> None:
    """The riskiest sellers with their top reasons, as a reviewer would read them."""
    table = Table(title=f"The {len(records)} riskiest sellers", show_lines=True)
    for name, justify in (("seller", "left"), ("score", "right"), ("band", "left"), ("top reasons", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for r in records:
        reasons = "\n".join(f"{x['rank']}. {x['text']}" for x in r["reasons"])
        table.add_row(r["seller_id"], f"{r['risk_score']:.3f}", r["risk_band"], reasons)
    console.print(table)


def print_serving(scorer, snapshot, host: str, port: int) -> None:
    """What is about to be served, and a request to paste."""
    import json
    import shlex

    ids = list(snapshot.index)  # in row order
    riskiest = int(scorer.model.probability(snapshot.X).argmax()) if ids else None
    seller = ids[riskiest] if riskiest is not None else "S0000000"
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    body = json.dumps({"seller_id": seller, "reasons": 5})
    console.print(f"Serving [bold]{scorer.ref.name} v{scorer.ref.version}[/] (policy {scorer.policy.version}, "
                  f"feature spec {scorer.spec.hash}) on {url}; features as of {snapshot.as_of} "
                  f"for {len(snapshot):,} sellers. Ctrl-C stops it.")
    console.print(f"API docs: {url}/docs   ready when: curl -sf {url}/readyz")
    console.print("Try the riskiest seller of the snapshot:" if ids else "Try:", soft_wrap=True)
    console.print(f"  curl -s -X POST {url}/score_seller -H 'Content-Type: application/json' -d {shlex.quote(body)}",
                  soft_wrap=True, highlight=False)
