"""What each feature family adds: the backtest run again with one family (`Feature.group`: behaviour,
mechanics, world, history, exposure, context) left out at a time, judged where the system earns its keep,
the early-warning population: its PR AUC and the precision of the reviewers' weekly queue at capacity,
each beside the model with every feature.

Every run uses the same folds, the same fixed parameters and seed, and the same fit as the backtest
(trees, early stopping, Platt calibration on the later slice), so a difference is the family's alone. The
per-standard boosters, the reasons and the baselines are left out: none of them changes the risk score
these two numbers judge, and the reasons need the behaviour family an ablation may drop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import get_args

import pandas as pd

from features.pipeline.spec import FeatureSpec, Group
from features.policy.definition import Policy
from models.risk_model import model_frame
from training.backtest import MODEL
from training.dataset import CONTEXT, untouched
from training.fit import fit_risk_model
from training.folds import Fold, rows
from training.metrics import evaluate

GROUPS: tuple[str, ...] = get_args(Group)
"""The families dropped in turn, in the order the table shows them."""
ALL = "none (all features)"
"""The row of the model with every feature: what each family's row is compared with."""
JUDGED = {"pr_auc": "early_warning.pr_auc", "queue_precision": "early_warning.precision_at_capacity",
          "ece": "all.ece"}
"""The table's numbers, by column: keys of `training.metrics.evaluate`."""


def without(spec: FeatureSpec, group: str) -> FeatureSpec:
    """The spec with the features of one family removed (same policy and terms: the labels do not
    change, only the model's inputs)."""
    if group not in GROUPS:
        raise ValueError(f"unknown feature group {group!r}; expected one of {', '.join(GROUPS)}")
    return FeatureSpec(spec.policy_version, tuple(f for f in spec.features if f.group != group), spec.policy_terms)


@dataclass(frozen=True)
class Run:
    """One backtest of the ablation: the family left out (ALL for none), what it removed, the model's
    pooled evaluation (`evaluate`, empty when skipped), the inputs of the models it fitted, and why it
    was skipped (empty when it ran)."""

    group: str
    dropped: tuple[str, ...]
    metrics: dict[str, float]
    inputs: tuple[str, ...]
    skipped: str = ""


def _model_rows(frame: pd.DataFrame, fold: Fold, spec: FeatureSpec, params: dict, seed: int) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The fold's model fitted on its past as the backtest fits it, and its scores on the test weeks."""
    train, valid, test = untouched(rows(frame, fold.train)), untouched(rows(frame, fold.valid)), rows(frame, fold.test)
    model = fit_risk_model(train, valid, spec, params, seed)
    out = test[CONTEXT].copy()
    out["score"] = model.probability(model_frame(test, spec))
    out["model"], out["fold"] = MODEL, fold.name
    return out, tuple(model.booster.feature_name())


def backtest_run(frame: pd.DataFrame, folds: list[Fold], spec: FeatureSpec, policy: Policy, params: dict, seed: int,
                 group: str = ALL, progress: Callable[[int, int], None] | None = None) -> Run:
    """The backtest without one family (`group`; ALL keeps every feature), or a skipped run saying why."""
    kept = spec if group == ALL else without(spec, group)
    dropped = tuple(n for n in spec.names if n not in set(kept.names))
    if group != ALL and not dropped:
        return Run(group, (), {}, (), "no features in this group: skipped")
    if not kept.features:
        return Run(group, dropped, {}, (), "it would leave no features: skipped")
    scored, inputs = [], ()
    for i, fold in enumerate(folds):
        part, inputs = _model_rows(frame, fold, kept, params, seed)
        scored.append(part)
        if progress:
            progress(i + 1, len(folds))
    metrics = evaluate(pd.concat(scored, ignore_index=True), policy.review_capacity)
    return Run(group, dropped, metrics, inputs)


def ablate(frame: pd.DataFrame, folds: list[Fold], spec: FeatureSpec, policy: Policy, params: dict, seed: int,
           groups: tuple[str, ...] = GROUPS, report: Callable[[str, int, int], None] | None = None) -> list[Run]:
    """The backtest with every feature, then once without each family in `groups`."""
    say = report or (lambda *_: None)
    runs = []
    for group in (ALL, *groups):
        stage = "Backtest with all features (folds)" if group == ALL else f"Backtest without {group} (folds)"
        say(stage, 0, len(folds))
        runs.append(backtest_run(frame, folds, spec, policy, params, seed, group,
                                 progress=lambda d, t, s=stage: say(s, d, t)))
    return runs


def table(runs: list[Run]) -> pd.DataFrame:
    """One row per run: the family left out, how many features and which, each judged number and its
    change against all features (NaN for a skipped run, which says why in `note`)."""
    base = next(r for r in runs if r.group == ALL)
    records = []
    for r in runs:
        row = {"group": r.group, "features_dropped": len(r.dropped), "dropped": ", ".join(r.dropped), "note": r.skipped}
        for column, key in JUDGED.items():
            value = r.metrics.get(key, float("nan"))
            row[column] = value
            row[f"{column}_change"] = value - base.metrics.get(key, float("nan")) if r.group != ALL else 0.0
        records.append(row)
    return pd.DataFrame.from_records(records)


def run_metrics(runs: list[Run]) -> dict[str, float]:
    """Flat metrics for the tracking run: "<group>.<population>.<metric>" of each run that ran
    ("all_features" for the model with every feature)."""
    return {f"{'all_features' if r.group == ALL else 'without_' + r.group}.{k}": float(v)
            for r in runs for k, v in r.metrics.items()}


# ------------------------------------------------------------------ the command's flow (I/O)

ABLATIONS_EXPERIMENT = "seller-risk-ablations"


def _value(text: str) -> int | float | str:
    """A parameter as MLflow stored it (text) back to the number LightGBM was given."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def champion_params() -> tuple[dict, str] | None:
    """The LightGBM parameters the champion was trained with (its run's "lgb.*" parameters) and its
    version, or None when there is no champion."""
    from mlflow import MlflowClient

    from models.registry import CHAMPION, MODEL_NAME, alias_version, store_errors

    client = MlflowClient()
    version = alias_version(client, MODEL_NAME, CHAMPION)
    if version is None:
        return None
    with store_errors():
        run = client.get_run(client.get_model_version(MODEL_NAME, version).run_id)
    params = {k.removeprefix("lgb."): _value(v) for k, v in run.data.params.items() if k.startswith("lgb.")}
    return params, version


def log_ablation(runs: list[Run], params: dict, source: str, folds: list[Fold], spec: FeatureSpec, seed: int,
                 models_dir) -> str:
    """One MLflow run in the ablations experiment: the parameters and where they came from, the folds,
    every run's pooled evaluation as metrics, and the table as an artifact; returns the run id."""
    import mlflow

    from models.registry import ensure_experiment

    exp = ensure_experiment(ABLATIONS_EXPERIMENT, models_dir)
    with mlflow.start_run(experiment_id=exp, run_name=f"ablation {folds[-1].test[-1]:%Y-%m-%d}") as run:
        mlflow.set_tags({"feature_spec_hash": spec.hash, "params_from": source})
        mlflow.log_params({**{f"lgb.{k}": v for k, v in params.items()}, "seed": seed,
                           "groups": ",".join(r.group for r in runs[1:]),
                           "folds": " ; ".join(f.describe() for f in folds)})
        mlflow.log_metrics(run_metrics(runs))
        mlflow.log_text(table(runs).to_csv(index=False), "ablation.csv")
    return run.info.run_id
