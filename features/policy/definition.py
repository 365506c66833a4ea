"""Marketplace performance policies: versioned YAML files, validated on load.

A policy says which standards a seller is held to (each a ratio of two measures from
`features.policy.measures` over a trailing window, with a threshold, a direction and a minimum volume
below which it is not evaluated), how far ahead the label looks, how many sellers reviewers can
look at each week, the bands that place a seller relative to that weekly queue, and how the model is
monitored against matured labels (the champion's age limit among them). Switching marketplaces means
switching files, never code.
"""

from __future__ import annotations

import math

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.platform.formatting import percent
from features.policy.measures import MEASURES
from features.events.schema import FULFILMENT_CHANNELS

POLICY_DIR = Path(__file__).parent / "policies"


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metric(_Strict):
    """One standard: numerator / denominator over a trailing window, held against a threshold."""

    name: str = ""
    label: str = Field(min_length=1)  # what a reviewer calls it, e.g. "On-time deliveries"
    description: str
    numerator: tuple[str, ...]
    denominator: str
    direction: Literal["at_most", "at_least"]
    threshold: float = Field(ge=0.0, le=1.0)
    window_days: int = Field(gt=0, le=365)
    min_count: int = Field(ge=1)
    channels: tuple[str, ...] = ("seller",)
    miss_words: tuple[str, str] = ("miss", "misses")
    """One and several of what breaks the standard, in a reviewer's words ("late delivery", "late deliveries")."""
    keep_words: tuple[str, str] = ("order that meets it", "orders that meet it")
    """One and several of what brings it back ("on-time delivery", "on-time deliveries")."""

    @field_validator("numerator", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("numerator", "denominator")
    @classmethod
    def _known_measure(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for name in (value,) if isinstance(value, str) else value:
            if name not in MEASURES:
                raise ValueError(f"unknown measure {name!r}; known: {', '.join(sorted(MEASURES))}")
        return value

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in value if c not in FULFILMENT_CHANNELS]
        if bad or not value:
            raise ValueError(f"channels must be a non-empty subset of {list(FULFILMENT_CHANNELS)}, got {list(value)}")
        return value

    def misses(self, rate: float) -> bool:
        """True when a rate fails this standard."""
        return rate > self.threshold if self.direction == "at_most" else rate < self.threshold

    @property
    def standard_text(self) -> str:
        """The standard in a reviewer's words, e.g. 'at most 2%'."""
        word = "at most" if self.direction == "at_most" else "at least"
        return f"{word} {percent(self.threshold)}"


class RiskBand(_Strict):
    """What a seller's place in this week's ranking asks of a reviewer. Sellers compliant now are ranked
    by risk; a band holds those ranked within `within_queues` weekly queues (review capacity times
    `within_queues`) that no earlier band holds, and the last compliant band (no `within_queues`) holds
    the rest. The first compliant band is the early-warning queue itself (`within_queues: 1`). One band
    (`missing_now: true`) holds the sellers missing a standard now: the recovery list."""

    name: str = Field(min_length=1)
    meaning: str = Field(min_length=1)
    within_queues: float | None = Field(None, gt=0)
    missing_now: bool = False


class ReviewCapacity(_Strict):
    """How many sellers reviewers can look at each week."""

    share_of_active_sellers: float | None = Field(default=None, gt=0.0, le=1.0)
    sellers_per_week: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> ReviewCapacity:
        if (self.share_of_active_sellers is None) == (self.sellers_per_week is None):
            raise ValueError("give exactly one of share_of_active_sellers or sellers_per_week")
        return self

    def sellers_for(self, active_sellers: int) -> int:
        """How many sellers reviewers can look at in a week with this many active sellers (at least one)."""
        if self.share_of_active_sellers is not None:
            # round first so that e.g. 0.1 * 30 = 3.0000000000000004 is a queue of 3, not 4
            k = math.ceil(round(self.share_of_active_sellers * active_sellers, 9))
        else:
            k = int(self.sellers_per_week)
        return max(1, k)


class ReasonRules(_Strict):
    """What may be told to a reviewer as a reason (the words are the metrics' own)."""

    min_effect: float = Field(default=0.01, gt=0.0, lt=1.0)
    """The least part of the risk score (probability) a reason's behaviour must account for: below it,
    a reason is noise."""


class Monitoring(_Strict):
    """How the weekly run watches the model against the labels that have matured, and when the leader
    page warns (serving.batch.monitoring computes, serving.console.leader shows)."""

    champion_max_age_days: int = Field(default=120, gt=0)
    """The oldest a scoring model may be (days since its version was registered) before the leader page
    warns that it is due for retraining: marketplaces, seasons and sellers move on."""
    interval_level: float = Field(default=0.90, gt=0.0, lt=1.0)
    """The central share of outcomes the summary's breach interval and the monitoring intervals hold."""
    lookback_weeks: int = Field(default=26, gt=0)
    """Matured weeks each run looks back at: their figures, and the model errors the forecast learns from."""
    warn_after_weeks: int = Field(default=2, ge=1)
    """A figure outside its interval this many monitored weeks running is a warning, not noise."""


class Policy(_Strict):
    """A marketplace's performance policy at one version."""

    version: str = Field(min_length=1)
    marketplace: str
    evaluation_every_days: int = Field(gt=0)
    horizon_days: int = Field(gt=0)
    metrics: dict[str, Metric] = Field(min_length=1)
    risk_bands: tuple[RiskBand, ...] = Field(min_length=1)
    review_capacity: ReviewCapacity
    reasons: ReasonRules = ReasonRules()
    monitoring: Monitoring = Monitoring()

    @field_validator("metrics", mode="before")
    @classmethod
    def _name_metrics(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: {**v, "name": k} if isinstance(v, dict) else v for k, v in value.items()}
        return value

    @field_validator("risk_bands")
    @classmethod
    def _queue_bands(cls, value: tuple[RiskBand, ...]) -> tuple[RiskBand, ...]:
        names = [b.name for b in value]
        if len(set(names)) != len(names):
            raise ValueError(f"band names must differ, got {names}")
        recovery = [b for b in value if b.missing_now]
        if len(recovery) != 1 or recovery[0].within_queues is not None:
            raise ValueError("exactly one band must be `missing_now: true` (the recovery list), without within_queues")
        ranked = [b for b in value if not b.missing_now]
        if len(ranked) < 2:
            raise ValueError("give at least two bands for sellers compliant now: the queue and the rest")
        within = [b.within_queues for b in ranked[:-1]]
        if within[0] != 1:
            raise ValueError(f"the first compliant band ({ranked[0].name}) is this week's queue: within_queues must "
                             f"be 1, got {within[0]}")
        if None in within or within != sorted(within) or len(set(within)) != len(within):
            raise ValueError(f"within_queues must increase band by band, got {within}")
        if ranked[-1].within_queues is not None:
            raise ValueError(f"the last compliant band ({ranked[-1].name}) holds the rest: leave out within_queues")
        return value

    @property
    def recovery_band(self) -> RiskBand:
        """The band of sellers missing a standard now."""
        return next(b for b in self.risk_bands if b.missing_now)

    @property
    def ranked_bands(self) -> tuple[RiskBand, ...]:
        """The bands of sellers compliant now, from this week's queue to the rest."""
        return tuple(b for b in self.risk_bands if not b.missing_now)


def policy_path(name_or_path: str | Path) -> Path:
    """Where a policy lives: a path to a YAML file, or the name of one shipped in `features/policy/policies`."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"}:
        return path
    return POLICY_DIR / f"{name_or_path}.yaml"


def load_policy(name_or_path: str | Path) -> Policy:
    """Read and validate a policy; any problem raises PolicyError naming the file and key."""
    path = policy_path(name_or_path)
    if not path.is_file():
        shipped = sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))
        raise PolicyError(f"policy {name_or_path!r} not found at {path}; shipped policies: {', '.join(shipped)}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise PolicyError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: expected a mapping at the top level")
    try:
        return Policy.model_validate(raw)
    except ValidationError as err:
        lines = [f"{path.name}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise PolicyError("invalid policy\n  " + "\n  ".join(lines)) from None
