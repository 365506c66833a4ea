"""The score record: what every scorer hands out, declared once. The HTTP service returns these as
JSON and the weekly batch job writes them as Parquet rows (reasons as a list of structs), so a
reviewer reading either sees the same fields with the same meaning. The batch job's files leave
`as_of` out: their partition folder's name carries it (features.layout), and its readers put it back."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field


class Reason(BaseModel):
    """One feature's push on a seller's score, in a reviewer's words."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(description="1 = the strongest reason in its direction.")
    feature: str = Field(description="Feature name, as in the feature spec.")
    value: float | None = Field(description="The seller's value of a numeric feature (null: missing or categorical).")
    label: str | None = Field(description="The seller's level of a categorical feature (null for numeric features).")
    contribution: float = Field(description="Push on the calibrated log-odds of a breach (TreeSHAP x calibration slope).")
    probability_change: float = Field(
        description="Approximate change in risk_score due to this feature: the score minus the score without it.")
    direction: str = Field(description="'raises' or 'lowers' the risk.")
    text: str = Field(description="The reason in a reviewer's words, from the feature spec's template.")


class ScoreRecord(BaseModel):
    """How risky a seller is, and why."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    seller_id: str
    as_of: date | None = Field(description="As-of date of the features (null when the caller sent the features).")
    risk_score: float = Field(description="Calibrated probability that the seller misses a standard within the horizon.")
    risk_band: str = Field(description="The policy's band for the score (low, watch, high, critical).")
    band_meaning: str = Field(description="What the band asks of a reviewer.")
    base_log_odds: float = Field(
        description="Calibrated log-odds of the average seller; plus every feature's contribution it gives "
                    "the log-odds of risk_score.")
    model_name: str
    model_version: str
    policy_version: str
    feature_spec_hash: str
    reasons: list[Reason] = Field(description="Features that raise the risk most, strongest first.")
    lowering_reasons: list[Reason] = Field(
        default_factory=list, description="Features that lower the risk most (only when asked for).")


REASON_ARROW = pa.struct([
    ("rank", pa.int32()), ("feature", pa.string()), ("value", pa.float64()), ("label", pa.string()),
    ("contribution", pa.float64()), ("probability_change", pa.float64()), ("direction", pa.string()),
    ("text", pa.string()),
])

SCORE_ARROW = pa.schema([
    ("seller_id", pa.string()), ("as_of", pa.date32()), ("risk_score", pa.float64()),
    ("risk_band", pa.string()), ("band_meaning", pa.string()), ("base_log_odds", pa.float64()), ("model_name", pa.string()),
    ("model_version", pa.string()), ("policy_version", pa.string()), ("feature_spec_hash", pa.string()),
    ("reasons", pa.list_(REASON_ARROW)), ("lowering_reasons", pa.list_(REASON_ARROW)),
])
"""The score record as an Arrow row; the batch job adds its run id and the run's time, and its files
hold every column but as_of (serving.batch.job.BATCH_FILE_ARROW)."""
