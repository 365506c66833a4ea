"""Which standards a reviewer is told about, and why: each standard's reasons come from that
standard's own model.

The risk is made of its standards (`models.reasons.shares`). A standard earns a reason when it
carries a material share of the risk and its own behaviour (its rates, gap, trend, Wilson bound, and
the behaviour features the spec assigns to it: late handovers, overdue orders, unanswered messages)
raises its own risk, by the exact TreeSHAP of the standard's booster. How much of the seller's risk
that behaviour accounts for is the standard's share times the part of its own risk the behaviour
adds: effect = share * (1 - sigmoid(L - b) / sigmoid(L)), L the standard's calibrated log-odds and b
its behaviour's contribution to them. So a reason's effect is a part of the risk score, never more
than its standard's share.

Noise is never a reason: not a standard at a perfect rate (nothing to act on), not one whose effect
is below the policy's minimum (`Policy.reasons.min_effect`, in probability), not one that is not
judged yet unless its rate already misses the standard. Fewer reasons beat a false one. Reasons are
ordered by their standard's share, so the first reason, when there is one, is the standard at risk.

Column-wise: TreeSHAP runs for each standard only on the rows where it could be a reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from features.pipeline.spec import FeatureSpec
from features.policy.standing import Standing
from models.risk_model import RiskModel, sigmoid

Direction = Literal["raises", "lowers"]
REASONS_SHOWN = 5
"""How many reasons a record carries unless asked for another number (HTTP, batch, backtest alike)."""


@dataclass(frozen=True)
class StandardReasons:
    """Reasons by standard for a batch of rows, column-wise, sorted by row then rank: row, rank,
    standard (policy metric name), contribution (the standard's own behaviour on its own model's
    calibrated log-odds), probability_change (the part of the risk score that behaviour accounts for,
    signed: positive when it raises the risk), direction."""

    row: np.ndarray
    rank: np.ndarray
    standard: np.ndarray  # object
    contribution: np.ndarray
    probability_change: np.ndarray
    direction: Direction

    def __len__(self) -> int:
        return len(self.row)

    @classmethod
    def empty(cls, direction: Direction) -> StandardReasons:
        e = np.empty(0, dtype=np.int64)
        return cls(e, e, np.empty(0, dtype=object), np.empty(0), np.empty(0), direction)


def own_features(spec: FeatureSpec, standard: str) -> np.ndarray:
    """Positions (spec order) of the features a standard's reason speaks for: the seller's behaviour on
    that standard (its rates, gap, trend, Wilson bound, and what the spec assigns to it: late handovers,
    overdue orders, unanswered messages) and being judged (every exposure feature: the volumes the
    standards count and the orders behind them are one quantity, which the trees pick up through
    whichever column splits first). Being judged is worded as what it is for that standard, its
    volume and headroom ("judged on 107 orders: 1 more cancellation would miss it"). Other standards'
    behaviour, history (warnings) and context (category, region, season) never make a reason."""
    return np.asarray([j for j, f in enumerate(spec.features)
                       if (f.role == "behaviour" and f.standard == standard) or f.role == "exposure"], dtype=np.intp)


def reason_sources(spec: FeatureSpec, standards: tuple[str, ...]) -> dict[str, list[str]]:
    """For each standard a reason can name, the roles of the features it speaks for (the promotion gate
    refuses a model whose reasons would carry history or context)."""
    return {m: sorted({spec.features[j].role for j in own_features(spec, m)}) for m in standards}


def perfect(s: Standing) -> np.ndarray:
    """Per row: the rate is as good as it can be (no miss at all), or there is nothing to rate."""
    best = 0.0 if s.metric.direction == "at_most" else 1.0
    return np.isnan(s.rate) | (s.rate == best)


def candidates(s: Standing, share: np.ndarray, min_effect: float) -> np.ndarray:
    """Per row: could this standard be a reason at all (before its model is asked): a material share,
    a rate that is not perfect, and judged, or not judged yet but already past the standard."""
    return (share >= min_effect) & ~perfect(s) & (s.evaluated | past(s))


def past(s: Standing) -> np.ndarray:
    """Per row: the rate is past the standard's threshold (judged or not)."""
    m = s.metric
    with np.errstate(invalid="ignore"):
        return s.rate > m.threshold if m.direction == "at_most" else s.rate < m.threshold


def behaviour_effect(share: np.ndarray, logit: np.ndarray, own: np.ndarray) -> np.ndarray:
    """The part of the risk score a standard's own behaviour accounts for (signed): its share times
    the part of its own risk the behaviour adds (or, when negative, takes away)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        part = 1.0 - sigmoid(logit - own) / sigmoid(logit)
    return share * np.nan_to_num(part)


def choose_reasons(model: RiskModel, X: np.ndarray, shares: np.ndarray, stand: Mapping[str, Standing],
                   spec: FeatureSpec, min_effect: float, top: int, direction: Direction = "raises",
                   threads: int = 0) -> StandardReasons:
    """Per row, up to `top` standards whose own behaviour raises (or lowers) the risk by at least
    `min_effect` of probability, by their share of the risk, largest first. `shares`: rows x the
    model's standards (`standard_shares`); `stand`: where each row stands, by policy metric."""
    if top <= 0 or len(X) == 0 or not model.standards:
        return StandardReasons.empty(direction)
    rows_of, cols_of, contrib_of, effect_of = [], [], [], []
    for k, sm in enumerate(model.standards):
        s = stand[sm.standard]
        if direction == "raises":
            where = np.flatnonzero(candidates(s, shares[:, k], min_effect))
        else:  # what keeps a judged standard's risk down: any rate, perfect ones first of all
            where = np.flatnonzero(s.evaluated & ~s.missing)
        if len(where) == 0:
            continue
        own, logit = sm.own_contributions(X[where], own_features(spec, sm.standard), threads)
        effect = behaviour_effect(shares[where, k], logit, own)
        keep = effect >= min_effect if direction == "raises" else -effect >= min_effect
        rows_of.append(where[keep])
        cols_of.append(np.full(int(keep.sum()), k))
        contrib_of.append(own[keep])
        effect_of.append(effect[keep])
    if not rows_of:
        return StandardReasons.empty(direction)
    row, col = np.concatenate(rows_of), np.concatenate(cols_of)
    contribution, effect = np.concatenate(contrib_of), np.concatenate(effect_of)
    # by row, then the standard's share of the risk (largest first; for what lowers it, the largest effect)
    strength = shares[row, col] if direction == "raises" else -effect
    order = np.lexsort((col, -strength, row))
    row, col, contribution, effect = row[order], col[order], contribution[order], effect[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row, side="left") + 1
    keep = rank <= top
    names = np.asarray(model.standard_names, dtype=object)
    return StandardReasons(row[keep], rank[keep], names[col[keep]], contribution[keep], effect[keep], direction)


def at_risk(shares: np.ndarray, names: tuple[str, ...], missed: np.ndarray | None = None) -> np.ndarray:
    """Per row, the standard at risk: the one with the largest share of the risk; for a seller missing
    standards now (`missed`: rows x the same standards), the missed one with the largest share, so the
    queue's "standard missed", the seller page and the record name one standard. None without standards."""
    if shares.shape[1] == 0:
        return np.full(len(shares), None, dtype=object)
    pick = shares
    if missed is not None:
        pick = np.where(missed.any(axis=1, keepdims=True), np.where(missed, shares, -np.inf), shares)
    return np.asarray(names, dtype=object)[np.argmax(pick, axis=1)]


def reason_lists(reasons: StandardReasons, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of n: the first reason's standard (None without one) and every reason's standard in
    order, comma-separated ("" without one), for tables that keep one string per seller."""
    first = np.full(n, None, dtype=object)
    lists = np.full(n, "", dtype=object)
    lead = reasons.rank == 1
    first[reasons.row[lead]] = reasons.standard[lead]
    for row, standard in zip(reasons.row.tolist(), reasons.standard.tolist()):
        lists[row] = f"{lists[row]},{standard}" if lists[row] else standard
    return first, lists
