"""The `seller-risk` command: the one composition root, where every sub-command translates its
arguments and delegates. Sub-commands import their modules lazily, so `--help` stays fast and
nothing runs at import time."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import typer

app = typer.Typer(
    help="Seller risk scoring: simulate a marketplace, validate events, build features, train and promote models.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def validate(
    events: Path = typer.Option(..., "--events", help="Directory of event tables (Parquet or CSV)."),
    cutoff: datetime | None = typer.Option(
        None, "--cutoff", help="Extract cut-off (UTC); default: the manifest's, else now."
    ),
) -> None:
    """Check an events directory against the schema and print every problem found (exit 1 if any)."""
    from features.validation import validate_dir
    from serving.console import print_problems

    problems = validate_dir(events, cutoff=cutoff)
    print_problems(problems, events)
    raise typer.Exit(code=1 if problems else 0)


@app.command()
def simulate(
    sellers: int = typer.Option(2000, "--sellers", min=1, help="Number of sellers."),
    start: datetime = typer.Option(
        "2025-01-06", "--start", formats=["%Y-%m-%d"], help="First day of events (evaluations are weekly from here)."
    ),
    weeks: int = typer.Option(52, "--weeks", min=1, max=520, help="Weeks of history to simulate."),
    seed: int = typer.Option(7, "--seed", help="Random seed: same seed, same bytes."),
    out: Path = typer.Option(Path("data/events"), "--out", help="Output directory for the event tables."),
    policy: str = typer.Option("walmart-us-2026", "--policy", help="Policy (name or YAML path) the marketplace enforces."),
    latent: bool = typer.Option(True, "--latent/--no-latent", help="Also write sellers' hidden propensities beside --out."),
) -> None:
    """Simulate a marketplace and write its event tables as Parquet, then print a summary."""
    from features.policy import load_policy
    from features.simulation.run import SimulationConfig, simulate_marketplace
    from serving.console import print_simulation_summary, progress_bar

    from features.policy import PolicyError

    config = SimulationConfig(
        n_sellers=sellers, start=date(start.year, start.month, start.day), weeks=weeks, seed=seed
    )
    try:
        marketplace_policy = load_policy(policy)
        with progress_bar("Simulating sellers") as advance:
            summary = simulate_marketplace(config, marketplace_policy, out, write_latent=latent, progress=advance)
    except (PolicyError, FileExistsError) as err:
        _fail(str(err))
    print_simulation_summary(summary, out)


@app.command()
def features(
    events: Path = typer.Option(..., "--events", help="Directory of validated event tables."),
    out: Path = typer.Option(Path("data/features"), "--out", help="Output directory for the snapshots."),
    as_of: list[datetime] | None = typer.Option(
        None, "--as-of", formats=["%Y-%m-%d"], help="As-of date (repeatable); default: every weekly date."
    ),
    policy: str = typer.Option("walmart-us-2026", "--policy", help="Policy (name or YAML path)."),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb (embedded default) or spark (local mode)."),
) -> None:
    """Build point-in-time feature snapshots and labels for every active seller at every weekly date."""
    from features.policy import PolicyError, load_policy
    from features.snapshots import build_snapshots
    from features.validation import EventValidationError
    from serving.console import print_snapshot_summary, spinner

    if engine not in {"duckdb", "spark"}:
        _fail(f"--engine must be duckdb or spark, not {engine!r}")
    dates = [d.date() for d in as_of] if as_of else None
    try:
        with spinner(f"Building feature snapshots with {engine}"):
            run = build_snapshots(events, out, load_policy(policy), as_of=dates, engine=engine)  # type: ignore[arg-type]
    except (PolicyError, FileExistsError, EventValidationError, ValueError) as err:
        _fail(str(err))
    print_snapshot_summary(run, out)


@app.command()
def train(
    features_dir: Path = typer.Option(Path("data/features"), "--features", help="Snapshots with labels (from `features`)."),
    models: Path = typer.Option(Path("models"), "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
    trials: int = typer.Option(30, "--trials", min=1, help="Hyperparameter search trials at most."),
    budget: float = typer.Option(120.0, "--budget", min=1.0, help="Search time budget in seconds."),
    seed: int = typer.Option(7, "--seed", help="Seed: same data, same trials, same model."),
    folds: int = typer.Option(3, "--folds", min=1, max=12, help="Rolling-origin backtest folds."),
) -> None:
    """Search, backtest against the baselines and the champion, and register the model as the challenger."""
    from serving.console import print_training_summary, staged_progress
    from training.train import TrainConfig, train as run_training

    try:
        with staged_progress() as report:
            result = run_training(TrainConfig(features_dir, models, seed, trials, budget, folds), report)
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
    print_training_summary(result)


@app.command()
def promote(
    models: Path = typer.Option(Path("models"), "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
    force: bool = typer.Option(False, "--force", help="Promote even when the gate failed (recorded as forced)."),
) -> None:
    """Move seller-risk@champion to the challenger when its gate passed (exit 1 and the reasons if not)."""
    from features.registry import MODEL_NAME, use_store
    from serving.console import print_move
    from training.promotion import promote as run_promote

    use_store(models)
    move = run_promote(MODEL_NAME, models, force=force)
    print_move(move)
    raise typer.Exit(code=0 if move.done else 1)


@app.command()
def rollback(
    models: Path = typer.Option(Path("models"), "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
) -> None:
    """Move seller-risk@champion back to the previous champion."""
    from features.registry import MODEL_NAME, use_store
    from serving.console import print_move
    from training.promotion import rollback as run_rollback

    use_store(models)
    move = run_rollback(MODEL_NAME, models)
    print_move(move)
    raise typer.Exit(code=0 if move.done else 1)


@app.command()
def score(
    events: Path | None = typer.Option(None, "--events", help="Event tables to build the week's snapshot from (when --features lacks it)."),
    out: Path = typer.Option(Path("data/scores"), "--out", help="Output folder: one as_of=YYYY-MM-DD partition per week."),
    as_of: datetime | None = typer.Option(None, "--as-of", formats=["%Y-%m-%d"], help="Week to score; default: the latest complete week."),
    model: str = typer.Option("models:/seller-risk@champion", "--model", help="Registry URI of the model."),
    features_dir: Path | None = typer.Option(None, "--features", help="Snapshots to read the week from, when they hold it."),
    models: Path = typer.Option(Path("models"), "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
    reasons: int = typer.Option(5, "--reasons", min=0, max=20, help="Top reasons per seller."),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows", min=1, help="Sellers scored per chunk (bounds memory)."),
) -> None:
    """Score and explain every active seller of a week, write the partition whole, print and log the summary."""
    from serving.batch import BatchConfig, BatchError, run_batch
    from serving.console import print_riskiest, print_score_summary, progress_bar

    if events is None and features_dir is None:
        _fail("give --events (and/or --features) to score from")
    cfg = BatchConfig(out, events, features_dir, as_of.date() if as_of else None, model, models, reasons, chunk_rows)
    try:
        with progress_bar("Scoring sellers") as advance:
            result = run_batch(cfg, advance)
    except (BatchError, FileExistsError) as err:
        _fail(str(err))
    print_score_summary(result.summary)
    print_riskiest(result.riskiest)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="TCP port."),
    features_dir: Path = typer.Option(Path("data/features"), "--features", help="Feature snapshots (from `features`); the latest is served."),
    model: str = typer.Option("models:/seller-risk@champion", "--model", help="Registered model: an alias or a version."),
    models: Path = typer.Option(Path("models"), "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes (one per core)."),
) -> None:
    """Serve scores with reasons over HTTP (BentoML) until Ctrl-C; /docs has the API."""
    from features.risk_model import ModelSpecMismatch
    from serving.console import print_serving
    from serving.scoring import Scorer, Snapshot
    from serving.serve import bentoml_command

    try:  # refuse here, with one clear line, what every worker would refuse at start
        scorer = Scorer.load(model, models)
        snapshot = Snapshot.load(features_dir, scorer)
    except (LookupError, FileNotFoundError, ModelSpecMismatch, ValueError) as err:
        _fail(str(err))
    command, env = bentoml_command(host, port, scorer, features_dir, models, workers)
    print_serving(scorer, snapshot, host, port)
    import os

    os.execve(command[0], command, env)  # Ctrl-C goes straight to BentoML, which stops its workers


def _fail(message: str) -> None:
    """Stop with a message a person can act on (exit status 2), not a traceback."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code=2)


if __name__ == "__main__":  # pragma: no cover
    app()
