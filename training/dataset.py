"""The training set: labelled seller-weeks read from the feature snapshots, point-in-time by
construction (features at t, the label over (t, t + horizon]), checked against the code's spec."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.policy.definition import Policy, load_policy
from features.platform import layout
from features.pipeline.snapshots import read_snapshots
from features.pipeline.spec import FeatureSpec, feature_spec

CONTEXT = ["seller_id", "as_of", "breach", "compliant_at_t", "after_intervention", "tenure_days", "orders_90d",
           "category", "region"]


@dataclass(frozen=True)
class TrainingSet:
    """Labelled rows (one per seller and as-of date), the spec and policy they were built with."""

    frame: pd.DataFrame
    spec: FeatureSpec
    policy: Policy
    manifest: dict

    @property
    def dates(self) -> list[pd.Timestamp]:
        return sorted(self.frame["as_of"].unique())


def load_training_set(features_dir: Path | str, policy: str | Path | None = None,
                      decisions: Path | None = None) -> TrainingSet:
    """Read the snapshots with known labels; refuse snapshots built with another feature spec. With the
    reviewers' exported `decisions`, mark the seller-weeks after a contact or warning
    (`after_intervention`, training/interventions.py)."""
    features_dir = Path(features_dir)
    if not layout.manifest_file(features_dir).is_file():
        raise FileNotFoundError(f"{features_dir} holds no feature snapshots ({layout.MANIFEST} is missing); "
                                "run `seller-risk features` first")
    manifest = json.loads(layout.manifest_file(features_dir).read_text())
    pol = load_policy(policy or manifest["policy_version"])
    spec = feature_spec(pol)
    stored = json.loads(layout.spec_file(features_dir).read_text())["hash"]
    if stored != spec.hash:
        raise ValueError(f"{features_dir} was built with feature spec {stored}, the code's is {spec.hash}; "
                         "rebuild the snapshots with `seller-risk features`")
    df = read_snapshots(features_dir)
    df = df[df["breach"].notna()].copy()
    if df.empty:
        raise ValueError(f"{features_dir}: no seller-week has a known label yet (the horizon reaches past the cut-off)")
    df["as_of"] = pd.to_datetime(df["as_of"])
    df["breach"] = df["breach"].astype("int64")
    df["compliant_at_t"] = df["compliant_at_t"].astype(bool)
    df["after_intervention"] = False
    if decisions is not None:
        from training.interventions import after_intervention, read_decisions

        df["after_intervention"] = after_intervention(df, read_decisions(Path(decisions)), pol.horizon_days)
    return TrainingSet(df.reset_index(drop=True), spec, pol, manifest)


def untouched(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows a model may learn from: seller-weeks no reviewer's contact or warning came before."""
    return frame[~frame["after_intervention"]] if "after_intervention" in frame.columns else frame
