"""The risk made of its standards: how much of a seller's risk each standard accounts for, in
probability, adding up exactly to the risk score.

The decomposition is the Shapley value over the standards of the independence combination
v(S) = 1 - prod over s in S of (1 - q_s) (q_s: the calibrated risk of missing standard s), scaled
so the shares add up to the calibrated any-standard risk rather than to v(all standards):

    share_s = risk * phi_s / v(all),   phi_s = sum over S without s of |S|!(K-|S|-1)!/K! (v(S+s) - v(S))

Shapley's efficiency gives sum phi_s = v(all) - v(empty) = v(all), so the shares add up to the risk;
a standard with no risk has no share (null player); two standards of equal risk get equal shares
(symmetry); and a larger risk never gets a smaller share, so the largest share is the standard most
at risk. The scaling keeps each standard's share proportional to what it adds under independence
while the total is the any-standard model's, whose calibration is the one a leader plans with.
Exact: K standards cost 2^K subsets per seller (256 for eight), column-wise over the batch."""

from __future__ import annotations

from math import factorial

import numpy as np


def standard_shares(risk: np.ndarray, per_standard: np.ndarray) -> np.ndarray:
    """Rows x standards: each standard's share of the risk score (probability), adding up to `risk`
    row by row. `per_standard`: the calibrated risk of missing each standard (rows x K).

    Under independence a standard's marginal contribution to a coalition S is q_s * prod over S of
    (1 - q_j), so its Shapley value is q_s * sum over k of w_k * e_k, e_k the elementary symmetric
    polynomial of degree k of the other standards' (1 - q_j) and w_k = k!(K-k-1)!/K! the weight of a
    coalition of k: O(K^3) array operations over the rows, no enumeration of subsets."""
    risk = np.asarray(risk, dtype="float64")
    q = np.clip(np.asarray(per_standard, dtype="float64"), 0.0, 1.0)
    n, k = q.shape
    if k == 0:
        return np.empty((n, 0))
    weight = [factorial(j) * factorial(k - j - 1) / factorial(k) for j in range(k)]
    keep = 1.0 - q
    # e[d][:, s]: e_d of the standards other than s, every s at once (a request's one seller pays numpy's
    # per-call cost K^2 times, not K^3); standard j adds keep_j * 0 to its own column, and e + 0.0 is e
    # exactly (e is never -0.0), so the values are those of one standard at a time, bit for bit
    e = [np.ones((n, k))] + [np.zeros((n, k)) for _ in range(k - 1)]
    others = 1.0 - np.eye(k)
    for j in range(k):
        factor = keep[:, j:j + 1] * others[j]  # rows x K: keep_j, and 0 in column j
        for d in range(k - 1, 0, -1):
            e[d] = e[d] + factor * e[d - 1]
    phi = q * sum(w * e_d for w, e_d in zip(weight, e))
    every = np.ones(n)
    for j in range(k):  # column by column: a row's value never depends on the rows beside it
        every = every * keep[:, j]
    total = 1.0 - every  # v(all standards) = sum of the Shapley values
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total[:, None] > 0, phi * (risk / total)[:, None], risk[:, None] / k)
