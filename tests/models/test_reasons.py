"""The reasons room: the risk made of its standards (exact Shapley shares adding up to the risk), each
standard's reasons from its own model's exact TreeSHAP, and no noise (no perfect rate, nothing below the
policy's minimum effect, nothing not judged yet unless it already misses)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.platform import layout
from features.policy.standing import standings
from models.reasons.choose import at_risk, choose_reasons, own_features, past, perfect, reason_lists
from models.reasons.shares import standard_shares


def brute_force_shares(risk: float, q: np.ndarray) -> np.ndarray:
    """Shapley values of v(S) = 1 - prod over S (1 - q_s), by enumerating every coalition, scaled to risk."""
    k = len(q)
    v = lambda S: 1.0 - float(np.prod([1.0 - q[j] for j in S])) if S else 0.0
    phi = np.zeros(k)
    for s in range(k):
        others = [j for j in range(k) if j != s]
        for size in range(k):
            for S in itertools.combinations(others, size):
                w = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
                phi[s] += w * (v([*S, s]) - v(list(S)))
    return phi * risk / v(list(range(k)))


def test_shares_are_the_shapley_values_and_add_up_to_the_risk_exactly() -> None:
    rng = np.random.default_rng(3)
    q = rng.uniform(0, 0.6, (400, 8)) * (rng.random((400, 8)) < 0.7)
    risk = np.clip(1 - np.prod(1 - q, axis=1) * rng.uniform(0.8, 1.1, 400), 0, 1)
    shares = standard_shares(risk, q)
    np.testing.assert_allclose(shares.sum(axis=1), risk, rtol=0, atol=1e-12)
    for i in (0, 7, 123, 399):
        np.testing.assert_allclose(shares[i], brute_force_shares(risk[i], q[i]), rtol=0, atol=1e-12)
    assert (shares >= 0).all() and (shares[q == 0] == 0).all()  # a standard without risk carries none of it
    busy = (q > 0).any(axis=1)
    assert (shares[busy].argmax(axis=1) == q[busy].argmax(axis=1)).all()  # the largest share is the highest risk


def test_equal_risks_share_equally_and_no_risk_spreads_evenly() -> None:
    shares = standard_shares(np.array([0.5, 0.3]), np.array([[0.2, 0.2, 0.0], [0.0, 0.0, 0.0]]))
    assert shares[0, 0] == pytest.approx(shares[0, 1]) and shares[0, 2] == 0.0
    np.testing.assert_allclose(shares[1], [0.1, 0.1, 0.1])
    assert standard_shares(np.array([0.4]), np.empty((1, 0))).shape == (1, 0)


def test_the_standard_at_risk_of_a_seller_missing_standards_is_a_missed_one() -> None:
    shares = np.array([[0.1, 0.5, 0.2], [0.1, 0.5, 0.2]])
    missed = np.array([[True, False, True], [False, False, False]])
    assert at_risk(shares, ("a", "b", "c"), missed).tolist() == ["c", "b"]
    assert at_risk(shares, ("a", "b", "c")).tolist() == ["b", "b"]


@pytest.fixture(scope="module")
def latest(feature_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(layout.latest_snapshot(feature_dir))


def test_a_standards_reason_is_its_own_models_treeshap(trained, latest: pd.DataFrame) -> None:
    """Each per-standard booster's own-feature contribution equals LightGBM's pred_contrib summed over the
    standard's own features, times its calibration slope, and its log-odds are the booster's (1e-9)."""
    model = trained.model
    X = model.matrix(latest.head(300))
    spec_names = list(model.feature_names)
    from features.pipeline.spec import feature_spec
    from features.policy.definition import load_policy

    spec = feature_spec(load_policy(model.policy_version))
    assert spec.names == spec_names
    for sm in model.standards:
        if sm.booster is None:
            continue
        own = own_features(spec, sm.standard)
        assert all(spec.features[j].role == "exposure" or spec.features[j].standard == sm.standard for j in own)
        mine, logit = sm.own_contributions(X, own, threads=1)
        lgb = sm.booster.predict(X, pred_contrib=True)
        np.testing.assert_allclose(mine, sm.calibration.slope * lgb[:, own].sum(axis=1), rtol=0, atol=1e-9)
        raw = sm.booster.predict(X, raw_score=True)
        np.testing.assert_allclose(logit, sm.calibration.slope * raw + sm.calibration.intercept, rtol=0, atol=1e-9)


def test_reasons_carry_no_noise_and_the_standard_at_risk_comes_first(trained, latest: pd.DataFrame, policy) -> None:
    from features.pipeline.spec import feature_spec

    model, spec = trained.model, feature_spec(policy)
    X = model.matrix(latest)
    risk = model.probability(X)
    shares = standard_shares(risk, model.standard_risk(X, risk))
    stand = standings(latest, policy)
    min_effect = policy.reasons.min_effect
    r = choose_reasons(model, X, shares, stand, spec, min_effect, top=5)
    assert len(r) > 50
    col = np.asarray([model.standard_names.index(m) for m in r.standard])
    assert (r.probability_change >= min_effect).all()  # nothing below the policy's minimum effect
    assert (r.probability_change <= shares[r.row, col] + 1e-12).all()  # never more than its standard's share
    assert (r.contribution > 0).all()
    for m in set(r.standard):
        s, rows = stand[m], r.row[r.standard == m]
        assert not perfect(s)[rows].any()  # no reason at a perfect rate (nor without volume)
        assert (s.evaluated[rows] | past(s)[rows]).all()  # not judged yet only when it already misses
    same_row = np.diff(r.row) == 0
    assert (np.diff(shares[r.row, col])[same_row] <= 0).all()  # by share, largest first
    names = at_risk(shares, model.standard_names)
    first, every = reason_lists(r, len(latest))
    has = np.asarray([names[i] in every[i].split(",") for i in range(len(latest))])
    assert (first[has] == names[has]).all()  # when the standard at risk has a reason, it is the first
    lowers = choose_reasons(model, X, shares, stand, spec, min_effect, top=2, direction="lowers")
    assert (lowers.probability_change <= -min_effect).all() and (lowers.contribution < 0).all()
    assert lowers.rank.max(initial=0) <= 2
