"""The model contract's per-standard risks: consistent with the any-standard risk, and stored and
read back with the booster as one model."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from models.risk_model import Calibration, RiskModel, StandardModel, consistent


@pytest.mark.parametrize(("risk", "per_standard", "expected"), [
    (0.30, [0.10, 0.05], [0.20, 0.10]),  # together below the risk: scaled up until they sum to it
    (0.10, [0.40, 0.20], [0.10, 0.05]),  # one above the risk: scaled down until the largest equals it
    (0.30, [0.20, 0.15], [0.20, 0.15]),  # within the bounds: unchanged
    (0.20, [0.00, 0.00], [0.10, 0.10]),  # no standard has any: shared evenly
])
def test_per_standard_risks_fit_inside_the_risk_of_any(risk: float, per_standard: list[float],
                                                       expected: list[float]) -> None:
    got = consistent(np.array([risk]), np.array([per_standard]))
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-15)


def test_consistency_holds_for_any_numbers_and_keeps_the_order() -> None:
    rng = np.random.default_rng(3)
    risk = rng.uniform(0, 1, 5000)
    q = rng.uniform(0, 1, (5000, 8)) ** rng.uniform(0.5, 6, (5000, 1))
    out = consistent(risk, q)
    assert (out.max(axis=1) <= risk + 1e-12).all()
    assert (out.sum(axis=1) >= risk - 1e-12).all()
    assert (out >= 0).all() and (out <= 1).all()
    np.testing.assert_array_equal(np.argmax(out, axis=1), np.argmax(q, axis=1))


def _booster(X: np.ndarray, y: np.ndarray) -> lgb.Booster:
    params = {"objective": "binary", "verbosity": -1, "num_leaves": 4, "deterministic": True, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=5)


def test_the_per_standard_boosters_travel_with_the_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    main = _booster(X, (X[:, 0] + X[:, 1] > 0).astype(int))
    one = StandardModel("cancellation_rate", _booster(X, (X[:, 0] > 0.5).astype(int)), Calibration(0.9, -0.2))
    constant = StandardModel("return_rate", None, Calibration(0.0, -3.0))  # too few breaches to learn from
    model = RiskModel(main, Calibration(1.1, 0.1), "abc", "p", ("a", "b", "c"), (one, constant))
    files = model.save_standards(tmp_path)
    assert [Path(f).name for f in files] == ["standard_cancellation_rate.lgb"]
    back = RiskModel.from_parts(lgb.Booster(model_str=main.model_to_string()), model.metadata(), tmp_path)
    assert back.standard_names == ("cancellation_rate", "return_rate")
    np.testing.assert_array_equal(back.standard_risk(X), model.standard_risk(X))
    risk = model.probability(X)
    q = model.standard_risk(X, risk)
    assert (q.max(axis=1) <= risk + 1e-12).all() and (q.sum(axis=1) >= risk - 1e-12).all()
    (tmp_path / "standard_cancellation_rate.lgb").unlink()
    with pytest.raises(ValueError, match="standard cancellation_rate"):
        RiskModel.from_parts(main, model.metadata(), tmp_path)
