"""Hyperparameter search: Optuna's TPE sampler over LightGBM's main knobs, bounded by its number of
trials (so one seed gives one model on any machine, busy or idle) with an optional time budget as a
safety limit that says when it cut the search short, judged on a validation slice that lies before
every test week. Among the trials that
score within a tolerance of the best, the cheapest to explain wins, because explanation cost
(trees x leaves x depth^2) is paid on every served score."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna
import pandas as pd
from sklearn.metrics import average_precision_score

from models.risk_model import model_frame
from features.pipeline.spec import FeatureSpec
from training.fit import fit_booster, halves, model_size
from training.folds import Fold, rows

TOLERANCE = 0.005
"""Trials whose early-warning PR AUC lies within this of the best count as equally good."""


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict
    pr_auc: float
    trees: int
    explanation_cost: int
    seconds: float


@dataclass(frozen=True)
class SearchResult:
    chosen: Trial
    best: Trial
    trials: list[Trial]
    asked: int = 0  # trials asked for
    budget_s: float | None = None  # the safety limit, if any

    @property
    def cut_short(self) -> bool:
        """Whether the time budget stopped the search before it ran every trial asked for (then the
        model depends on the machine's speed, and the training summary says so)."""
        return len(self.trials) < self.asked

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"trial": t.number, "pr_auc_early_warning": t.pr_auc, "trees": t.trees,
                              "explanation_cost": t.explanation_cost, "seconds": t.seconds, **t.params}
                             for t in self.trials])


def suggest(trial: optuna.Trial) -> dict:
    """The search space."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 95, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 10),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 400, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.6, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
    }


def choose(trials: list[Trial], tolerance: float = TOLERANCE) -> Trial:
    """The cheapest trial to explain among those within `tolerance` of the best PR AUC."""
    best = max(t.pr_auc for t in trials)
    good = [t for t in trials if t.pr_auc >= best - tolerance]
    return min(good, key=lambda t: (t.explanation_cost, -t.pr_auc, t.number))


SEARCH_WEEKS = 52
"""The search fits each trial on the latest year of the fold's past only: the trees' shape is chosen
as well on a year as on two, at half the cost; the final model and the backtest learn on all weeks."""


def search(frame: pd.DataFrame, fold: Fold, spec: FeatureSpec, seed: int, n_trials: int, budget_s: float | None = None,
           progress: Callable[[int, int], None] | None = None, threads: int | None = None) -> SearchResult:
    """Run `n_trials` trials on `fold`'s training and validation slices (its test slice is never read);
    `budget_s`, when given, stops the search early as a safety limit (`SearchResult.cut_short`);
    `threads`, when given, is each trial's `num_threads` (and so the chosen parameters')."""
    import time

    train, valid = rows(frame, fold.train[-SEARCH_WEEKS:]), rows(frame, fold.valid)
    stop, judge = halves(valid)
    judged = valid[judge & valid["compliant_at_t"]]
    X_judge = model_frame(judged, spec)
    trials: list[Trial] = []

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial) | ({"num_threads": threads} if threads else {})
        start = time.perf_counter()
        booster = fit_booster(train, valid[stop], spec, params, seed)
        raw = booster.predict(X_judge, raw_score=True)
        ap = float(average_precision_score(judged["breach"], raw)) if judged["breach"].nunique() > 1 else 0.0
        size = model_size(booster)
        trials.append(Trial(trial.number, params, ap, size.trees, size.explanation_cost,
                            time.perf_counter() - start))
        if progress:
            progress(len(trials), n_trials)
        return ap

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials, timeout=budget_s)
    best = max(trials, key=lambda t: (t.pr_auc, -t.number))
    return SearchResult(choose(trials), best, trials, n_trials, budget_s)


def best_guess() -> dict:
    """Sensible fixed parameters, for when the search is skipped (fast tests, quick looks)."""
    return {"learning_rate": 0.05, "num_leaves": 31, "max_depth": 6, "min_child_samples": 100,
            "feature_fraction": 0.8, "bagging_fraction": 0.8, "lambda_l2": 1.0}


