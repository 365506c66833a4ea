"""The risk model as training writes it and every scorer reads it: a LightGBM booster in its
native text format, a Platt calibration of its raw log-odds, and the feature-spec hash and policy
version it was trained for. Training, the HTTP service, the batch job and the notebooks all score
through this one class, so a score means the same thing everywhere.

Platt scaling (calibrated log-odds = a * raw + b) keeps the ranking of the trees and keeps the
explanations exact: each TreeSHAP contribution in raw log-odds is `a * contribution` in calibrated
log-odds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.spec import FeatureSpec

MODEL_FILE = "model.lgb"  # the file name MLflow's LightGBM flavour uses for a native booster


class ModelSpecMismatch(ValueError):
    """A model trained for another feature set or policy than the code's."""


def model_frame(df: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The spec's features of `df`, in spec order, typed as the model reads them (numbers as
    float64 with missing values as NaN; categories as pandas categoricals)."""
    missing = [n for n in spec.names if n not in df.columns]
    if missing:
        raise ValueError(f"feature columns missing: {', '.join(missing)}")
    X = pd.DataFrame(index=df.index)
    for f in spec.features:
        col = df[f.name]
        if f.dtype == "category":
            X[f.name] = col.astype("object").where(col.notna(), None).astype("category")
        else:
            X[f.name] = pd.to_numeric(col, errors="raise").astype("float64")
    return X


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
class RiskModel:
    """A trained breach model with everything needed to score and check it."""

    booster: lgb.Booster
    calibration: Calibration
    spec_hash: str
    policy_version: str
    feature_names: tuple[str, ...]

    def _inputs(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
        return X if isinstance(X, np.ndarray) else X[list(self.feature_names)]

    def raw_score(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The trees' log-odds of a breach within the horizon (X: a `model_frame` or a `matrix`)."""
        return self.booster.predict(self._inputs(X), raw_score=True)

    def probability(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The calibrated probability of a breach within the horizon."""
        return self.calibration(self.raw_score(X))

    def contributions(self, X: pd.DataFrame | np.ndarray, threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """LightGBM's own TreeSHAP: each feature's contribution to the raw log-odds (rows x features),
        and the expected value; per row they add up to `raw_score`. `threads`: OpenMP threads
        (0: LightGBM's default, all cores; 1 for request-sized inputs, where waking a thread
        pool costs more than it saves and fights the other workers for the cores)."""
        if len(X) == 0:  # LightGBM divides by the row count
            return np.empty((0, len(self.feature_names))), np.empty(0)
        extra = {"num_threads": threads} if threads else {}
        c = self.booster.predict(self._inputs(X), pred_contrib=True, **extra)
        return c[:, :-1], c[:, -1]

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
                levels = list(codes[name])
                c = pd.Categorical(col.astype("object").where(col.notna(), None), categories=levels).codes
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
                                "intercept": self.calibration.intercept}}

    @classmethod
    def from_parts(cls, booster: lgb.Booster, metadata: dict) -> RiskModel:
        cal = metadata["calibration"]
        return cls(booster, Calibration(float(cal["slope"]), float(cal["intercept"])),
                   str(metadata["feature_spec_hash"]), str(metadata["policy_version"]),
                   tuple(metadata["feature_names"]))

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
        return cls.from_parts(booster, metadata)
