"""Reasons in a reviewer's words: the one place where TreeSHAP contributions become the sentences
a reviewer reads. The HTTP service, the batch job and the notebooks all call `reasons`, so a seller
gets the same reasons wherever they are looked at.

Contributions come from LightGBM's own TreeSHAP (`RiskModel.contributions`) in raw log-odds. The
calibration is Platt scaling (calibrated log-odds = slope * raw + intercept), so each feature's
contribution to the calibrated log-odds is exactly slope times its raw contribution, and they add
up with the calibrated base value to the logit of the risk score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from features.risk_model import RiskModel, model_frame, sigmoid
from features.spec import FeatureSpec

Direction = Literal["raises", "lowers"]


@dataclass(frozen=True)
class Explanation:
    """Per row: the risk score, the calibrated base value and each feature's contribution."""

    score: np.ndarray  # calibrated probability, one per row
    base: float  # calibrated log-odds of the average seller (the expected value)
    contributions: np.ndarray  # rows x features, calibrated log-odds

    def logit(self) -> np.ndarray:
        """base + contributions: the calibrated log-odds of each row's score."""
        return self.base + self.contributions.sum(axis=1)


def explain(model: RiskModel, X: pd.DataFrame) -> Explanation:
    """Scores and per-feature contributions for model-ready rows (see `model_frame`)."""
    raw_contrib, expected = model.contributions(X)
    slope, intercept = model.calibration.slope, model.calibration.intercept
    contributions = slope * raw_contrib
    base = float(slope * expected[0] + intercept) if len(expected) else float(intercept)
    score = sigmoid(base + contributions.sum(axis=1))
    return Explanation(score, base, contributions)


def _display(value: object) -> object:
    """A feature value as JSON and Parquet hold it: numbers as floats, missing as None."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def reasons(model: RiskModel, frame: pd.DataFrame, spec: FeatureSpec, top: int = 5,
            direction: Direction = "raises") -> pd.DataFrame:
    """The `top` features that most raise (or most lower) each row's risk, as a long frame:
    row (position in `frame`), rank (1 = strongest), feature, value, contribution (calibrated
    log-odds), probability_change (the score minus the score without this contribution),
    direction, and text (the spec's sentence for the value)."""
    X = model_frame(frame, spec)
    ex = explain(model, X)
    c = ex.contributions
    signed = c if direction == "raises" else -c
    k = min(top, c.shape[1])
    order = np.argsort(-signed, axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(len(frame)), k)
    cols = order.ravel()
    contribution = c[rows, cols]
    keep = signed[rows, cols] > 0  # a feature that does not push this way is no reason
    rows, cols, contribution = rows[keep], cols[keep], contribution[keep]
    logit = ex.logit()[rows]
    change = sigmoid(logit) - sigmoid(logit - contribution)
    names = np.asarray(spec.names, dtype=object)[cols]
    values = [_display(v) for v in frame[spec.names].to_numpy(dtype=object)[rows, cols]]
    texts = [spec[n].reason_text(v) for n, v in zip(names, values)]
    rank = pd.Series(rows).groupby(rows).cumcount().to_numpy() + 1
    return pd.DataFrame({"row": rows, "rank": rank, "feature": names, "value": pd.Series(values, dtype=object),
                         "contribution": contribution, "probability_change": change,
                         "direction": direction, "text": texts})
