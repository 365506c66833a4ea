"""The any-standard model's explanation on a real trained model: contributions add up to the score,
the groups partition the features, and the context is the spec's template filled with the seller's own
value. The reasons themselves: tests/models/test_reasons.py."""

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


def test_groups_partition_the_features_and_add_up_to_the_log_odds(trained: TrainResult, latest: pd.DataFrame,
                                                                   policy) -> None:
    """Per-standard behaviour + history + exposure + context + base = the score's log-odds (1e-9)."""
    from models.explain import feature_groups, group_contributions

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
