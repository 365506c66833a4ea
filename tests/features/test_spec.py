"""The feature spec's hash says what a model was trained on: every policy term that changes a
feature or a label changes it, and nothing else does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from features.formatting import percent
from features.policy import POLICY_DIR, load_policy
from features.settings import DEFAULT_POLICY
from features.spec import feature_spec


def _edited(tmp_path: Path, edit) -> str:
    raw = yaml.safe_load((POLICY_DIR / f"{DEFAULT_POLICY}.yaml").read_text())
    edit(raw)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return feature_spec(load_policy(path)).hash


@pytest.mark.parametrize("edit", [
    lambda p: p["metrics"]["cancellation_rate"].__setitem__("min_count", 51),
    lambda p: p["metrics"]["on_time_delivery_rate"].__setitem__("min_count", 10),
    lambda p: p["metrics"]["cancellation_rate"].__setitem__("threshold", 0.025),
    lambda p: p["metrics"]["return_rate"].__setitem__("window_days", 90),
    lambda p: p["metrics"]["negative_feedback_rate"].__setitem__("channels", ["seller"]),
    lambda p: p.__setitem__("horizon_days", 21),
    lambda p: p.__setitem__("evaluation_every_days", 14),
], ids=["min_count", "min_count_other_metric", "threshold", "window", "channels", "horizon", "cadence"])
def test_a_policy_term_that_changes_labels_changes_the_hash(tmp_path: Path, edit) -> None:
    original = feature_spec(load_policy(DEFAULT_POLICY)).hash
    assert _edited(tmp_path, lambda p: None) == original  # the same content read from another file
    assert _edited(tmp_path, edit) != original


@pytest.mark.parametrize("edit", [
    lambda p: p["risk_bands"][0].__setitem__("meaning", "Nothing to do."),
    lambda p: p.__setitem__("review_capacity", {"sellers_per_week": 40}),
    lambda p: p["metrics"]["cancellation_rate"].__setitem__("description", "Cancelled by the seller"),
], ids=["band_wording", "capacity", "description"])
def test_wording_bands_and_capacity_leave_the_hash(tmp_path: Path, edit) -> None:
    assert _edited(tmp_path, edit) == feature_spec(load_policy(DEFAULT_POLICY)).hash


@pytest.mark.parametrize("rate, text", [(0.02, "2%"), (0.9, "90%"), (0.07, "7%"), (0.995, "99.5%"),
                                        (0.025, "2.5%"), (0.06, "6%"), (1.0, "100%")])
def test_percent_writes_whole_percents_whole(rate: float, text: str) -> None:
    assert percent(rate) == text
