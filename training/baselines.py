"""The baselines every evaluation reports beside the model: a reviewer's rule of thumb, and a
logistic regression on the same features. A model that does not clearly beat them is not promoted."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.policy.definition import Policy
from features.pipeline.spec import FeatureSpec

def _closeness(frame: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """Per seller and standard (policy order): the gap to the threshold as a share of the room between a
    perfect rate and the threshold (0: at the threshold; > 0: missing it), NaN where the snapshot does not
    mark the standard evaluated (enough volume, the pipeline's own rule)."""
    closeness = {}
    for m in policy.metrics.values():
        room = m.threshold if m.direction == "at_most" else 1.0 - m.threshold
        evaluated = frame[f"evaluated_{m.name}"].fillna(False).astype(bool)
        closeness[m.name] = (frame[f"{m.name}_gap"] / room).where(evaluated)
    return pd.DataFrame(closeness)


def rule_score(frame: pd.DataFrame, policy: Policy) -> np.ndarray:
    """How close the seller is to missing a standard today: the largest closeness (`_closeness`) over the
    evaluated standards; -1 when none is."""
    return _closeness(frame, policy).max(axis=1).fillna(-1.0).clip(lower=-1.0).to_numpy()


def rule_pick(frame: pd.DataFrame, policy: Policy) -> np.ndarray:
    """The standard a reviewer's rule of thumb names for each seller: the evaluated standard closest to
    its threshold (the one `rule_score` reads; ties in policy order), None when none is evaluated."""
    c = _closeness(frame, policy).to_numpy(dtype="float64", na_value=np.nan)
    names = np.asarray(list(policy.metrics), dtype=object)
    pick = names[np.argmax(np.where(np.isnan(c), -np.inf, c), axis=1)]
    return np.where(np.isnan(c).all(axis=1), None, pick)


def logistic_regression(spec: FeatureSpec) -> Pipeline:
    """Scaled numbers with missing-value indicators and one-hot categories, L2-regularised."""
    numeric = [f.name for f in spec.features if f.dtype != "category"]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                              StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="unknown"),
                              OneHotEncoder(handle_unknown="ignore")), spec.categorical),
    ])
    return Pipeline([("prep", prep), ("model", LogisticRegression(C=0.1, max_iter=2000))])


def logistic_inputs(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The spec's columns as the regression reads them (numbers as floats, categories as text)."""
    X = frame[spec.names].copy()
    for f in spec.features:
        X[f.name] = X[f.name].astype("object") if f.dtype == "category" else pd.to_numeric(X[f.name]).astype("float64")
    return X.replace([np.inf, -np.inf], np.nan)
