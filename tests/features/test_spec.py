"""The feature spec's hash says what a model was trained on: every policy term that changes a
feature or a label changes it, and nothing else does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from features.platform.formatting import percent
from features.policy.definition import POLICY_DIR, load_policy
from features.platform.settings import DEFAULT_POLICY
from features.pipeline.spec import FeatureSpec, feature_spec


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


@pytest.mark.parametrize("policy_name", ["walmart-us-2026", "amazon-account-health"])
def test_every_feature_declares_its_role_and_standard(policy_name: str) -> None:
    policy = load_policy(policy_name)
    spec = feature_spec(policy)
    for f in spec.features:
        assert f.role in {"behaviour", "exposure", "context"}, f.name
        assert f.standard is None or f.standard in policy.metrics, f.name
        assert f.role == "behaviour" or f.name.endswith("_volume") or f.group in {"mechanics", "world"} \
            or f.standard is None, f.name
    for m in policy.metrics:
        assert spec[f"{m}_volume"].role == "exposure" and spec[f"{m}_volume"].standard == m
        for suffix in ("7d", "30d", "60d", "90d", "gap", "wilson", "trend"):
            assert (spec[f"{m}_{suffix}"].role, spec[f"{m}_{suffix}"].standard) == ("behaviour", m)
    assert {f.name for f in spec.features if f.role == "context" and f.group != "world"} == {
        "avg_order_value_30d", "marketplace_fulfilled_share_30d", "tenure_days", "category", "region",
        "week_of_year"}
    assert all(spec[n].role == "exposure" for n in ("orders_7d", "orders_30d", "orders_90d", "gmv_30d"))


def test_a_behaviour_drives_the_standard_its_policy_judges_it_by() -> None:
    walmart, amazon = (feature_spec(load_policy(n)) for n in ("walmart-us-2026", "amazon-account-health"))
    assert walmart["late_handover_rate_30d"].standard == "on_time_delivery_rate"
    assert amazon["late_handover_rate_30d"].standard == "late_shipment_rate"
    assert walmart["overdue_contacts"].standard == "seller_response_rate"
    assert amazon["overdue_contacts"].standard is None  # Amazon's Account Health judges no response time


def test_roles_and_standards_leave_the_hash() -> None:
    """A role or a standard changes how a contribution is shown, not a model input: no retraining."""
    spec = feature_spec(load_policy(DEFAULT_POLICY))
    moved = tuple(replace(f, role="context", standard=None) if f.name == "late_handover_rate_30d" else f
                  for f in spec.features)
    assert FeatureSpec(spec.policy_version, moved, spec.policy_terms).hash == spec.hash
