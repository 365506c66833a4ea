"""The risk model as training writes it and every scorer reads it: a LightGBM booster in its
native text format, a Platt calibration of its raw log-odds, and the feature-spec hash and policy
version it was trained for; beside it, one smaller calibrated booster per policy standard (the risk
of missing that standard). Training, the HTTP service, the batch job and the notebooks all score
through this one class, so a score means the same thing everywhere.

The any-standard booster gives the risk score and its exact explanation; the per-standard boosters
say which standard the risk is about. The two must agree: the risk of missing some standard is at
least the largest per-standard risk and at most their sum. `consistent` rescales the per-standard
risks into those bounds (never the risk score, whose contributions add up to its log-odds).

Platt scaling (calibrated log-odds = a * raw + b) keeps the ranking of the trees and keeps the
explanations exact: each TreeSHAP contribution in raw log-odds is `a * contribution` in calibrated
log-odds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.pipeline.spec import FeatureSpec

if TYPE_CHECKING:
    from models.treeshap import Tables

MODEL_FILE = "model.lgb"  # the file name MLflow's LightGBM flavour uses for a native booster
EXTRA_FILES = "extra_files"  # where MLflow keeps a model's extra files (the per-standard boosters)
FEW_ROWS = 64
"""Up to this many rows (a request's sellers) the per-call set-up dominates: per-standard risks go through the
compiled tree walk and sums through one call each; a batch chunk keeps LightGBM's threaded predict and the
column loops, which are faster there (same bits either way, tested)."""


class ModelSpecMismatch(ValueError):
    """A model trained for another feature set or policy than the code's."""


def model_frame(df: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The spec's features of `df`, in spec order, typed as the model reads them (numbers as
    float64 with missing values as NaN; categories as pandas categoricals)."""
    missing = [n for n in spec.names if n not in df.columns]
    if missing:
        raise ValueError(f"feature columns missing: {', '.join(missing)}")
    columns = {}
    for f in spec.features:
        col = df[f.name]
        if f.dtype == "category":
            columns[f.name] = col.astype("object").where(col.notna(), None).astype("category")
        else:
            columns[f.name] = pd.to_numeric(col, errors="raise").astype("float64")
    return pd.DataFrame(columns, index=df.index)  # at once: column by column fragments a wide frame


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of raw log-odds: probability = sigmoid(slope * raw + intercept)."""

    slope: float = 1.0
    intercept: float = 0.0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return sigmoid(self.slope * np.asarray(raw, dtype="float64") + self.intercept)


@dataclass(frozen=True)
class StandardModel:
    """The calibrated risk of missing one standard within the horizon: a booster on the standard's own
    label, or, when training saw too few of its breaches to learn from, a constant (its base rate)."""

    standard: str
    booster: lgb.Booster | None
    calibration: Calibration

    @property
    def file(self) -> str | None:
        return f"standard_{self.standard}.lgb" if self.booster is not None else None

    def probability(self, X: pd.DataFrame | np.ndarray, threads: int = 0) -> np.ndarray:
        """The calibrated risk. Model-ready rows (a `RiskModel.matrix`) go through the compiled tree walk
        (`Tables.raw_scores`, LightGBM's raw scores bit for bit, without a `predict` call's set-up, which
        was most of one seller's time over eight standards); a `model_frame` through LightGBM."""
        if self.booster is None or len(X) == 0:
            return self.calibration(np.zeros(len(X)))
        if isinstance(X, np.ndarray) and len(X) <= FEW_ROWS:
            return self.calibration(self.shap_tables.raw_scores(X, threads))
        extra = {"num_threads": threads} if threads else {}
        return self.calibration(self.booster.predict(X, raw_score=True, **extra))

    def own_contributions(self, X: np.ndarray, features: np.ndarray, threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """For model-ready rows (a `RiskModel.matrix`): the summed exact TreeSHAP contribution of the
        features at positions `features` to this standard's calibrated log-odds (slope times the raw
        contributions), and the calibrated log-odds themselves (zero contribution for a constant model)."""
        if self.booster is None or len(X) == 0:
            return np.zeros(len(X)), np.full(len(X), self.calibration.intercept)
        tables = self.shap_tables
        contributions = tables.contributions(X, threads)
        # summed column by column, so a row's sums never depend on the other rows explained with it (a
        # reduction's blocking does): the HTTP service and the batch job agree bit for bit
        if len(X) <= FEW_ROWS:  # a running sum along each row: the loop's additions in its order, in one call
            raw = np.cumsum(np.column_stack([np.full(len(X), tables.expected), contributions]), axis=1)[:, -1]
            own = (np.cumsum(contributions[:, features], axis=1)[:, -1] + 0.0 if len(features)  # as 0.0 + -0.0
                   else np.zeros(len(X)))
        else:  # column by column: no rows x features copy for a batch chunk
            own, raw = np.zeros(len(X)), np.full(len(X), tables.expected)
            for j in range(contributions.shape[1]):
                raw += contributions[:, j]
            for j in features:
                own += contributions[:, j]
        slope = self.calibration.slope
        return slope * own, slope * raw + self.calibration.intercept

    @cached_property
    def shap_tables(self) -> Tables:
        """The standard's booster flattened for TreeSHAP, built on first use."""
        from models.treeshap import Tables

        return Tables.from_booster(self.booster)

    def metadata(self) -> dict:
        return {"standard": self.standard, "file": self.file,
                "calibration": {"slope": self.calibration.slope, "intercept": self.calibration.intercept}}


def consistent(risk: np.ndarray, per_standard: np.ndarray) -> np.ndarray:
    """Per-standard risks (rows x standards) rescaled, row by row, into the bounds the any-standard risk
    sets: when the largest exceeds the risk, all are scaled down until it equals it; when their sum is
    below it, all are scaled up until the sum equals it (shared evenly when every one is zero). Ratios
    between standards, and so which standard is most at risk, never change."""
    risk = np.asarray(risk, dtype="float64")
    q = np.asarray(per_standard, dtype="float64")
    if q.shape[1] == 0:
        return q
    top, total = q.max(axis=1), q.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(top > risk, risk / top, np.where(total < risk, risk / total, 1.0))
    out = q * scale[:, None]
    zero = total <= 0
    out[zero] = (risk[zero] / q.shape[1])[:, None]
    return np.minimum(out, 1.0)


@dataclass(frozen=True)
class RiskModel:
    """A trained breach model with everything needed to score and check it."""

    booster: lgb.Booster
    calibration: Calibration
    spec_hash: str
    policy_version: str
    feature_names: tuple[str, ...]
    standards: tuple[StandardModel, ...] = ()

    @property
    def standard_names(self) -> tuple[str, ...]:
        return tuple(s.standard for s in self.standards)

    def _inputs(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
        return X if isinstance(X, np.ndarray) else X[list(self.feature_names)]

    def raw_score(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The trees' log-odds of a breach within the horizon (X: a `model_frame` or a `matrix`)."""
        return self.booster.predict(self._inputs(X), raw_score=True)

    def probability(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The calibrated probability of a breach within the horizon."""
        return self.calibration(self.raw_score(X))

    def standard_risk(self, X: pd.DataFrame | np.ndarray, risk: np.ndarray | None = None, threads: int = 0) -> np.ndarray:
        """Rows x standards: the calibrated risk of missing each standard within the horizon, made
        consistent with the any-standard risk (`consistent`; computed here unless given)."""
        X = self._inputs(X)
        risk = self.probability(X) if risk is None else risk
        q = (np.column_stack([s.probability(X, threads) for s in self.standards]) if self.standards
             else np.empty((len(X), 0)))
        return consistent(risk, q)

    def contributions(self, X: pd.DataFrame | np.ndarray, threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Exact path-dependent TreeSHAP (`models.treeshap`: LightGBM's `pred_contrib` values, computed
        faster): each feature's contribution to the raw log-odds (rows x features), and the expected
        value; per row they add up to `raw_score`. X: a `matrix` (a `model_frame` is turned into one).
        `threads`: 0 all cores; 1 the calling thread (request-sized inputs, one request per worker
        thread, where waking a thread pool costs more than it saves)."""
        M = X if isinstance(X, np.ndarray) else self.matrix(X)
        tables = self.shap_tables
        return tables.contributions(M, threads), np.full(len(M), tables.expected)

    @cached_property
    def shap_tables(self) -> Tables:
        """The booster flattened for TreeSHAP, built on first use (about a second for the demo model)."""
        from models.treeshap import Tables  # numba takes half a second to import: only when explaining

        return Tables.from_booster(self.booster)

    @cached_property
    def categorical(self) -> tuple[str, ...]:
        """The features the trees split on as categories (LightGBM writes their levels, not a
        [min:max] range, in the model's feature_infos)."""
        header = self.booster.model_to_string(num_iteration=1)
        infos = next(line for line in header.splitlines() if line.startswith("feature_infos="))
        kinds = infos.removeprefix("feature_infos=").split(" ")
        return tuple(n for n, k in zip(self.booster.feature_name(), kinds, strict=True)
                     if k != "none" and not k.startswith("["))

    @cached_property
    def category_codes(self) -> dict[str, dict[str, int]]:
        """For each categorical feature, the code the trees use for each level seen in training
        (LightGBM's `pandas_categorical`, in the order of the categorical columns)."""
        levels = self.booster.pandas_categorical or []
        return {n: {str(v): i for i, v in enumerate(cats)} for n, cats in zip(self.categorical, levels, strict=True)}

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's inputs as one float matrix (features in model order; categories as the
        trees' codes, unseen or missing levels as NaN), exactly what LightGBM makes of a
        `model_frame`, without the per-call pandas conversion. Fast for large batches."""
        missing = [n for n in self.feature_names if n not in frame.columns]
        if missing:
            raise ValueError(f"feature columns missing: {', '.join(missing)}")
        out = np.empty((len(frame), len(self.feature_names)), dtype="float64")
        codes = self.category_codes
        for j, name in enumerate(self.feature_names):
            col = frame[name]
            if name in codes:
                c = pd.Index(list(codes[name]), dtype=object).get_indexer(col.astype("object").where(col.notna(), None))
                out[:, j] = np.where(c < 0, np.nan, c)
            else:
                out[:, j] = pd.to_numeric(col, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
        return out

    def matrix_from_records(self, records: Sequence[Mapping[str, float | str | None]]) -> np.ndarray:
        """The model's inputs for a few sellers given as {feature: value} (absent or None: missing).
        Meant for request-sized inputs; values must already be validated numbers or labels."""
        codes = self.category_codes
        out = np.full((len(records), len(self.feature_names)), np.nan, dtype="float64")
        for i, rec in enumerate(records):
            for j, name in enumerate(self.feature_names):
                v = rec.get(name)
                if v is None:
                    continue
                if name in codes:
                    code = codes[name].get(str(v))
                    if code is not None:
                        out[i, j] = code
                else:
                    out[i, j] = float(v)
        return out

    def check_spec(self, spec: FeatureSpec) -> None:
        """Refuse to score with features the model was not trained on."""
        if spec.hash != self.spec_hash or spec.policy_version != self.policy_version:
            raise ModelSpecMismatch(
                f"the model was trained for feature spec {self.spec_hash} (policy {self.policy_version}), "
                f"but the code's spec is {spec.hash} (policy {spec.policy_version}); retrain the model or "
                "use code that matches it")

    def metadata(self) -> dict:
        """What is stored beside the booster (in the MLmodel file's metadata)."""
        return {"feature_spec_hash": self.spec_hash, "policy_version": self.policy_version,
                "feature_names": list(self.feature_names),
                "calibration": {"method": "platt", "slope": self.calibration.slope,
                                "intercept": self.calibration.intercept},
                "standards": [s.metadata() for s in self.standards]}

    def save_standards(self, folder: Path) -> list[str]:
        """Write the per-standard boosters into `folder` (native text); returns their paths."""
        paths = []
        for s in self.standards:
            if s.booster is not None:
                path = Path(folder) / s.file
                s.booster.save_model(str(path))
                paths.append(str(path))
        return paths

    @classmethod
    def from_parts(cls, booster: lgb.Booster, metadata: dict, standards_dir: Path | None = None) -> RiskModel:
        """A model from its booster, its metadata and the folder holding its per-standard boosters."""
        cal = metadata["calibration"]
        standards = []
        for entry in metadata.get("standards") or []:
            c = entry["calibration"]
            file = entry.get("file")
            if file and (standards_dir is None or not (Path(standards_dir) / file).is_file()):
                raise ModelSpecMismatch(f"the model's booster for standard {entry['standard']} ({file}) is missing")
            b = lgb.Booster(model_file=str(Path(standards_dir) / file)) if file else None
            standards.append(StandardModel(str(entry["standard"]), b, Calibration(float(c["slope"]), float(c["intercept"]))))
        return cls(booster, Calibration(float(cal["slope"]), float(cal["intercept"])),
                   str(metadata["feature_spec_hash"]), str(metadata["policy_version"]),
                   tuple(metadata["feature_names"]), tuple(standards))

    @classmethod
    def load_dir(cls, folder: Path | str) -> RiskModel:
        """A model from a local MLflow model folder (MLmodel + model.lgb)."""
        import yaml

        folder = Path(folder)
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
        metadata = mlmodel.get("metadata") or {}
        if "feature_spec_hash" not in metadata:
            raise ModelSpecMismatch(f"{folder} is not a seller-risk model: its MLmodel has no feature_spec_hash")
        booster = lgb.Booster(model_file=str(folder / MODEL_FILE))
        return cls.from_parts(booster, metadata, folder / EXTRA_FILES)
