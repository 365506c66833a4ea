"""What a week of scores means for the people who plan and work the review queue, as pure functions
over arrays and frames: how many sellers fall in each band, how many breaches to expect in the
next horizon (the case volume staffing plans need) and how sure that figure is, how much of that
risk the weekly reviewer capacity covers, who rose most since last week, and whether the scored
population still looks like the one the model was trained on (population stability index).

No I/O here: the batch job (`serving.batch.job` and its steps) reads and writes, these functions compute."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from features.policy.definition import Policy, ReviewCapacity

Z = {0.90: 1.6448536269514722, 0.95: 1.959963984540054}
PSI_WATCH, PSI_ALERT = 0.10, 0.25
"""The usual PSI reading: below 0.1 stable, 0.1 to 0.25 a moderate shift worth watching, above 0.25
a significant shift (investigate, consider retraining)."""
PSI_FLOOR = 1e-4
"""Share given to an empty bin, so a bin seen on one side only counts as a large but finite shift."""


# ------------------------------------------------------------------ bands and case volume


def band_counts(scores: np.ndarray, bands: np.ndarray, policy: Policy) -> pd.DataFrame:
    """Per policy band (in the policy's order): sellers, their share, and the breaches expected among them."""
    scores = np.asarray(scores, dtype="float64")
    bands = np.asarray(bands, dtype=object)
    n = len(scores)
    rows = []
    for b in policy.risk_bands:
        mask = bands == b.name
        rows.append({"band": b.name, "sellers": int(mask.sum()), "share": float(mask.sum() / n) if n else float("nan"),
                     "expected_breaches": float(scores[mask].sum())})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ExpectedBreaches:
    """The number of sellers expected to breach within the horizon: the sum of calibrated probabilities,
    with the spread a sum of independent Bernoulli outcomes has (variance sum p(1-p)). The interval is
    the normal approximation, floored at zero; it assumes the model is calibrated and sellers independent,
    so it is the least uncertainty the forecast can have, not the most (models.forecast adds the model's
    own error; the summary prints that interval and keeps this one beside it)."""

    expected: float
    std: float
    level: float
    low: float
    high: float


def expected_breaches(scores: np.ndarray, level: float = 0.90) -> ExpectedBreaches:
    """Expected breaches within the horizon and its `level` interval (any level; the policy sets it)."""
    p = np.asarray(scores, dtype="float64")
    mean = float(p.sum())
    std = math.sqrt(float((p * (1.0 - p)).sum()))
    z = Z.get(level) or NormalDist().inv_cdf(0.5 + level / 2)
    return ExpectedBreaches(mean, std, level, max(0.0, mean - z * std), mean + z * std)


def capacity_k(capacity: ReviewCapacity, active_sellers: int) -> int:
    """Sellers the reviewers can look at this week (the policy's rule, never more than there are)."""
    return min(capacity.sellers_for(active_sellers), active_sellers)


@dataclass(frozen=True)
class Coverage:
    """What the weekly review queue (the k riskiest sellers) holds of the expected breaches."""

    capacity: int
    expected_in_queue: float
    share_of_expected: float
    lowest_score_in_queue: float


def capacity_coverage(scores: np.ndarray, capacity: ReviewCapacity) -> Coverage:
    """The queue is the k highest scores; its expected breaches and their share of all expected breaches."""
    p = np.asarray(scores, dtype="float64")
    k = capacity_k(capacity, len(p))
    if k == 0:
        return Coverage(0, 0.0, float("nan"), float("nan"))
    top = np.partition(p, len(p) - k)[len(p) - k:]
    total = float(p.sum())
    in_queue = float(top.sum())
    return Coverage(k, in_queue, in_queue / total if total > 0 else float("nan"), float(top.min()))


# ------------------------------------------------------------------ the weekly queue


EARLY_WARNING, RECOVERY = "early_warning", "recovery"


@dataclass(frozen=True)
class Queues:
    """This week's two lists, per seller (row order of the inputs): `queue` is EARLY_WARNING,
    RECOVERY or None, `rank` 1.. within its list (0: in neither).

    The early-warning queue holds sellers compliant now only, riskiest first, as many as reviewers can
    look at (the policy's review capacity, counted on every active seller). The recovery list holds
    every seller missing a standard now, most severe first: most standards missed, then most standards
    no run of good orders brings back alone, then the most good outcomes needed, then the score."""

    queue: np.ndarray  # object
    rank: np.ndarray  # int32
    capacity: int
    early_warning: int
    recovery: int


def weekly_queues(seller_id: np.ndarray, scores: np.ndarray, missed: np.ndarray, unrecoverable: np.ndarray,
                  needed: np.ndarray, capacity: ReviewCapacity) -> Queues:
    """The early-warning queue and the recovery list (see Queues); ties go to the lower seller id."""
    n = len(scores)
    frame = pd.DataFrame({"seller_id": np.asarray(seller_id, dtype=object), "score": scores, "missed": missed,
                          "unrecoverable": unrecoverable, "needed": needed})
    queue = np.full(n, None, dtype=object)
    rank = np.zeros(n, dtype="int32")
    k = capacity_k(capacity, n)
    compliant = frame[frame["missed"] == 0].sort_values(["score", "seller_id"], ascending=[False, True],
                                                        kind="mergesort")
    early = compliant.index.to_numpy()[:k]
    queue[early], rank[early] = EARLY_WARNING, np.arange(1, len(early) + 1)
    missing = frame[frame["missed"] > 0].sort_values(
        ["missed", "unrecoverable", "needed", "score", "seller_id"], ascending=[False, False, False, False, True],
        kind="mergesort").index.to_numpy()
    queue[missing], rank[missing] = RECOVERY, np.arange(1, len(missing) + 1)
    return Queues(queue, rank, k, len(early), len(missing))


def queue_summary(scores: np.ndarray, queues: Queues, missed_by_standard: dict[str, int]) -> dict:
    """The two lists in figures: sizes, expected breaches in the early-warning queue (and their share
    of those expected among sellers compliant now), how many sellers miss a standard now, and which."""
    p = np.asarray(scores, dtype="float64")
    early = queues.queue == EARLY_WARNING
    compliant = queues.queue != RECOVERY
    expected_compliant = float(p[compliant].sum())
    in_queue = float(p[early].sum())
    return {
        "early_warning": {"sellers": queues.early_warning, "capacity": queues.capacity,
                          "compliant_sellers": int(compliant.sum()), "expected_breaches": in_queue,
                          "share_of_expected_breaches_of_compliant": (in_queue / expected_compliant
                                                                      if expected_compliant > 0 else float("nan")),
                          "lowest_score": float(p[early].min()) if early.any() else float("nan")},
        "recovery": {"sellers": queues.recovery, "missing_now": queues.recovery,
                     "by_standard": {k: int(v) for k, v in missed_by_standard.items()}},
    }


# ------------------------------------------------------------------ risers


def risers(current: pd.DataFrame, previous: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The `n` sellers whose score rose most since the previous week (sellers scored both weeks; ties
    by seller_id). `current` has seller_id, risk_score, risk_band; `previous` has seller_id,
    risk_score and, when known, risk_band."""
    prev = previous[["seller_id", "risk_score"] + (["risk_band"] if "risk_band" in previous.columns else [])]
    both = current[["seller_id", "risk_score", "risk_band"]].merge(prev, on="seller_id", suffixes=("", "_previous"))
    both["change"] = both["risk_score"] - both["risk_score_previous"]
    both = both[both["change"] > 0]
    top = both.sort_values(["change", "seller_id"], ascending=[False, True], kind="stable").head(n)
    if "risk_band_previous" not in top.columns:
        top = top.assign(risk_band_previous=None)
    return top[["seller_id", "risk_score_previous", "risk_score", "change", "risk_band_previous", "risk_band"]] \
        .reset_index(drop=True)


# ------------------------------------------------------------------ drift


@dataclass(frozen=True)
class Bins:
    """How one variable is cut for the PSI: numeric edges (inner cut points, from the reference's
    deciles) or categorical levels; missing values always get a bin of their own (the last)."""

    name: str
    kind: str  # "numeric" or "category"
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return (len(self.edges) + 1 if self.kind == "numeric" else len(self.levels) + 1) + 1  # + missing

    def counts(self, values: np.ndarray | pd.Series) -> np.ndarray:
        """How many values fall in each bin (the last bin: missing; for categories, the one before
        it: a level the reference never saw)."""
        if self.kind == "numeric":
            v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            missing = np.isnan(v)
            idx = np.searchsorted(np.asarray(self.edges, dtype="float64"), v[~missing], side="right")
            out = np.bincount(idx, minlength=self.size - 1)
        else:
            s = pd.Series(values, dtype=object)
            missing = s.isna().to_numpy()
            codes = pd.Categorical(s[~missing].astype(str), categories=list(self.levels)).codes
            codes = np.where(codes < 0, len(self.levels), codes)
            out = np.bincount(codes, minlength=self.size - 1)
        return np.append(out, int(missing.sum())).astype("int64")

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "edges": list(self.edges), "levels": list(self.levels)}

    @classmethod
    def from_dict(cls, d: dict) -> Bins:
        return cls(d["name"], d["kind"], tuple(float(e) for e in d["edges"]), tuple(d["levels"]))


def reference_bins(name: str, values: np.ndarray | pd.Series, categorical: bool = False, n_bins: int = 10) -> Bins:
    """Bins from the reference sample: deciles of the non-missing values (repeated cut points merged),
    or the levels seen."""
    if categorical:
        s = pd.Series(values, dtype=object).dropna().astype(str)
        return Bins(name, "category", levels=tuple(sorted(s.unique())))
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype="float64")
    if len(v) == 0:
        return Bins(name, "numeric")
    cuts = np.unique(np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return Bins(name, "numeric", edges=tuple(float(c) for c in cuts))


def psi(expected_counts: np.ndarray, actual_counts: np.ndarray) -> float:
    """Population stability index of `actual` against `expected` over the same bins:
    sum (a - e) ln(a / e) over the bins' shares, empty bins floored at PSI_FLOOR."""
    e = np.asarray(expected_counts, dtype="float64")
    a = np.asarray(actual_counts, dtype="float64")
    if e.sum() == 0 or a.sum() == 0:
        return float("nan")
    e = np.maximum(e / e.sum(), PSI_FLOOR)
    a = np.maximum(a / a.sum(), PSI_FLOOR)
    return float(((a - e) * np.log(a / e)).sum())


def psi_level(value: float) -> str:
    """stable (< 0.1), watch (0.1 to 0.25) or alert (>= 0.25); '-' when unknown."""
    if value != value:
        return "-"
    return "stable" if value < PSI_WATCH else "watch" if value < PSI_ALERT else "alert"


def drift_table(reference: dict[str, tuple[Bins, np.ndarray]], current: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per variable with both a reference and current counts: PSI and its alert level,
    largest first (the score first of all when present)."""
    rows = []
    for name, (_bins, ref_counts) in reference.items():
        if name not in current:
            continue
        value = psi(ref_counts, current[name])
        rows.append({"variable": name, "psi": value, "level": psi_level(value)})
    df = pd.DataFrame(rows, columns=["variable", "psi", "level"])
    if df.empty:
        return df
    df["_first"] = df["variable"] != "risk_score"
    return df.sort_values(["_first", "psi"], ascending=[True, False]).drop(columns="_first").reset_index(drop=True)
