"""The `serving` package's commands: `score` a week in batch and `serve` over HTTP; and what each
prints. `serving.main` assembles them into `seller-risk`."""

from __future__ import annotations

import signal
from datetime import datetime
from pathlib import Path

from rich.table import Table

import typer

from features.platform.settings import CHAMPION_URI, DATA_DIR, MODELS_DIR
from features.platform.terminal import console, fail, num, print_facts

commands = typer.Typer()


@commands.command()
def score(
    events: Path | None = typer.Option(None, "--events", help="Event tables to build the week's snapshot from (when --features lacks it); with neither given: <data>/events."),
    out: Path | None = typer.Option(None, "--out", help="Output folder: one as_of=YYYY-MM-DD partition per week (default: SELLER_RISK_SCORES, else <data>/scores)."),
    as_of: datetime | None = typer.Option(None, "--as-of", formats=["%Y-%m-%d"], help="Week to score; default: the latest complete week."),
    model: str = typer.Option(CHAMPION_URI, "--model", help="Registry URI of the model."),
    features_dir: Path | None = typer.Option(None, "--features", help="Snapshots to read the week from, when they hold it; with neither given: <data>/features."),
    models: Path = typer.Option(MODELS_DIR, "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
    reasons: int = typer.Option(5, "--reasons", min=0, max=20, help="Top reasons per seller."),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows", min=1, help="Sellers scored per chunk (bounds memory)."),
) -> None:
    """Score and explain every active seller of a week, write the partition whole, print and log the summary.

    SIGINT or SIGTERM stops it with one line (exit 130 or 143): the previous week's partition is kept."""
    from features.platform.settings import Settings
    from serving.batch.job import BatchConfig, run_batch
    from serving.batch.signals import stop_signal, stop_signals
    from serving.batch.snapshot import BatchError
    from features.platform.terminal import progress_bar
    from models.registry import RegistryError, store_errors

    settings = Settings.from_env()
    if events is None and features_dir is None:
        events, features_dir = default_sources(settings.events_dir, settings.features_dir)
    cfg = BatchConfig(out or settings.scores_dir, events, features_dir, as_of.date() if as_of else None, model, models,
                      reasons, chunk_rows)
    try:
        with stop_signals(), store_errors(), progress_bar("Scoring sellers") as advance:
            result = run_batch(cfg, advance)
    except (BatchError, FileExistsError, RegistryError) as err:
        fail(str(err))
    except KeyboardInterrupt as stop:
        signum = stop_signal(stop)
        typer.secho(f"stopped by {signal.Signals(signum).name}: no scores written for this run; "
                    f"{cfg.out} keeps its previous weeks as they were", err=True)
        raise typer.Exit(code=128 + signum) from None
    print_score_summary(result.summary)
    print_early_warning(result.early_warning, result.summary["early_warning"]["sellers"])
    print_recovery(result.recovery, result.summary["recovery"]["sellers"])


def default_sources(events: Path, features_dir: Path) -> tuple[Path | None, Path | None]:
    """The settings' event tables and feature snapshots (<data>/events, <data>/features), those that
    exist; neither: stop with one line naming both."""
    found = (events if events.exists() else None, features_dir if features_dir.exists() else None)
    if found == (None, None):
        fail(f"nothing to score from: neither {events} nor {features_dir} exists (the defaults, under "
             "SELLER_RISK_DATA); give --events or --features, or run `seller-risk simulate` and `features` first")
    return found


@commands.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="TCP port."),
    features_dir: Path = typer.Option(DATA_DIR / "features", "--features", help="Feature snapshots (from `features`); the latest is served."),
    model: str = typer.Option(CHAMPION_URI, "--model", help="Registered model: an alias or a version."),
    models: Path = typer.Option(MODELS_DIR, "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes (one per core)."),
    db: str | None = typer.Option(None, "--db", help="Decisions and audit database URL (default: SELLER_RISK_DB, else sqlite:///<data>/console.db)."),
) -> None:
    """Serve scores with reasons over HTTP (BentoML) until Ctrl-C; /docs has the API."""
    from models.registry import RegistryError, store_errors
    from models.risk_model import ModelSpecMismatch
    from serving.scoring import Scorer, Snapshot
    from serving.api.launch import bentoml_command

    problem = exposed_secret(db)
    if problem:
        fail(f"refusing to serve: {problem}")
    try:  # refuse here, with one clear line, what every worker would refuse at start
        with store_errors():
            scorer = Scorer.load(model, models)
            snapshot = Snapshot.load(features_dir, scorer)
    except (LookupError, FileNotFoundError, ModelSpecMismatch, ValueError, RegistryError) as err:
        fail(str(err))
    command, env = bentoml_command(host, port, scorer, features_dir, models, workers, db)
    print_serving(scorer, snapshot, host, port)
    import os

    os.execve(command[0], command, env)  # Ctrl-C goes straight to BentoML, which stops its workers


def exposed_secret(db: str | None) -> str | None:
    """The first file holding secrets (the SQLite database with its password hashes and sessions, its
    write-ahead log, the console's session key) that group or others can read, as one line saying how to
    fix it; None when all are private."""
    from features.platform.settings import Settings
    from serving.console.sessions import KEY_FILE
    from serving.store.db import exposed, sqlite_file

    settings = Settings.from_env()
    try:
        database = sqlite_file(db or settings.db_url)
    except ValueError as err:
        return str(err)
    paths = [] if database is None else [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))]
    if not settings.secret_key:
        paths.append(settings.data / KEY_FILE)
    return next((problem for problem in map(exposed, paths) if problem), None)


@commands.command()
def replay(
    record_id: str = typer.Argument(..., help="The record's id (`record_id` of a served or batch score record)."),
    db: str | None = typer.Option(None, "--db", help="Decisions and audit database URL (default: SELLER_RISK_DB, else sqlite:///<data>/console.db)."),
    scores: Path | None = typer.Option(None, "--scores", help="The weekly score table (default: SELLER_RISK_SCORES, else <data>/scores)."),
    features_dir: Path | None = typer.Option(None, "--features", help="Feature snapshots a batch record is recomputed from (default: <data>/features)."),
    models: Path | None = typer.Option(None, "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
) -> None:
    """Recompute a served or batch score record from its stored feature values and model version, bit for bit.

    Exit 0: identical; 1: it differs (the fields are named); 2: it cannot be replayed (the reason)."""
    from features.platform.settings import Settings
    from serving.replay import ReplayImpossible, facts
    from serving.replay import replay as run_replay

    settings = Settings.from_env()
    try:
        result = run_replay(record_id, db or settings.db_url, scores or settings.scores_dir,
                            features_dir or settings.features_dir, models or settings.models)
    except ReplayImpossible as err:
        fail(str(err))
    print_facts(f"Replay of record {record_id}", facts(result))
    if not result.identical:
        for line in result.differences:
            console.print(f"differs: {line}", soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(code=1)


def print_score_summary(summary: dict) -> None:
    """A weekly scoring run at a glance: bands, expected case volume, queue coverage, risers, drift."""
    eb, cap, m = summary["expected_breaches"], summary["review_capacity"], summary["model"]
    n = summary["sellers_scored"]
    f = summary.get("breach_forecast")
    plan = () if not f else ((
        "breaches to plan for (compliant now)",
        f"{f['planned']:,.1f} ({f['interval_level']:.0%} interval {f['low']:,.1f} to {f['high']:,.1f}; "
        f"{f['interval_includes']})"),)
    print_facts(f"Scores for {summary['as_of']} (run {summary['run_id']})", (
        ("model / policy", f"{m['name']} v{m['version']} / {summary['policy_version']}"),
        ("snapshot", summary["snapshot"]),
        ("sellers scored", f"{n:,}"),
        (f"expected breaches within {eb['horizon_days']} days",
         f"{eb['expected']:,.1f} ({eb['interval_level']:.0%} interval {eb['low']:,.1f} to {eb['high']:,.1f})"),
        *plan,
        ("weekly review capacity", f"{cap['sellers']:,} sellers"),
        ("early-warning queue (compliant now)",
         f"{summary['early_warning']['sellers']:,} sellers (risk >= {summary['early_warning']['lowest_score']:.3f}), "
         f"{summary['early_warning']['expected_breaches']:,.1f} "
         f"expected breaches ({summary['early_warning']['share_of_expected_breaches_of_compliant']:.1%} of those "
         "expected among compliant sellers)"),
        ("recovery list (missing a standard now)", f"{summary['recovery']['sellers']:,} sellers"),
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
        table.add_row(d["variable"], num(d["psi"]), f"[{colour.get(level, 'white')}]{level}[/]")
    console.print(table)


def print_early_warning(rows: list[dict], size: int) -> None:
    """The top of this week's early-warning queue with their reasons by standard, as a reviewer reads them
    (a seller whose standard at risk has no reason: the line saying its risk comes from being judged)."""
    from serving.console.tables import record_at_risk

    table = Table(title=f"Early-warning queue: the first {len(rows)} of {size:,} sellers compliant now", show_lines=True)
    for name, justify in (("#", "right"), ("seller", "left"), ("score", "right"), ("band", "left"),
                          ("standards at risk", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for r in rows:
        reasons = "\n".join(f"{x['rank']}. {x['text']}" for x in r["reasons"])
        _, said, kind = record_at_risk(r)
        if kind == "judged":  # its standard at risk has no reason: the line the queue page shows, first
            reasons = f"{said}\n{reasons}" if reasons else said
        table.add_row(str(r["queue_rank"]), r["seller_id"], f"{r['risk_score']:.3f}", r["risk_band"], reasons)
    console.print(table)


def print_recovery(rows: list[dict], size: int) -> None:
    """The top of this week's recovery list with what brings each missed standard back."""
    table = Table(title=f"Recovery list: the first {len(rows)} of {size:,} sellers missing a standard now",
                  show_lines=True)
    for name, justify in (("#", "right"), ("seller", "left"), ("score", "right"), ("recovery path", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for r in rows:
        path = "\n".join(f"- {x['text']}" for x in r["recovery"])
        table.add_row(str(r["queue_rank"]), r["seller_id"], f"{r['risk_score']:.3f}", path)
    console.print(table)


def print_serving(scorer, snapshot, host: str, port: int) -> None:
    """What is about to be served, and a request to paste."""
    import json
    import shlex

    from serving.api.routes import DOCS, READYZ, SCORE_SELLER

    ids = list(snapshot.index)  # in row order
    riskiest = int(scorer.model.probability(snapshot.X).argmax()) if ids else None
    seller = ids[riskiest] if riskiest is not None else "S0000000"
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    body = json.dumps(SCORE_SELLER.example(seller))
    console.print(f"Serving [bold]{scorer.ref.name} v{scorer.ref.version}[/] (policy {scorer.policy.version}, "
                  f"feature spec {scorer.spec.hash}) on {url}; features as of {snapshot.as_of} "
                  f"for {len(snapshot):,} sellers. Ctrl-C stops it.")
    console.print(f"API docs: {url}{DOCS.path}   ready when: curl -sf {url}{READYZ.path}")
    console.print("Try the riskiest seller of the snapshot:" if ids else "Try:", soft_wrap=True)
    console.print(f"  curl -s -X {SCORE_SELLER.method} {url}{SCORE_SELLER.path} -H 'Content-Type: application/json' "
                  f"-d {shlex.quote(body)}",
                  soft_wrap=True, highlight=False)
