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
