"""Reasons from a real trained model: contributions add up to the score, the strongest come first,
and the sentence is the spec's template filled with the seller's own value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shap

from features.platform import layout
from models.explain import explain
from models.risk_model import model_frame
from features.pipeline.spec import feature_spec
from training.train import TrainResult


@pytest.fixture(scope="module")
def latest(feature_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(layout.latest_snapshot(feature_dir))


def test_contributions_add_up_to_the_calibrated_score(trained: TrainResult, latest: pd.DataFrame, policy) -> None:
    spec = feature_spec(policy)
    X = model_frame(latest, spec)
    ex = explain(trained.model, X)
    np.testing.assert_allclose(ex.score, trained.model.probability(X), rtol=0, atol=1e-12)
    cal = trained.model.calibration
    np.testing.assert_allclose(ex.logit, cal.slope * trained.model.raw_score(X) + cal.intercept, atol=1e-9)


def test_lightgbm_treeshap_agrees_with_the_shap_package(trained: TrainResult, latest: pd.DataFrame, policy) -> None:
    spec = feature_spec(policy)
    X = model_frame(latest.head(200), spec)
    ours, expected = trained.model.contributions(X)
    explainer = shap.TreeExplainer(trained.model.booster)
    theirs = explainer.shap_values(X)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert float(np.ravel(explainer.expected_value)[0]) == pytest.approx(expected[0], abs=1e-6)


def test_missing_values_read_as_words_not_nan(policy) -> None:
    spec = feature_spec(policy)
    assert spec["days_since_last_warning"].reason_text(float("nan")) == "Never warned by the marketplace"
    assert spec["on_time_delivery_rate_30d"].reason_text(None) == "On-time deliveries in the last 30 days: no data"
    assert spec["on_time_delivery_rate_30d"].reason_text(0.8523) == \
        "On-time deliveries in the last 30 days: 85.2% (standard: at least 90%)"


def test_the_model_matrix_is_what_lightgbm_makes_of_the_frame(trained: TrainResult, latest: pd.DataFrame, policy) -> None:
    """Scorers skip pandas per call by building the matrix themselves; the trees must see the same bits."""
    spec = feature_spec(policy)
    model = trained.model
    frame = latest.copy()
    frame.loc[frame.index[:3], "category"] = ["not-a-category", None, frame["category"].iloc[2]]
    via_pandas = model.booster.predict(model_frame(frame, spec), pred_leaf=True)
    via_matrix = model.booster.predict(model.matrix(frame), pred_leaf=True)
    assert np.array_equal(via_pandas, via_matrix)  # every row reaches the same leaf of every tree
    records = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame[spec.names].head(20).to_dict("records")]
    assert np.array_equal(model.matrix_from_records(records), model.matrix(frame.head(20)), equal_nan=True)


def test_a_standard_reason_says_how_much_it_moves_the_score(trained: TrainResult, latest: pd.DataFrame,
                                                            policy) -> None:
    from models.explain import feature_groups, group_contributions, standard_reasons

    groups = feature_groups(feature_spec(policy), list(policy.metrics))
    ex = explain(trained.model, trained.model.matrix(latest))
    by_group = group_contributions(ex, groups)
    up = standard_reasons(ex, by_group, groups, top=8)
    p, c = ex.score[up.row], up.contribution  # without a raising standard the score would be lower by this much
    np.testing.assert_allclose(up.probability_change, p - 1 / (1 + np.exp(-(np.log(p / (1 - p)) - c))), atol=1e-12)
    low = standard_reasons(ex, by_group, groups, top=3, direction="lowers")
    assert (low.contribution < 0).all() and (low.probability_change < 0).all() and low.rank.max() <= 3
    none = standard_reasons(ex, by_group[:0], groups, top=3)
    assert len(none) == 0 and len(explain(trained.model, trained.model.matrix(latest.iloc[:0])).score) == 0


def test_groups_partition_the_features_and_add_up_to_the_log_odds(trained: TrainResult, latest: pd.DataFrame,
                                                                   policy) -> None:
    """Per-standard behaviour + history + exposure + context + base = the score's log-odds (1e-9)."""
    from models.explain import feature_groups, group_contributions, standard_reasons

    spec = feature_spec(policy)
    groups = feature_groups(spec, list(policy.metrics))
    assert groups.names[-3:] == ("history", "exposure", "context") and groups.standards == len(policy.metrics)
    assert np.array_equal(groups.matrix.sum(axis=1), np.ones(len(spec.features)))
    ex = explain(trained.model, trained.model.matrix(latest))
    by_group = group_contributions(ex, groups)
    np.testing.assert_allclose(ex.base + by_group.sum(axis=1), ex.logit, rtol=0, atol=1e-9)
    exposure = [i for i, f in enumerate(spec.features) if f.role == "exposure"]
    np.testing.assert_allclose(by_group[:, groups.names.index("exposure")],
                               ex.contributions[:, exposure].sum(axis=1), rtol=0, atol=1e-12)
    up = standard_reasons(ex, by_group, groups, top=3)
    assert set(up.standard) <= set(policy.metrics)  # a reason is a standard, never volume or context
    assert (up.contribution > 0).all() and (np.diff(up.rank)[np.diff(up.row) == 0] == 1).all()
    for r, s, c, k in zip(up.row[:500], up.standard[:500], up.contribution[:500], up.rank[:500]):
        assert c == by_group[r, groups.names.index(s)]
        if k == 1:  # the strongest standard comes first
            assert c == by_group[r, :groups.standards].max()


def test_context_shows_each_groups_strongest_values_in_words(trained: TrainResult, latest: pd.DataFrame,
                                                             policy) -> None:
    """Beside the reasons, per row and per group (history, exposure, context): the group's two features
    that move the score most either way, each in its spec sentence with the seller's own value."""
    from models.explain import OTHER_GROUPS, context_texts, feature_groups, frame_values

    spec = feature_spec(policy)
    groups = feature_groups(spec, list(policy.metrics))
    frame = latest.head(50).reset_index(drop=True)
    ex = explain(trained.model, trained.model.matrix(frame))
    texts = context_texts(ex, groups, spec, frame_values(frame, spec))
    assert texts.shape == (50, len(OTHER_GROUPS))
    for i in (0, 17, 49):
        for g, name in enumerate(OTHER_GROUPS):
            members = np.flatnonzero(groups.of_feature == groups.names.index(name))
            top = members[np.argsort(-np.abs(ex.contributions[i, members]), kind="stable")[:2]]
            want = "; ".join(spec.features[j].reason_text(frame[spec.names[j]].iloc[i]) for j in top)
            assert texts[i, g] == want
