"""The `training` package's commands: `train` a challenger, `promote` it to champion, `rollback`;
and what each prints. `serving.main` assembles them into `seller-risk`."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

import typer

from features.platform.settings import DATA_DIR, MODELS_DIR
from features.platform.terminal import console, fail, num, print_facts

commands = typer.Typer()


@commands.command()
def train(
    features_dir: Path = typer.Option(DATA_DIR / "features", "--features", help="Snapshots with labels (from `features`)."),
    models: Path = typer.Option(MODELS_DIR, "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
    trials: int = typer.Option(30, "--trials", min=1, help="Hyperparameter search trials at most."),
    budget: float | None = typer.Option(
        None, "--budget", min=1.0,
        help="Safety limit on the search in seconds (default none: every trial runs, so one seed gives one model)."),
    seed: int = typer.Option(7, "--seed", help="Seed: same data, same trials, same model."),
    folds: int = typer.Option(3, "--folds", min=1, max=12, help="Rolling-origin backtest folds."),
    decisions: Path | None = typer.Option(
        None, "--decisions", help="Reviewers' decisions (`seller-risk decisions export`); default <data>/decisions.parquet "
                                  "when it exists. Seller-weeks after a contact or warning are kept out of the fit and "
                                  "reported apart."),
) -> None:
    """Search, backtest against the baselines and the champion, and register the model as the challenger."""
    from features.platform.terminal import staged_progress
    from models.registry import RegistryError, store_errors
    from training.train import TrainConfig, train as run_training

    try:
        with store_errors(), staged_progress() as report:
            if decisions is None and (DATA_DIR / "decisions.parquet").is_file():
                decisions = DATA_DIR / "decisions.parquet"
            result = run_training(TrainConfig(features_dir, models, seed, trials, budget, folds, decisions=decisions),
                                  report)
    except (FileNotFoundError, ValueError, RegistryError) as err:
        fail(str(err))
    print_training_summary(result)


@commands.command()
def promote(
    models: Path = typer.Option(MODELS_DIR, "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
    force: bool = typer.Option(False, "--force", help="Promote even when the gate failed (recorded as forced)."),
) -> None:
    """Move seller-risk@champion to the challenger when its gate passed (exit 1 and the reasons if not)."""
    from models.registry import MODEL_NAME, RegistryError, store_errors, use_store
    from training.promotion import promote as run_promote

    try:
        with store_errors():
            use_store(models)
            move = run_promote(MODEL_NAME, models, force=force)
    except RegistryError as err:
        fail(str(err))
    print_move(move)
    raise typer.Exit(code=0 if move.done else 1)


@commands.command()
def rollback(
    models: Path = typer.Option(MODELS_DIR, "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
) -> None:
    """Move seller-risk@champion back to the previous champion (exit 2 and why when there is none)."""
    from models.registry import MODEL_NAME, RegistryError, store_errors, use_store
    from training.promotion import rollback as run_rollback

    try:
        with store_errors():
            use_store(models)
            move = run_rollback(MODEL_NAME, models)
    except RegistryError as err:
        fail(str(err))
    if not move.done:
        fail("; ".join(move.reasons))
    print_move(move)


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
                      *(num(row[k], pct=k in {"precision_at_capacity", "recall_at_capacity", "base_rate"})
                        for _, k in cols[2:]))
    console.print(table)
    for fold in result.folds:
        console.print(f"  {fold.describe()}")
    console.print(_standards_table(result))
    console.print(_reasons_table(result))
    s = result.size
    search = result.search
    print_facts("Model", (
        ("registered as", f"seller-risk v{result.version} (alias challenger)"),
        ("MLflow run / store", f"{result.run_id} / {result.tracking_uri}"),
        ("search", (f"{len(search.trials)} trials, chose #{search.chosen.number} (best PR AUC #{search.best.number})"
                    + (f"; CUT SHORT by --budget {search.budget_s:g} s after {len(search.trials)} of {search.asked} "
                       "trials: this model depends on the machine's speed" if search.cut_short else ""))
                   if search else "skipped (fixed parameters)"),
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


def _standards_table(result) -> Table:
    """Each standard's risk on the early-warning sellers, and how often the queue named it at risk."""
    per = Table(title="Risk per standard, early-warning sellers (backtest, pooled)")
    for name in ("standard", "breaches", "base rate", "PR AUC", "PR AUC / base rate", "ECE",
                 "at risk in the queue (breached)", "of them breached it"):
        per.add_column(name, justify="left" if name == "standard" else "right")
    prefix = "lightgbm.pooled.early_warning.standard."
    metrics = result.backtest.metrics
    for m in result.model.standard_names:
        g = {k: metrics.get(f"{prefix}{m}.{k}", float("nan")) for k in ("positives", "base_rate", "pr_auc", "ece")}
        named = metrics.get(f"lightgbm.pooled.queue.reasons.{m}.named", float("nan"))
        per.add_row(m, f"{g['positives']:,.0f}" if g["positives"] == g["positives"] else "-", num(g["base_rate"], pct=True), num(g["pr_auc"]),
                    num(g["pr_auc"] / g["base_rate"]) if g["base_rate"] else "-", num(g["ece"]),
                    f"{named:,.0f}" if named == named else "-",
                    num(metrics.get(f"lightgbm.pooled.queue.reasons.{m}.accuracy", float("nan")), pct=True))
    return per


def _reasons_table(result) -> Table:
    """Reason accuracy: of the early-warning sellers who breached (on the weekly queue, and all of them),
    how often the standard named was one they breached: the model's standard at risk, first reason and
    any reason, against the rule's pick (the evaluated standard closest to its threshold)."""
    table = Table(title="Do the reasons name the breach? Early-warning sellers who breached (backtest, pooled)")
    cols = (("breached sellers", "breached_sellers"), ("with reasons", "with_reasons"),
            ("standard at risk", "standard_at_risk"), ("first reason", "first_reason"), ("any reason", "any_reason"),
            ("rule's pick", "rule_pick"))
    table.add_column("sellers")
    for name, _ in cols:
        table.add_column(name, justify="right")
    metrics = result.backtest.metrics
    for population, words in (("queue", "on the weekly queue"), ("early_warning", "all early-warning")):
        values = [metrics.get(f"lightgbm.pooled.{population}.reasons.{k}", float("nan")) for _, k in cols]
        table.add_row(words, f"{values[0]:,.0f}" if values[0] == values[0] else "-",
                      *(num(v, pct=True) for v in values[1:]))
    return table


def print_move(move) -> None:
    """What a promote or rollback did, and why."""
    verdict = "[green]done[/]" if move.done else "[red]refused[/]"
    console.print(f"{move.action} {verdict}: champion {move.from_version or 'none'} -> "
                  f"{(move.to_version if move.done else move.from_version) or 'none'}")
    for reason in move.reasons:
        console.print(f"  {reason}")


