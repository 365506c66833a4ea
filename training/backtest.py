"""The rolling-origin backtest: every fold fits the model and its baselines on its own past, and
scores its test weeks; the scored rows of all folds pooled are what the model is judged on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.policy.definition import Policy
from models.risk_model import RiskModel, model_frame
from features.pipeline.spec import FeatureSpec
from features.policy.standing import standings
from models.reasons.choose import REASONS_SHOWN, at_risk, choose_reasons, reason_lists
from models.reasons.shares import standard_shares
from training.baselines import logistic_inputs, logistic_regression, rule_pick, rule_score
from training.dataset import CONTEXT, untouched
from training.fit import fit_platt, fit_risk_model, halves, label
from training.folds import Fold, rows
from training.metrics import by_segment, calibration_by_week, evaluate, evaluate_standards, reason_accuracy, weekly_metrics

MODEL, LOGREG, RULE, CHAMPION = "lightgbm", "logistic_regression", "rule", "champion"
ON_CHAMPION_WEEKS = f"{MODEL}.champion_weeks"
"""The challenger's rows on the weeks the champion is scored on: what the gate compares it with."""
LEAK_AUC = 0.95
"""A single feature that separates breaches this well on its own is treated as a leak, not a signal."""


@dataclass(frozen=True)
class Backtest:
    """The scored test rows of every fold and model (column `model`), and their evaluations."""

    scored: pd.DataFrame
    metrics: dict[str, float]  # "<model>.<fold|pooled>.<population>.<metric>"
    segments: pd.DataFrame  # by_segment of the pooled rows, with a `model` column
    leaks: dict[str, float]  # feature -> univariate ROC AUC, for suspected leaks
    weekly: pd.DataFrame = field(default_factory=pd.DataFrame)  # calibration_by_week of each model's rows, with `model`

    def pooled(self, model: str) -> pd.DataFrame:
        return self.scored[self.scored["model"] == model]


def _scored(test: pd.DataFrame, score: np.ndarray, model: str, fold: str) -> pd.DataFrame:
    out = test[CONTEXT].copy()
    out["score"] = score
    out["model"], out["fold"] = model, fold
    return out


@dataclass(frozen=True)
class Champion:
    """The model in production, to be judged beside the challenger, and the last as-of week whose label
    it was fitted or calibrated on (models.registry.fitted_weeks)."""

    model: RiskModel
    fitted_until: pd.Timestamp

    def unseen(self, weeks: pd.Series, horizon_days: int) -> pd.Series:
        """The weeks no label it learnt from reached: after `fitted_until` plus the horizon (the folds' rule,
        training.folds.before). On any other week it would be judged on its own training data."""
        return weeks > self.fitted_until + pd.Timedelta(days=horizon_days)


def score_fold(frame: pd.DataFrame, fold: Fold, spec: FeatureSpec, policy: Policy, params: dict, seed: int,
               champion: Champion | None = None) -> pd.DataFrame:
    """Fit the model and the baselines on the fold's past; score its test weeks with each, and the
    champion's on those of its test weeks it never learnt from."""
    train, valid, test = untouched(rows(frame, fold.train)), untouched(rows(frame, fold.valid)), rows(frame, fold.test)
    _, cal = halves(valid)
    model = fit_risk_model(train, valid, spec, params, seed, tuple(policy.metrics))
    X = model_frame(test, spec)
    risk = model.probability(X)
    mine = _scored(test, risk, MODEL, fold.name)
    per_standard = model.standard_risk(X, risk)
    for m, q in zip(model.standard_names, per_standard.T, strict=True):
        mine[f"risk_{m}"], mine[f"breach_{m}"] = q, label(test, m)
    mine = mine.assign(**_named_standards(model, test, risk, per_standard, spec, policy))
    out = [mine]

    lr = logistic_regression(spec).fit(logistic_inputs(train, spec), train["breach"])
    lr_cal = fit_platt(lr.decision_function(logistic_inputs(valid[cal], spec)), valid.loc[cal, "breach"].to_numpy())
    out.append(_scored(test, lr_cal(lr.decision_function(logistic_inputs(test, spec))), LOGREG, fold.name))

    rule_cal = fit_platt(rule_score(valid[cal], policy), valid.loc[cal, "breach"].to_numpy())
    out.append(_scored(test, rule_cal(rule_score(test, policy)), RULE, fold.name))

    if champion is not None:
        unseen = test[champion.unseen(test["as_of"], policy.horizon_days).to_numpy()]
        if len(unseen):
            out.append(_scored(unseen, champion.model.probability(model_frame(unseen, spec)), CHAMPION, fold.name))
    return pd.concat(out, ignore_index=True)


def _named_standards(model: RiskModel, test: pd.DataFrame, risk: np.ndarray, per_standard: np.ndarray,
                     spec: FeatureSpec, policy: Policy) -> dict[str, np.ndarray]:
    """What each test row's record would name (`models.reasons`, as every scorer does): the standard at
    risk, the first reason and all reasons; and the rule's pick beside them, for reason accuracy."""
    shares = standard_shares(risk, per_standard)
    # TreeSHAP on the calling thread: training starts no thread pool of numba's before the final fit, so a
    # seed gives one model whatever else the process ran (a parallel pool changed the fit's last bits)
    reasons = choose_reasons(model, model.matrix(test), shares, standings(test, policy), spec,
                             policy.reasons.min_effect, REASONS_SHOWN, threads=1)
    first, every = reason_lists(reasons, len(test))
    return {"at_risk": at_risk(shares, model.standard_names), "first_reason": first, "reasons": every,
            "rule_pick": rule_pick(test, policy)}


def suspected_leaks(frame: pd.DataFrame, spec: FeatureSpec, threshold: float = LEAK_AUC) -> dict[str, float]:
    """Features that alone separate breaches from the rest better than any honest signal could."""
    y = frame["breach"].to_numpy()
    if len(np.unique(y)) < 2:
        return {}
    found = {}
    for f in spec.features:
        if f.dtype == "category":
            continue
        x = pd.to_numeric(frame[f.name]).astype("float64").replace([np.inf, -np.inf], np.nan)
        x = x.fillna(x.median() if x.notna().any() else 0.0)
        auc = float(roc_auc_score(y, x))
        auc = max(auc, 1.0 - auc)
        if auc > threshold:
            found[f.name] = round(auc, 4)
    return found


def run_backtest(frame: pd.DataFrame, folds: list[Fold], spec: FeatureSpec, policy: Policy, params: dict,
                 seed: int, champion: Champion | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Backtest:
    """Score every fold, evaluate each model per fold and pooled, by segment, and look for leaks. With a
    champion: how many test weeks it never learnt from (`champion.unseen_weeks`, 0 when none) and, on
    those weeks, the challenger's metrics and segments as model `ON_CHAMPION_WEEKS`."""
    parts = []
    for i, fold in enumerate(folds):
        parts.append(score_fold(frame, fold, spec, policy, params, seed, champion))
        if progress:
            progress(i + 1, len(folds))
    scored = pd.concat(parts, ignore_index=True)
    capacity = policy.review_capacity
    metrics: dict[str, float] = {}
    segments, weekly = [], []
    if champion is not None:
        weeks = scored.loc[scored["model"] == CHAMPION, "as_of"].unique()
        metrics[f"{CHAMPION}.unseen_weeks"] = float(len(weeks))
        if len(weeks):
            same = scored[(scored["model"] == MODEL) & scored["as_of"].isin(weeks)]
            metrics |= {f"{ON_CHAMPION_WEEKS}.{k}": v for k, v in evaluate(same, capacity).items()}
            segments.append(by_segment(same, capacity).assign(model=ON_CHAMPION_WEEKS))
    for model, by_model in scored.groupby("model", sort=False):
        for fold, part in by_model.groupby("fold", sort=False):
            metrics |= {f"{model}.{fold}.{k}": v for k, v in evaluate(part, capacity).items()}
        metrics |= {f"{model}.pooled.{k}": v for k, v in evaluate(by_model, capacity).items()}
        if model == MODEL:
            metrics |= {f"{model}.pooled.{k}": v for k, v in evaluate_standards(by_model, tuple(policy.metrics)).items()}
            metrics |= {f"{model}.pooled.{k}": v
                        for k, v in reason_accuracy(by_model, capacity, tuple(policy.metrics)).items()}
        segments.append(by_segment(by_model, capacity).assign(model=model))
        weeks = calibration_by_week(by_model)
        metrics |= {f"{model}.{k}": v for k, v in weekly_metrics(weeks).items()}
        weekly.append(weeks.assign(model=model))
    test_rows = frame[frame["as_of"].isin([d for f in folds for d in f.test])]
    return Backtest(scored, metrics, pd.concat(segments, ignore_index=True), suspected_leaks(test_rows, spec),
                    pd.concat(weekly, ignore_index=True))
