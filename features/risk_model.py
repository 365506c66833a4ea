"""The risk model as training writes it and every scorer reads it: a LightGBM booster in its
native text format, a Platt calibration of its raw log-odds, and the feature-spec hash and policy
version it was trained for. Training, the HTTP service, the batch job and the notebooks all score
through this one class, so a score means the same thing everywhere.

Platt scaling (calibrated log-odds = a * raw + b) keeps the ranking of the trees and keeps the
explanations exact: each TreeSHAP contribution in raw log-odds is `a * contribution` in calibrated
log-odds.
"""

from __future__ import annotations

from dataclasses import dataclass
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

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        """The trees' log-odds of a breach within the horizon."""
        return self.booster.predict(X[list(self.feature_names)], raw_score=True)

    def probability(self, X: pd.DataFrame) -> np.ndarray:
        """The calibrated probability of a breach within the horizon."""
        return self.calibration(self.raw_score(X))

    def contributions(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """LightGBM's own TreeSHAP: each feature's contribution to the raw log-odds (rows x features),
        and the expected value; per row they add up to `raw_score`."""
        c = self.booster.predict(X[list(self.feature_names)], pred_contrib=True)
        return c[:, :-1], c[:, -1]

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
