"""The request schema and the contract document, without a server: what the validator refuses is
what the document says it refuses."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from features.policy.definition import Policy
from features.pipeline.spec import feature_spec
from serving.api.contract import openapi_document
from serving.api.guard import _duplicate_key
from serving.api.routes import METRICS, SCORE
from serving.api.schema import MAX_ORDERS_PER_DAY, RequestModels, count_limit, request_models


@pytest.fixture(scope="module")
def models(policy: Policy) -> RequestModels:
    return request_models(feature_spec(policy))


def _refused(model: type, body: dict) -> list[tuple]:
    with pytest.raises(ValidationError) as refused:
        model.model_validate_json(json.dumps(body))
    return [tuple(e["loc"]) for e in refused.value.errors()]


@pytest.mark.parametrize("body, loc", [
    ({"seller_id": "S1", "x": 1}, ("x",)),
    ({"seller_id": "S1", "reason": 3}, ("reason",)),
    ({"seller_id": "S1", "reasons": "3"}, ("reasons",)),
    ({"seller_id": "S1", "reasons": True}, ("reasons",)),
    ({"seller_id": "S1", "reasons": 1000}, ("reasons",)),  # more than there are features
    ({"seller_id": 1}, ("seller_id",)),
    ({}, ("seller_id",)),
])
def test_score_seller_body_is_strict(models: RequestModels, body: dict, loc: tuple) -> None:
    assert _refused(models.score_seller, body) == [loc]


def test_features_are_strict_and_counts_bounded(models: RequestModels, policy: Policy) -> None:
    spec = feature_spec(policy)
    assert count_limit(spec["orders_7d"]) == 7 * MAX_ORDERS_PER_DAY
    assert count_limit(spec["warnings_90d"]) == 90
    for bad in (True, "3", 1e308, -1, 2.5):
        assert ("orders_7d",) in _refused(models.features, {"orders_7d": bad})
    assert ("cancellation_rate_30d",) in _refused(models.features, {"cancellation_rate_30d": "0.1"})
    assert ("category",) in _refused(models.features, {"category": 3})
    row = _refused(models.features, {"orders_7d": 700_000.0})  # at the bound, and written as a float: fine
    assert ("orders_7d",) not in row


def test_a_key_given_twice_is_found_at_any_depth() -> None:
    assert _duplicate_key(b'{"a": 1, "a": 2}') == "a"
    assert _duplicate_key(b'{"sellers": [{"features": {"x": 1, "y": 2, "x": 3}}]}') == "x"
    assert _duplicate_key(b'{"a": {"a": 1}}') is None  # the same name at two depths is fine
    assert _duplicate_key(b'{"a": ') is None and _duplicate_key(b"") is None  # not JSON: the validator says


def test_the_document_describes_routes_errors_and_levels(models: RequestModels) -> None:
    levels = {"category": ["home", "toys"], "region": ["south"]}
    doc = openapi_document(models, levels, title="t", description="d", version="v",
                           api_key=False, telemetry=False,
                           limits={"gap": 0.5, "total": 3, "max_body": 1 << 20, "timeout": 5}, example_seller="S1")
    assert doc["openapi"] == "3.1.0" and METRICS.path not in doc["paths"]
    responses = doc["paths"][SCORE.path]["post"]["responses"]
    assert set(responses) == {"200"} | {str(s) for s in SCORE.statuses if s not in (200, 401)}  # no key: no 401
    assert doc["components"]["schemas"]["SellerFeatures"]["properties"]["category"]["enum"] == ["home", "toys"]
    assert doc["components"]["schemas"]["ScoreRequest"]["additionalProperties"] is False
    as_of = doc["components"]["schemas"]["ScoreRecord"]["properties"]["as_of"]
    assert {"type": "null"} in as_of["anyOf"]  # the record's as_of may be null, and the document says so


def test_rates_are_bounded_by_what_they_measure(models: RequestModels, policy: Policy) -> None:
    """A rate (shown as a percentage) lies in 0 to 1 and a gap or trend (a signed one) in -1 to 1: -1
    or 1e308 is refused naming the field, the bounds themselves are fine; other numbers are not shares."""
    from serving.api.schema import share_bounds

    spec = feature_spec(policy)
    rate, gap, trend = "cancellation_rate_30d", "cancellation_rate_gap", "cancellation_rate_trend"
    assert share_bounds(spec[rate]) == (0.0, 1.0) and share_bounds(spec["late_handover_rate_30d"]) == (0.0, 1.0)
    assert share_bounds(spec[gap]) == (-1.0, 1.0) and share_bounds(spec[trend]) == (-1.0, 1.0)
    assert share_bounds(spec["gmv_30d"]) is None and share_bounds(spec["orders_7d"]) is None
    for name, bad in [(rate, -1), (rate, 1e308), (rate, 1.5), (gap, -1.01), (trend, 1e308),
                      ("marketplace_fulfilled_share_30d", -0.2)]:
        assert (name,) in _refused(models.features, {name: bad}), (name, bad)
    fine = _refused(models.features, {rate: 1.0, gap: -1.0, trend: 0.0, "gmv_30d": 1e9})
    assert not {(rate,), (gap,), (trend,), ("gmv_30d",)} & set(fine)
    document = json.dumps(models.features.model_json_schema())
    assert '"maximum": 1.0' in document and '"minimum": -1.0' in document
