"""Our TreeSHAP gives LightGBM's own `pred_contrib` values: on the session's trained model over a real
snapshot, and on boosters grown to hit every split rule (categorical bitsets over 32 levels, missing
types None, Zero and NaN, values on a threshold, paths too deep for a table)."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.platform import layout
from features.pipeline.spec import feature_spec
from models.risk_model import model_frame
from models.treeshap import TABLE_FEATURES, Tables
from training.train import TrainResult


def lightgbm_contributions(booster: lgb.Booster, X) -> tuple[np.ndarray, np.ndarray]:
    c = booster.predict(X, pred_contrib=True)
    return c[:, :-1], c[:, -1]


def test_the_trained_model_explains_as_lightgbm_does(trained: TrainResult, feature_dir: Path, policy) -> None:
    """Every seller of the latest snapshot, with missing values and a category the trees never saw: the
    trees read LightGBM's view of the pandas frame, ours the model matrix."""
    frame = pd.read_parquet(layout.latest_snapshot(feature_dir))
    frame.loc[frame.index[:3], "category"] = ["not-a-category", None, frame["category"].iloc[2]]
    model = trained.model
    theirs, their_expected = lightgbm_contributions(model.booster, model_frame(frame, feature_spec(policy)))
    ours, expected = model.contributions(model.matrix(frame))
    assert np.isnan(model.matrix(frame)).any()  # missing values are exercised
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(expected, their_expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.sum(axis=1) + expected, model.raw_score(model.matrix(frame)), rtol=0, atol=1e-9)


def _awkward(rows: int, seed: int) -> pd.DataFrame:
    """Features that make LightGBM use every kind of split: a category of 70 levels (bitsets of three
    words), a number with NaNs in training, one whose zeros are missing, one without missing values
    in training (NaN at prediction reads as 0.0) and a few plain ones for depth."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "cat": pd.Categorical(rng.integers(0, 70, rows)),
        "with_nan": np.where(rng.random(rows) < 0.2, np.nan, rng.normal(size=rows)),
        "zero_missing": np.where(rng.random(rows) < 0.3, 0.0, rng.normal(2, 1, rows)),
        "never_missing": rng.integers(0, 5, rows).astype(float),
        **{f"x{k}": rng.normal(size=rows) for k in range(6)},
    })
    return X


def _target(X: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = (X["cat"].cat.codes.to_numpy() % 7 == 3) * 1.5 + np.nan_to_num(X["with_nan"].to_numpy(), nan=1.0) \
        + (X["zero_missing"].to_numpy() == 0) * 0.8 + 0.5 * X["never_missing"].to_numpy() \
        + X[[f"x{k}" for k in range(6)]].to_numpy() @ np.linspace(-1, 1, 6) + rng.logistic(size=len(X))
    return (signal > 1.5).astype(int)


@pytest.fixture(scope="module", params=[(4, 15), (10, 95)], ids=["shallow", "deep"])
def awkward_booster(request) -> tuple[lgb.Booster, pd.DataFrame]:
    depth, leaves = request.param
    X = _awkward(6000, seed=1)
    params = {"objective": "binary", "max_depth": depth, "num_leaves": leaves, "min_data_in_leaf": 5,
              "min_data_per_group": 5, "cat_smooth": 1, "max_cat_to_onehot": 4, "verbose": -1, "num_threads": 1,
              "zero_as_missing": False, "seed": 3}
    data = lgb.Dataset(X, _target(X, seed=2), categorical_feature=["cat"], params=params)
    return lgb.train(params, data, num_boost_round=40), X


def _split_kinds(booster: lgb.Booster) -> set[tuple[str, str]]:
    return {(n["decision_type"], n["missing_type"]) for t in booster.dump_model()["tree_info"]
            for n in _nodes(t["tree_structure"]) if "split_index" in n}


def _scored_rows(X: pd.DataFrame, booster: lgb.Booster) -> pd.DataFrame:
    """Rows to explain: fresh ones, with NaN everywhere it can go, unseen and negative codes, and
    numbers placed exactly on the trees' thresholds."""
    rows = _awkward(3000, seed=5)
    rows.loc[rows.index[:200], "never_missing"] = np.nan
    rows.loc[rows.index[200:400], "zero_missing"] = 0.0
    rows.loc[rows.index[400:450], "cat"] = np.nan
    rows["cat"] = rows["cat"].cat.add_categories([97])
    rows.loc[rows.index[450:500], "cat"] = 97
    thresholds = [(n["split_feature"], n["threshold"]) for t in booster.dump_model()["tree_info"]
                  for n in _nodes(t["tree_structure"]) if n.get("decision_type") == "<="]
    names = booster.feature_name()
    for i, (f, thr) in enumerate(thresholds[:500]):
        rows.iloc[500 + i, rows.columns.get_loc(names[f])] = thr
    return rows


def _nodes(n: dict):
    yield n
    if "split_index" in n:
        yield from _nodes(n["left_child"])
        yield from _nodes(n["right_child"])


def _matrix(rows: pd.DataFrame, booster: lgb.Booster) -> np.ndarray:
    """The codes LightGBM gives a pandas categorical it was trained on (its `pandas_categorical`)."""
    levels = booster.pandas_categorical[0]
    M = rows.drop(columns="cat").astype(float)
    codes = pd.Index(levels).get_indexer(rows["cat"].astype(object)).astype(float)
    M.insert(0, "cat", np.where(codes < 0, np.nan, codes))
    return M.to_numpy()


def test_every_split_rule_explains_as_lightgbm_does(awkward_booster) -> None:
    booster, X = awkward_booster
    kinds = _split_kinds(booster)
    assert {k for k, _ in kinds} == {"<=", "=="} and {m for _, m in kinds} >= {"None", "NaN"}
    rows = _scored_rows(X, booster)
    theirs, their_expected = lightgbm_contributions(booster, rows)
    tables = Tables.from_booster(booster)
    M = _matrix(rows, booster)
    ours = tables.contributions(M)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    assert tables.expected == pytest.approx(their_expected[0], abs=1e-12)
    # one row alone, on the calling thread, gets the same bits as within the batch on all cores
    assert np.array_equal(tables.contributions(M[[700]], threads=1)[0], ours[700])
    assert np.array_equal(tables.contributions(M, threads=1), ours)


def test_zeros_read_as_missing_when_lightgbm_was_told_so() -> None:
    X = _awkward(4000, seed=7)
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1, "zero_as_missing": True,
              "min_data_in_leaf": 5, "seed": 3}
    booster = lgb.train(params, lgb.Dataset(X, _target(X, seed=8), categorical_feature=["cat"], params=params), 30)
    assert "Zero" in {m for _, m in _split_kinds(booster)}
    rows = _scored_rows(X, booster)
    theirs, _ = lightgbm_contributions(booster, rows)
    np.testing.assert_allclose(Tables.from_booster(booster).contributions(_matrix(rows, booster)), theirs,
                               rtol=0, atol=1e-9)


def test_leaves_too_deep_for_a_table_are_computed_per_row(awkward_booster) -> None:
    """The deep booster's leaves come in both kinds, so the test above checked both ways."""
    booster, _ = awkward_booster
    tables = Tables.from_booster(booster)
    features = np.diff(tables.leaf_slot)
    assert np.array_equal(tables.leaf_table < 0, features > TABLE_FEATURES)
    if booster.params["max_depth"] > TABLE_FEATURES:
        assert (features > TABLE_FEATURES).any() and (features <= TABLE_FEATURES).any()


def test_a_matrix_of_the_wrong_width_is_refused(awkward_booster) -> None:
    booster, _ = awkward_booster
    with pytest.raises(ValueError, match="expected rows x 10 features"):
        Tables.from_booster(booster).contributions(np.zeros((2, 9)))


def test_raw_scores_are_lightgbms_bit_for_bit(awkward_booster) -> None:
    """The compiled tree walk gives `predict(raw_score=True)`'s bits on every split rule (categorical
    bitsets, NaN, unseen and negative codes, values on a threshold), one row alone and on all cores."""
    booster, X = awkward_booster
    rows = _scored_rows(X, booster)
    theirs = booster.predict(rows, raw_score=True)
    tables = Tables.from_booster(booster)
    M = _matrix(rows, booster)
    assert np.array_equal(tables.raw_scores(M, threads=1), theirs)
    assert np.array_equal(tables.raw_scores(np.repeat(M, 2, axis=0))[::2], theirs)  # > SERIAL_ROWS: in parallel
    assert tables.raw_scores(M[[700]], threads=1)[0] == theirs[700]


def test_raw_scores_of_zero_as_missing_and_one_leaf_trees() -> None:
    """Missing type Zero, and a booster whose later trees are single leaves (no split gains)."""
    X = _awkward(2000, seed=7)
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1, "zero_as_missing": True,
              "min_data_in_leaf": 5, "seed": 3}
    booster = lgb.train(params, lgb.Dataset(X, _target(X, seed=8), categorical_feature=["cat"], params=params), 30)
    stump = lgb.train({**params, "min_data_in_leaf": 5000}, lgb.Dataset(X, _target(X, seed=8), params=params), 3)
    rows = _scored_rows(X, booster)
    assert np.array_equal(Tables.from_booster(booster).raw_scores(_matrix(rows, booster)),
                          booster.predict(rows, raw_score=True))
    stump_tables = Tables.from_booster(stump)
    assert (stump_tables.tree_root < 0).all()
    assert np.array_equal(stump_tables.raw_scores(_matrix(rows, booster)), stump.predict(rows, raw_score=True))
