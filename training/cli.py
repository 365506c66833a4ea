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
def ablation(
    features_dir: Path = typer.Option(DATA_DIR / "features", "--features", help="Snapshots with labels (from `features`)."),
    models: Path = typer.Option(MODELS_DIR, "--models", help="The embedded MLflow store (ignored when MLFLOW_TRACKING_URI is set)."),
    params: str | None = typer.Option(
        None, "--params", help='LightGBM parameters as JSON, e.g. \'{"learning_rate": 0.04, "num_leaves": 32}\'; '
                               "default: the champion's (the search's starting point when there is none)."),
    groups: list[str] | None = typer.Option(None, "--group", help="A feature family to drop (repeat); default: every family."),
    seed: int = typer.Option(7, "--seed", help="Seed: same data, same parameters, same models."),
    folds: int = typer.Option(3, "--folds", min=1, max=12, help="Rolling-origin backtest folds."),
) -> None:
    """Backtest again without each feature family in turn (behaviour, mechanics, world, history, exposure,
    context): what each adds to the early-warning PR AUC and the queue's precision; logged to MLflow."""
    from features.platform.terminal import staged_progress
    from models.registry import RegistryError, store_errors, use_store
    from training.ablation import GROUPS, ablate, log_ablation
    from training.dataset import load_training_set, untouched
    from training.folds import rolling_origin

    try:
        chosen = tuple(groups) if groups else GROUPS
        unknown = [g for g in chosen if g not in GROUPS]
        if unknown:
            raise ValueError(f"--group {', '.join(unknown)}: unknown feature group; expected one of {', '.join(GROUPS)}")
        with store_errors():
            use_store(models)
            fixed, source = _ablation_params(params)
        data = load_training_set(features_dir)
        plan = rolling_origin(data.dates, data.policy.horizon_days, folds)
        with staged_progress() as report:
            runs = ablate(untouched(data.frame), plan, data.spec, data.policy, fixed, seed, chosen, report)
        console.print(ablation_table(runs))  # before logging: a store gone down meanwhile loses no result
        with store_errors():
            run_id = log_ablation(runs, fixed, source, plan, data.spec, seed, models)
    except (FileNotFoundError, ValueError, RegistryError) as err:
        fail(str(err))
    console.print(f"  parameters: {source}; MLflow run {run_id}")


def _ablation_params(given: str | None) -> tuple[dict, str]:
    """The fixed parameters of an ablation and where they came from: given as JSON, the champion's, or
    the search's starting point; LightGBM's threads always the settings'."""
    import json

    from features.platform.settings import Settings
    from training.ablation import champion_params
    from training.search import best_guess

    threads = {"num_threads": Settings.from_env().train_threads}
    if given is not None:
        try:
            parsed = json.loads(given)
        except json.JSONDecodeError as err:
            raise ValueError(f"--params is not JSON ({err.msg} at character {err.pos}): {given}") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"--params must be a JSON object of LightGBM parameters, not {given}")
        return {**best_guess(), **parsed, **threads}, "given (--params)"
    champion = champion_params()
    if champion is not None:
        return {**champion[0], **threads}, f"champion v{champion[1]}"
    return {**best_guess(), **threads}, "the search's starting point (no champion)"


def ablation_table(runs) -> Table:
    """Each family's worth: the backtest without it against the one with every feature."""
    from training.ablation import ALL, table as rows

    out = Table(title="Feature ablation: the backtest without each family (early-warning sellers, pooled test weeks)")
    for name in ("left out", "features", "PR AUC", "change", "queue precision @ capacity", "change ", "ECE (all)", "note"):
        out.add_column(name, justify="left" if name in {"left out", "note"} else "right")
    for r in rows(runs).to_dict("records"):
        base = r["group"] == ALL
        out.add_row(r["group"], str(r["features_dropped"]), num(r["pr_auc"]),
                    "" if base else _signed(r["pr_auc_change"]), num(r["queue_precision"], pct=True),
                    "" if base else _signed(r["queue_precision_change"], pct=True), num(r["ece"]), r["note"],
                    end_section=base)
    return out


def _signed(value: float, pct: bool = False) -> str:
    """A change with its sign (a share's in percentage points); a drop in red (the family was worth that much)."""
    if value != value:
        return "-"
    text = f"{100 * value:+.1f} pp" if pct else f"{value:+.4f}"
    return f"[red]{text}[/]" if value < 0 else text


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
    console.print(calibration_table(result.folds, result.backtest))
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


def calibration_table(folds, backtest) -> Table:
    """The model's calibration in each test week (all sellers and early-warning sellers: breached, expected,
    calibration error), then pooled over the weeks, and the worst week marked: a seasonal peak shows here
    before it hides in the pooled figure."""
    from training.backtest import MODEL
    from training.metrics import worst_week

    weekly = backtest.weekly[backtest.weekly["model"] == MODEL]
    fold_of = {d: f.name for f in folds for d in f.test}
    table = Table(title="Calibration week by week, backtest test weeks (ECE: 10 equal-width bins)")
    for name in ("week", "fold", "breached", "expected", "ECE", "early-warning breached", "expected ", "ECE "):
        table.add_column(name, justify="left" if name in {"week", "fold"} else "right")
    pops = ("all", "early_warning")
    worst = {p: worst_week(weekly, p) for p in pops}
    by = {p: weekly[weekly["population"] == p].set_index("as_of") for p in pops}
    for week in by["all"].index:
        cells = []
        for p in pops:
            r = by[p].loc[week] if week in by[p].index else None
            if r is None:
                cells += ["-", "-", "-"]
                continue
            ece = f"{r['ece']:.4f}"
            cells += [num(r["base_rate"], pct=True), num(r["mean_score"], pct=True),
                      f"[red]{ece}[/]" if week == worst[p][0] else ece]
        table.add_row(f"{week:%Y-%m-%d}", fold_of.get(week, "-"), *cells)
    pooled = []
    for p in pops:
        w = by[p]["n"] / by[p]["n"].sum()
        pooled += [num(float((w * by[p]["base_rate"]).sum()), pct=True), num(float((w * by[p]["mean_score"]).sum()), pct=True),
                   f"{backtest.metrics.get(f'{MODEL}.pooled.{p}.ece', float('nan')):.4f}"]
    table.add_row("pooled", "", *pooled, end_section=True)
    table.add_row("worst week", "", *(x for p in pops for x in
                  ("", f"{worst[p][0]:%Y-%m-%d}" if worst[p][0] is not None else "-", f"{worst[p][1]:.4f}")))
    return table


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


