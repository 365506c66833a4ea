"""`seller-risk train`: search, backtest, gate, fit the final model and record it all in MLflow.

The steps, each a pure function elsewhere in `training/`: read the labelled snapshots; lay out the
rolling-origin folds; search hyperparameters on the first fold's own past; backtest the chosen
model, the baselines and the current champion on the same test weeks; decide the promotion gate;
fit the final model on all weeks; log parameters, metrics, plots, fingerprints and the model
(LightGBM's native format) and register it as `seller-risk@challenger`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import pandas as pd

from features.platform import layout
from features.platform.fingerprint import fingerprint
from features.platform.settings import MODELS_DIR, Settings
from models.registry import CHALLENGER, CHAMPION as CHAMPION_ALIAS, EXPERIMENT, MODEL_NAME, ensure_experiment, use_store
from models.reasons.choose import reason_sources
from models.risk_model import RiskModel, model_frame
from training.backtest import CHAMPION, LOGREG, MODEL, ON_CHAMPION_WEEKS, RULE, Backtest, Champion, run_backtest
from training.dataset import TrainingSet, load_training_set, untouched
from training.fit import ModelSize, fit_risk_model, model_size
from training.folds import Fold, final_split, rolling_origin, rows
from training.metrics import at_capacity
from training.promotion import Gate, GateBounds, decide
from training.search import SearchResult, best_guess, search

Report = Callable[[str, int, int], None]
SHAP_ROWS = 3000


@dataclass(frozen=True)
class TrainConfig:
    features_dir: Path
    models_dir: Path = MODELS_DIR
    seed: int = 7
    n_trials: int = 30
    budget_s: float | None = None  # a safety limit on the search; None: run every trial
    n_folds: int = 3
    test_weeks: int = 4
    valid_weeks: int = 4
    params: dict | None = None  # fixed hyperparameters: skip the search
    threads: int = field(default_factory=lambda: Settings.from_env().train_threads)  # LightGBM's, part of the params
    decisions: Path | None = None  # reviewers' exported decisions (`seller-risk decisions export`), when there are any
    bounds: GateBounds = field(default_factory=GateBounds)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    version: str
    model: RiskModel
    params: dict
    size: ModelSize
    folds: list[Fold]
    backtest: Backtest
    gate: Gate
    search: SearchResult | None
    champion_version: str | None
    tracking_uri: str


def _champion(spec_hash: str) -> tuple[Champion | None, str | None]:
    """The current champion's version, if any, and the champion to score beside the challenger when it
    can be: built for these features, with a training run that says which weeks it was fitted on."""
    from models.registry import AliasNotFound, fitted_weeks, load_risk_model

    try:
        model, ref = load_risk_model(f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}")
    except AliasNotFound:  # no champion yet; a registry that cannot be asked is not "no champion"
        return None, None
    weeks = fitted_weeks(ref)
    if model.spec_hash != spec_hash or weeks is None:
        return None, ref.version
    return Champion(model, pd.Timestamp(weeks.last)), ref.version


def _plots(bt: Backtest, model: RiskModel, data: TrainingSet, final: Fold, capacity) -> dict:
    from training import plots

    figs = {}
    pooled = {m: bt.pooled(m) for m in (MODEL, LOGREG, RULE, CHAMPION) if (bt.scored["model"] == m).any()}
    for pop, sel in (("all", lambda d: d), ("early_warning", lambda d: d[d["compliant_at_t"]])):
        figs[f"plots/pr_curve_{pop}.png"] = plots.pr_curves(
            {m: (sel(d)["breach"].to_numpy(), sel(d)["score"].to_numpy()) for m, d in pooled.items()},
            f"Precision-recall on the backtest's test weeks ({pop.replace('_', '-')} sellers)")
    lgb_rows = pooled[MODEL]
    figs["plots/calibration.png"] = plots.calibration_curve(
        lgb_rows["breach"].to_numpy(), lgb_rows["score"].to_numpy(), "Calibration of the breach score (backtest)")
    figs["plots/lift_at_capacity_by_week.png"] = plots.lift_by_week(
        {m: at_capacity(d, capacity, population="early_warning") for m, d in pooled.items()},
        "Lift at reviewer capacity by week (early-warning sellers)")
    recent = rows(data.frame, final.valid)
    sample = recent.sample(min(SHAP_ROWS, len(recent)), random_state=0)
    X = model_frame(sample, data.spec)
    contrib, _ = model.contributions(X)
    figs["plots/shap_summary.png"] = plots.shap_summary(contrib, X, "What drives the final model's breach score (SHAP)")
    return figs


def _log(result_parts: dict, cfg: TrainConfig, data: TrainingSet, features_dir: Path) -> tuple[str, str]:
    """One MLflow run with everything a reviewer of the model needs; returns (run id, version)."""
    import mlflow

    gate: Gate = result_parts["gate"]
    exp = ensure_experiment(EXPERIMENT, cfg.models_dir)
    fingerprints = {"data_fingerprint": fingerprint(features_dir),
                    "events_fingerprint": data.manifest.get("events_fingerprint", "unknown")}
    with mlflow.start_run(experiment_id=exp, run_name=f"train {data.manifest['as_of_dates'][-1]}") as run:
        mlflow.set_tags({"feature_spec_hash": data.spec.hash, "policy_version": data.policy.version,
                         **fingerprints, "gate": "passed" if gate.passed else "failed",
                         "compared_with_champion": gate.champion_version or "none"})
        mlflow.log_params(_run_params(result_parts, cfg, data, features_dir))
        _log_evaluation(result_parts, data)
        version = _log_model(result_parts["model"], data, result_parts["final"])
    _tag_challenger(version, data, gate, fingerprints)
    return run.info.run_id, version


def _run_params(result_parts: dict, cfg: TrainConfig, data: TrainingSet, features_dir: Path) -> dict:
    """How the model was made: LightGBM's parameters, the search, the splits, the data it read."""
    sr: SearchResult | None = result_parts["search"]
    return {**{f"lgb.{k}": v for k, v in result_parts["params"].items()},
            "seed": cfg.seed, "search.trials_asked": cfg.n_trials, "search.budget_s": cfg.budget_s or "none",
            "search.cut_short": bool(sr and sr.cut_short),
            "search.trials_run": len(sr.trials) if sr else 0,
            "search.chosen_trial": sr.chosen.number if sr else "fixed",
            "folds": " ; ".join(f.describe() for f in result_parts["folds"]),
            "final": result_parts["final"].describe(), "labelled_rows": len(data.frame),
            "after_intervention_rows": int(data.frame["after_intervention"].sum()),
            "decisions": str(cfg.decisions) if cfg.decisions else "none",
            "features": len(data.spec.names), "features_dir": str(features_dir.resolve()),
            "events": data.manifest.get("events", "unknown")}


def _log_evaluation(result_parts: dict, data: TrainingSet) -> None:
    """The backtest's metrics, the model's size, the gate, and the evaluation files and figures."""
    import matplotlib.pyplot as plt
    import mlflow

    bt: Backtest = result_parts["backtest"]
    size: ModelSize = result_parts["size"]
    sr: SearchResult | None = result_parts["search"]
    mlflow.log_metrics({k: float(v) for k, v in bt.metrics.items()})
    mlflow.log_metrics({"model.trees": size.trees, "model.leaves": size.leaves, "model.max_depth": size.max_depth,
                        "model.explanation_cost": size.explanation_cost})
    mlflow.log_text(result_parts["gate"].to_json(), "gate.json")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bt.segments.to_csv(tmp / "segments.csv", index=False)
        bt.weekly.to_csv(tmp / "calibration_by_week.csv", index=False, date_format="%Y-%m-%d")
        bt.scored.to_parquet(tmp / "backtest_scores.parquet", index=False)
        if sr:
            sr.table().to_csv(tmp / "search_trials.csv", index=False)
        (tmp / "leaks.json").write_text(json.dumps(bt.leaks, indent=2))
        (tmp / layout.SPEC_FILE).write_text(data.spec.to_json())
        mlflow.log_artifacts(str(tmp), "evaluation")
    for path, fig in result_parts["figures"].items():
        mlflow.log_figure(fig, path)
        plt.close(fig)  # the SHAP summary is drawn through pyplot, which keeps its figures


def _log_model(model: RiskModel, data: TrainingSet, final: Fold) -> str:
    """The model logged and registered under MODEL_NAME, with an input example and signature; returns its version."""
    import mlflow
    from mlflow.models import infer_signature

    example = model_frame(rows(data.frame, final.valid).head(5), data.spec)
    example = example.astype({c: "object" for c in data.spec.categorical})  # as a caller sends them
    signature = infer_signature(example, model.raw_score(model_frame(example, data.spec)))
    # requirements named here: inferring them would load the model again in a subprocess. MLflow
    # also tries the example through its generic pyfunc, which hands LightGBM text categories and
    # fails with a warning; our scorers read the model through RiskModel, so that check is muted.
    pyfunc_check = logging.getLogger("mlflow.models.model")
    level = pyfunc_check.level
    pyfunc_check.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as boosters:  # the per-standard boosters, in the same model version
            info = mlflow.lightgbm.log_model(model.booster, name="model", signature=signature, metadata=model.metadata(),
                                             input_example=example, pip_requirements=[f"lightgbm=={lgb.__version__}", f"mlflow=={mlflow.__version__}"],
                                             extra_files=model.save_standards(Path(boosters)) or None,
                                             registered_model_name=MODEL_NAME)
    finally:
        pyfunc_check.setLevel(level)
    return str(info.registered_model_version)


def _tag_challenger(version: str, data: TrainingSet, gate: Gate, fingerprints: dict[str, str]) -> None:
    """The new version made the challenger, tagged with what it was built from and the gate's verdict."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
    for k, v in {"feature_spec_hash": data.spec.hash, "policy_version": data.policy.version, **fingerprints,
                 "gate": "passed" if gate.passed else "failed"}.items():
        client.set_model_version_tag(MODEL_NAME, version, k, v)


def train(cfg: TrainConfig, report: Report | None = None) -> TrainResult:
    """Run the whole training flow and register the result as the challenger."""
    say = report or (lambda *_: None)
    uri = use_store(cfg.models_dir)
    data = load_training_set(cfg.features_dir, decisions=cfg.decisions)
    horizon = data.policy.horizon_days
    folds = rolling_origin(data.dates, horizon, cfg.n_folds, cfg.test_weeks, cfg.valid_weeks)
    final = final_split(data.dates, horizon, cfg.valid_weeks)
    sr = None
    if cfg.params is None:
        sr = search(untouched(data.frame), folds[0], data.spec, cfg.seed, cfg.n_trials, cfg.budget_s,
                    progress=lambda d, t: say("Hyperparameter search (trials)", d, t), threads=cfg.threads)
        params = sr.chosen.params
    else:
        params = {**best_guess(), **cfg.params, "num_threads": cfg.threads}
    champion, champion_version = _champion(data.spec.hash)
    bt = run_backtest(data.frame, folds, data.spec, data.policy, params, cfg.seed, champion,
                      progress=lambda d, t: say("Backtest (folds)", d, t))
    standards = tuple(data.policy.metrics)
    sources = reason_sources(data.spec, tuple(standards))
    gate = decide(bt.metrics, bt.segments, bt.leaks, champion_version, cfg.bounds, sources)
    say("Final model", 0, 1)
    model = fit_risk_model(untouched(rows(data.frame, final.train)), untouched(rows(data.frame, final.valid)), data.spec,
                           params, cfg.seed, standards)
    size = model_size(model.booster)
    say("Final model", 1, 1)
    figures = _plots(bt, model, data, final, data.policy.review_capacity)
    parts = {"backtest": bt, "model": model, "size": size, "gate": gate, "search": sr, "params": params,
             "folds": folds, "final": final, "figures": figures}
    run_id, version = _log(parts, cfg, data, Path(cfg.features_dir))
    return TrainResult(run_id, version, model, params, size, folds, bt, gate, sr, champion_version, uri)


def summary_rows(result: TrainResult) -> pd.DataFrame:
    """The pooled backtest, one row per model and population, for people to read; the champion only on the
    test weeks it never learnt from, beside the challenger on the same weeks."""
    out = []
    for m, pooled in ((MODEL, f"{MODEL}.pooled"), (LOGREG, f"{LOGREG}.pooled"), (RULE, f"{RULE}.pooled"),
                      (f"{MODEL} (champion's weeks)", ON_CHAMPION_WEEKS), (CHAMPION, f"{CHAMPION}.pooled")):
        for pop in ("all", "early_warning", "after_intervention"):
            key = f"{pooled}.{pop}"
            if f"{key}.roc_auc" not in result.backtest.metrics:
                continue
            g = {k.removeprefix(key + "."): v for k, v in result.backtest.metrics.items() if k.startswith(key + ".")}
            out.append({"model": m, "population": pop, **g})
    return pd.DataFrame(out)


