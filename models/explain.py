"""The any-standard model's explanation: scores, exact TreeSHAP contributions, and how the features
partition into groups (each standard's behaviour, then history, exposure and context) whose
contributions add up to the score's log-odds, with the short words shown beside the reasons. The
reasons themselves come from each standard's own model (`models.reasons`). The HTTP service, the
batch job and the notebooks all go through `serving.scoring.Scorer`, which calls these, so a seller
gets the same answer wherever it is looked at.

Contributions come from exact TreeSHAP (`RiskModel.contributions`, `models.treeshap`: LightGBM's
`pred_contrib` values, computed faster) in raw log-odds. The calibration is Platt scaling
(calibrated log-odds = slope * raw + intercept), so each feature's contribution to the calibrated
log-odds is exactly slope times its raw contribution, and they add up with the calibrated base
value to the logit of the risk score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from models.risk_model import FEW_ROWS, RiskModel, sigmoid
from features.pipeline.spec import FeatureSpec



@dataclass(frozen=True)
class Explanation:
    """Per row: the risk score, the calibrated base value and each feature's contribution."""

    score: np.ndarray  # calibrated probability, one per row
    base: float  # calibrated log-odds of the average seller (the expected value)
    contributions: np.ndarray  # rows x features, calibrated log-odds
    logit: np.ndarray  # base + contributions summed: the calibrated log-odds of each row's score


def explain(model: RiskModel, X: pd.DataFrame | np.ndarray, threads: int = 0) -> Explanation:
    """Scores and per-feature contributions for model-ready rows (a `model_frame` or `RiskModel.matrix`)."""
    raw_contrib, expected = model.contributions(X, threads)
    slope, intercept = model.calibration.slope, model.calibration.intercept
    contributions = np.multiply(raw_contrib, slope, out=raw_contrib)  # in place: LightGBM's fresh output
    base = float(slope * expected[0] + intercept) if len(expected) else float(intercept)
    logit = base + contributions.sum(axis=1)
    return Explanation(sigmoid(logit), base, contributions, logit)


def display_value(value: object) -> float | str | None:
    """A feature value as a reason shows it: numbers as floats, categories as labels, missing as None."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return str(value)


ValuesAt = Callable[[np.ndarray, np.ndarray], Sequence]
"""Given row positions and feature positions (in spec order), the sellers' values there."""


def frame_values(frame: pd.DataFrame, spec: FeatureSpec) -> ValuesAt:
    """Values looked up in a frame of features, one feature column at a time (no n x F copy):
    numbers converted once per column to floats (missing: None), categories as their labels."""
    categorical = set(spec.categorical)

    def at(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows), dtype=object)
        for j in dict.fromkeys(cols.tolist()):  # each feature once, its template bound once
            where = np.flatnonzero(cols == j)
            column = frame[spec.names[j]]
            if spec.names[j] in categorical:
                out[where] = [display_value(v) for v in column.to_numpy(dtype=object)[rows[where]]]
                continue
            numbers = pd.to_numeric(column).to_numpy(dtype="float64", na_value=np.nan)[rows[where]]
            values = numbers.astype(object)
            values[np.isnan(numbers)] = None
            out[where] = values
        return out
    return at


def record_values(records: Sequence[Mapping[str, object]], spec: FeatureSpec) -> ValuesAt:
    """Values looked up in sellers given as {feature: value} (absent: missing)."""
    def at(rows: np.ndarray, cols: np.ndarray) -> list:
        return [display_value(records[i].get(spec.names[j])) for i, j in zip(rows, cols)]
    return at


# ------------------------------------------------------------------ reasons by standard


OTHER_GROUPS = ("history", "exposure", "context")
"""The groups beside the standards: behaviour no single standard measures (the marketplace's warnings),
how much is judged (exposure), and who the seller is (context)."""


@dataclass(frozen=True)
class Groups:
    """How the features partition into groups: each policy standard (its behaviour features), then
    OTHER_GROUPS. Every feature is in exactly one group, so the groups' contributions and the base
    add up to the score's log-odds."""

    names: tuple[str, ...]
    of_feature: np.ndarray  # group position per feature, in spec order
    standards: int  # the first `standards` groups are the policy's standards

    @cached_property
    def members(self) -> dict[str, np.ndarray]:
        """Each group's feature positions, in spec order."""
        return {name: np.flatnonzero(self.of_feature == g) for g, name in enumerate(self.names)}

    @property
    def matrix(self) -> np.ndarray:
        """features x groups, one 1 per row: contributions @ matrix sums them per group."""
        m = np.zeros((len(self.of_feature), len(self.names)))
        m[np.arange(len(self.of_feature)), self.of_feature] = 1.0
        return m


def feature_groups(spec: FeatureSpec, standards: Sequence[str]) -> Groups:
    """Each feature's group: its standard when it is behaviour, else history, exposure or context."""
    names = (*standards, *OTHER_GROUPS)
    where = {n: i for i, n in enumerate(names)}
    of = [where[f.standard if f.role == "behaviour" and f.standard else
                ("history" if f.role == "behaviour" else f.role)] for f in spec.features]
    return Groups(names, np.asarray(of, dtype=np.intp), len(standards))


def group_contributions(ex: Explanation, groups: Groups) -> np.ndarray:
    """Rows x groups: each group's contribution to the calibrated log-odds (with the base they add up
    to the score's log-odds). Summed column by column in spec order, so a row's sums never depend on
    the other rows scored with it (a matrix product's blocking does: the HTTP service, scoring a few
    sellers, and the batch job, a chunk of thousands, must agree bit for bit)."""
    c = ex.contributions
    if len(c) <= FEW_ROWS:  # the same additions in the same order, in one call: a request's few sellers
        out = np.zeros((len(groups.names), len(c)))
        np.add.at(out, groups.of_feature, c.T)
        return out.T.copy()
    out = np.zeros((len(c), len(groups.names)))
    for j, g in enumerate(groups.of_feature):
        out[:, g] += c[:, j]
    return out


def context_texts(ex: Explanation, groups: Groups, spec: FeatureSpec, values_at: ValuesAt,
                  per_group: int = 2) -> np.ndarray:
    """Rows x OTHER_GROUPS: what history, exposure and context hold for each row, in short words shown
    beside the reasons (never a reason): the group's `per_group` features that move the score most
    either way, each in its spec sentence, joined by "; ". Column-wise: one template bound per feature."""
    n = len(ex.contributions)
    out = np.full((n, len(OTHER_GROUPS)), "", dtype=object)
    if n == 0:
        return out
    for g, name in enumerate(OTHER_GROUPS):
        members = groups.members[name]
        if len(members) == 0:
            continue
        k = min(per_group, len(members))
        strength = np.abs(ex.contributions[:, members])
        order = members[np.argsort(-strength, axis=1, kind="stable")[:, :k]]  # rows x k feature positions
        rows = np.repeat(np.arange(n), k)
        cols = order.ravel()
        values = np.empty(len(rows), dtype=object)
        values[:] = values_at(rows, cols)
        texts = np.empty(len(rows), dtype=object)
        for j in dict.fromkeys(cols.tolist()):  # each feature once, its template bound once
            where = np.flatnonzero(cols == j)
            feature = spec.features[j]
            fmt, missing = feature.reason_format, feature.reason_text(None)
            texts[where] = [missing if v is None else fmt(v) for v in values[where]]
        texts = texts.reshape(n, k)
        out[:, g] = ["; ".join(t) for t in texts] if k > 1 else texts[:, 0]
    return out
