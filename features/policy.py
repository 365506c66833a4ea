"""Marketplace performance policies: versioned YAML files, validated on load.

A policy says which standards a seller is held to (each a ratio of two measures from
`features.measures` over a trailing window, with a threshold, a direction and a minimum volume
below which it is not evaluated), how far ahead the label looks, and how scores map to
reviewer-facing risk bands. Switching marketplaces means switching files, never code.
"""

from __future__ import annotations

import math

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.formatting import percent
from features.measures import MEASURES
from features.schema import FULFILMENT_CHANNELS

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
    """A score range and what it asks of a reviewer."""

    name: str
    below: float = Field(gt=0.0, le=1.01)
    meaning: str


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


class Policy(_Strict):
    """A marketplace's performance policy at one version."""

    version: str = Field(min_length=1)
    marketplace: str
    evaluation_every_days: int = Field(gt=0)
    horizon_days: int = Field(gt=0)
    metrics: dict[str, Metric] = Field(min_length=1)
    risk_bands: tuple[RiskBand, ...] = Field(min_length=1)
    review_capacity: ReviewCapacity

    @field_validator("metrics", mode="before")
    @classmethod
    def _name_metrics(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: {**v, "name": k} if isinstance(v, dict) else v for k, v in value.items()}
        return value

    @field_validator("risk_bands")
    @classmethod
    def _ordered_bands(cls, value: tuple[RiskBand, ...]) -> tuple[RiskBand, ...]:
        uppers = [b.below for b in value]
        if uppers != sorted(uppers) or len(set(uppers)) != len(uppers):
            raise ValueError(f"band upper bounds must increase, got {uppers}")
        if uppers[-1] <= 1.0:
            raise ValueError("the last band must cover a score of 1.0 (set its 'below' above 1)")
        return value


def policy_path(name_or_path: str | Path) -> Path:
    """Where a policy lives: a path to a YAML file, or the name of one shipped in `features/policies`."""
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
