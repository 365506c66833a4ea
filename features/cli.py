"""The `features` package's commands: `simulate` a marketplace, `validate` event tables, build
feature snapshots with `features`; and what each prints. `serving.main` assembles them into
`seller-risk`."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

from rich.table import Table

import typer

from features.platform.settings import DATA_DIR, DEFAULT_POLICY
from features.platform.terminal import console, fail, print_facts

commands = typer.Typer()


@commands.command()
def validate(
    events: Path = typer.Option(..., "--events", help="Directory of event tables (Parquet or CSV)."),
    cutoff: datetime | None = typer.Option(
        None, "--cutoff", help="Extract cut-off (UTC); default: the manifest's, else now."
    ),
) -> None:
    """Check an events directory against the schema and print every problem found (exit 1 if any)."""
    from features.events.validation import validate_dir

    _need_events(events)
    problems = validate_dir(events, cutoff=cutoff)
    print_problems(problems, events)
    raise typer.Exit(code=1 if problems else 0)


@commands.command()
def simulate(
    sellers: int = typer.Option(2000, "--sellers", min=1, help="Number of sellers."),
    start: datetime = typer.Option(
        "2025-01-06", "--start", formats=["%Y-%m-%d"], help="First day of events (evaluations are weekly from here)."
    ),
    weeks: int = typer.Option(52, "--weeks", min=1, max=520, help="Weeks of history to simulate."),
    seed: int = typer.Option(7, "--seed", help="Random seed: same seed, same bytes."),
    out: Path = typer.Option(DATA_DIR / "events", "--out", help="Output directory for the event tables."),
    policy: str = typer.Option(DEFAULT_POLICY, "--policy", help="Policy (name or YAML path) the marketplace enforces."),
    latent: bool = typer.Option(True, "--latent/--no-latent", help="Also write sellers' hidden propensities beside --out."),
    regime: str = typer.Option("baseline", "--regime", help="Kind of marketplace: baseline (today's), holiday_peak, "
                               "carrier_outages, fast_growers, small_sellers (features/simulation/regime.py)."),
) -> None:
    """Simulate a marketplace and write its event tables as Parquet, then print a summary."""
    from features.policy.definition import load_policy
    from features.simulation.run import SimulationConfig, simulate_marketplace
    from features.platform.terminal import progress_bar

    from features.policy.definition import PolicyError
    from features.simulation.regime import regime as named_regime

    try:
        chosen = named_regime(regime)
    except ValueError as err:
        fail(str(err))
    config = SimulationConfig(
        n_sellers=sellers, start=date(start.year, start.month, start.day), weeks=weeks, seed=seed, regime=chosen
    )
    try:
        marketplace_policy = load_policy(policy)
        with progress_bar("Simulating sellers") as advance:
            summary = simulate_marketplace(config, marketplace_policy, out, write_latent=latent, progress=advance)
    except (PolicyError, FileExistsError) as err:
        fail(str(err))
    print_simulation_summary(summary, out)


@commands.command()
def features(
    events: Path = typer.Option(..., "--events", help="Directory of validated event tables."),
    out: Path = typer.Option(DATA_DIR / "features", "--out", help="Output directory for the snapshots."),
    as_of: list[datetime] | None = typer.Option(
        None, "--as-of", formats=["%Y-%m-%d"], help="As-of date (repeatable); default: every weekly date."
    ),
    policy: str = typer.Option(DEFAULT_POLICY, "--policy", help="Policy (name or YAML path)."),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb (embedded default) or spark (local mode)."),
) -> None:
    """Build point-in-time feature snapshots and labels for every active seller at every weekly date."""
    from features.policy.definition import PolicyError, load_policy
    from features.pipeline.snapshots import build_snapshots
    from features.events.validation import EventValidationError
    from features.platform.terminal import spinner

    if engine not in {"duckdb", "spark"}:
        fail(f"--engine must be duckdb or spark, not {engine!r}")
    _need_events(events)
    dates = [d.date() for d in as_of] if as_of else None
    try:
        with spinner(f"Building feature snapshots with {engine}"):
            run = build_snapshots(events, out, load_policy(policy), as_of=dates, engine=engine)  # type: ignore[arg-type]
    except EventValidationError as err:
        fail(validation_failure(events, err.problems))
    except (PolicyError, FileExistsError, ValueError) as err:
        fail(str(err))
    print_snapshot_summary(run, out)


def validation_failure(events: Path, problems: list) -> str:
    """Why a command refused the events: the problem on one line (table.column, what, rows), or
    one line per problem after a count when there are several."""
    see = f"`seller-risk validate --events {events}` shows them as a table"
    if len(problems) == 1:
        return f"{events} fails validation: {problems[0]}"
    return "\n".join([f"{events} fails validation with {len(problems)} problems ({see}):", *(f"  - {p}" for p in problems)])


def _need_events(events: Path) -> None:
    """A missing --events folder is a mistyped path, not seven missing tables."""
    if not events.is_dir():
        fail(f"{events} is not a folder of event tables: check --events (`seller-risk simulate --out {events}` writes one)")


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
    print_facts("Sellers and enforcement", (
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


def print_snapshot_summary(run, out: Path) -> None:
    """What the snapshots hold: dates, sellers, the label base rate and the early-warning set."""
    dates = run.as_of_dates
    print_facts(f"Feature snapshots in {out}", (
        ("policy / feature spec hash", f"{run.policy_version} / {run.spec_hash}"),
        ("as-of dates", f"{len(dates)} ({dates[0]} to {dates[-1]})"),
        ("seller-weeks (active sellers x dates)", f"{run.rows:,}"),
        ("sellers", f"{run.sellers:,}"),
        ("seller-weeks with a known label", f"{run.labelled_rows:,}"),
        ("base rate: breach within the horizon", _known_share(run.breach_rate)),
        ("early-warning set: compliant at t", f"{run.early_warning_share:.2%} of seller-weeks"),
        ("breach rate in the early-warning set", _known_share(run.early_warning_breach_rate)),
    ))


def _known_share(rate: float) -> str:
    """A breach rate as a percentage, or why there is none: no seller-week's horizon has passed yet
    (snapshots of recent dates only)."""
    if math.isnan(rate):
        return "not known yet: no seller-week's horizon has passed"
    return f"{rate:.2%}"


