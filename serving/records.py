"""The score record: what every scorer hands out, declared once. The HTTP service returns these as
JSON and the weekly batch job writes them as Parquet rows (reasons as a list of structs), so a
reviewer reading either sees the same fields with the same meaning. The batch job's files leave
`as_of` out: their partition folder's name carries it (features.platform.layout), and its readers put it back."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field


class Reason(BaseModel):
    """One standard at risk (or keeping the risk down): its behaviour's push on the score and where the
    seller stands against it, in a reviewer's words. Exposure, context and history are never reasons:
    they are shown beside (`ScoreRecord.context`)."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(description="1 = the strongest reason in its direction.")
    standard: str = Field(description="The policy metric (standard), e.g. 'cancellation_rate'.")
    label: str = Field(description="The standard's name for a reviewer, e.g. 'Seller cancellations'.")
    contribution: float = Field(
        description="Push of the standard's behaviour features together on the calibrated log-odds of a breach.")
    probability_change: float = Field(
        description="Approximate change in risk_score due to this standard's behaviour: the score minus the "
                    "score without it.")
    direction: str = Field(description="'raises' or 'lowers' the risk.")
    value: float | None = Field(description="The seller's rate over the standard's window (null: no volume).")
    volume: int = Field(description="What the rate is judged on over the window (orders, delivered orders, messages).")
    headroom: int | None = Field(
        description="More misses at this volume that would miss the standard (null: missing it now, or not judged).")
    text: str = Field(description="The reason in a reviewer's words: value, standard, trend and headroom.")


class Context(BaseModel):
    """A group of features shown beside the reasons, never as one: history, exposure or context."""

    model_config = ConfigDict(extra="forbid")

    group: str = Field(description="'history', 'exposure' or 'context'.")
    contribution: float = Field(description="The group's push on the calibrated log-odds.")
    features: str = Field(description="The group's values that move the score most, in short words.")


class Contribution(BaseModel):
    """One group's push on the calibrated log-odds (each standard's behaviour, history, exposure, context)."""

    model_config = ConfigDict(extra="forbid")

    group: str
    contribution: float


class Recovery(BaseModel):
    """What brings a standard missed now back."""

    model_config = ConfigDict(extra="forbid")

    standard: str
    needed: int | None = Field(description="Good outcomes in a row that bring it back (null: none suffices alone).")
    back_by: date | None = Field(
        description="The evaluation date by which it is back if every outcome from as_of on is good, at the "
                    "seller's recent volume: the sooner of that run and its misses leaving the window "
                    "(null when as_of is unknown, as for features sent by the caller).")
    text: str


class StandardRisk(BaseModel):
    """The risk of missing one standard within the horizon."""

    model_config = ConfigDict(extra="forbid")

    standard: str = Field(description="The policy metric (standard), e.g. 'on_time_delivery_rate'.")
    label: str = Field(description="The standard's name for a reviewer.")
    risk: float = Field(description="Calibrated probability that the seller misses this standard at an evaluation "
                                    "within the horizon (consistent with risk_score: none above it, together "
                                    "at least it).")


class ScoreRecord(BaseModel):
    """How risky a seller is, and why."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    record_id: str = Field(description="Identifies this record for the audit trail and `seller-risk replay`: a hash "
                                       "of the model version, the as-of date, the seller and its exact feature values.")
    seller_id: str
    as_of: date | None = Field(description="As-of date of the features (null when the caller sent the features).")
    risk_score: float = Field(description="Calibrated probability that the seller misses a standard within the horizon.")
    standard_at_risk: str | None = Field(description="The standard the seller is most likely to miss "
                                                     "(highest risk_by_standard; null without per-standard risks).")
    risk_by_standard: list[StandardRisk] = Field(description="The risk of missing each standard, in policy order.")
    risk_band: str = Field(description="The seller's place relative to the week's early-warning queue (the policy's "
                                       "bands: 'recovery' when missing a standard now; for a compliant seller 'review' "
                                       "within this week's queue, 'next' within two queues' worth, 'watch' within "
                                       "five, else 'low'), placed by the cut-offs the weekly batch run of the same "
                                       "model version wrote for the seller's week (or the latest week before it); "
                                       "'unranked' when no such run exists yet.")
    band_meaning: str = Field(description="What the band asks of a reviewer (the weekly batch also gives the seller's "
                                          "place in this week's early-warning queue or recovery list).")
    population: str = Field(description="'missing_now': the seller misses a standard at as_of; else 'compliant_now'.")
    standards_missed_now: list[str] = Field(description="The standards the seller misses at as_of (policy order).")
    base_log_odds: float = Field(
        description="Calibrated log-odds of the average seller; plus every group's contribution "
                    "(`contributions`) it gives the log-odds of risk_score.")
    model_name: str
    model_version: str
    policy_version: str
    feature_spec_hash: str
    reasons: list[Reason] = Field(description="Standards whose behaviour raises the risk most, strongest first.")
    lowering_reasons: list[Reason] = Field(
        default_factory=list, description="Standards whose behaviour lowers the risk most (only when asked for).")
    context: list[Context] = Field(description="History, exposure and context, shown beside the reasons.")
    contributions: list[Contribution] = Field(
        description="Every group's contribution: each standard's behaviour, then history, exposure, context.")
    recovery: list[Recovery] = Field(
        description="For each standard missed now, what brings it back (empty for a compliant seller).")


REASON_ARROW = pa.struct([
    ("rank", pa.int32()), ("standard", pa.string()), ("label", pa.string()), ("contribution", pa.float64()),
    ("probability_change", pa.float64()), ("direction", pa.string()), ("value", pa.float64()),
    ("volume", pa.int64()), ("headroom", pa.int64()), ("text", pa.string()),
])
CONTEXT_ARROW = pa.struct([("group", pa.string()), ("contribution", pa.float64()), ("features", pa.string())])
CONTRIBUTION_ARROW = pa.struct([("group", pa.string()), ("contribution", pa.float64())])
STANDARD_RISK_ARROW = pa.struct([("standard", pa.string()), ("label", pa.string()), ("risk", pa.float64())])
RECOVERY_ARROW = pa.struct([("standard", pa.string()), ("needed", pa.int64()), ("back_by", pa.date32()),
                            ("text", pa.string())])

SCORE_ARROW = pa.schema([
    ("record_id", pa.string()), ("seller_id", pa.string()), ("as_of", pa.date32()), ("risk_score", pa.float64()),
    ("standard_at_risk", pa.string()), ("risk_by_standard", pa.list_(STANDARD_RISK_ARROW)),
    ("risk_band", pa.string()), ("band_meaning", pa.string()), ("population", pa.string()),
    ("standards_missed_now", pa.list_(pa.string())), ("base_log_odds", pa.float64()), ("model_name", pa.string()),
    ("model_version", pa.string()), ("policy_version", pa.string()), ("feature_spec_hash", pa.string()),
    ("reasons", pa.list_(REASON_ARROW)), ("lowering_reasons", pa.list_(REASON_ARROW)),
    ("context", pa.list_(CONTEXT_ARROW)), ("contributions", pa.list_(CONTRIBUTION_ARROW)),
    ("recovery", pa.list_(RECOVERY_ARROW)),
])
"""The score record as an Arrow row, field for field ScoreRecord (tests hold the two in step); the
batch job adds its run id, the run's time and the weekly queue, and its files hold every column but
as_of (serving.batch.job.BATCH_FILE_ARROW)."""
