"""The OpenAPI document is the service's contract: schemathesis generates requests from
`/docs.json` (its examples, boundary and negative cases, then random ones) for every operation, sends
them to a real service and checks every answer against the document with all its checks (status
documented, body and headers as documented, valid data accepted, invalid data refused, 405 with
Allow for other methods, scoring refused without the API key)."""

from __future__ import annotations

import collections

import pytest
import requests

from serving.api.routes import DOCS_JSON, SCORE, SCORE_SELLER

pytestmark = pytest.mark.server

MAX_EXAMPLES, SEED = 15, 20260115


def test_the_service_keeps_every_promise_of_its_openapi_document(contract_server) -> None:
    import schemathesis
    from schemathesis.engine import events

    from tests.serving.test_service import API_KEY

    document = requests.get(contract_server.url + DOCS_JSON.path, timeout=10).json()
    config = schemathesis.Config.from_dict({
        "seed": SEED, "workers": 1, "base-url": contract_server.url, "headers": {"X-API-Key": API_KEY},
        "generation": {"max-examples": MAX_EXAMPLES}})
    schema = schemathesis.openapi.from_dict(document, config=config)
    cases: collections.Counter[str] = collections.Counter()
    failures, errors = [], []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            label = event.recorder.label
            cases[label] += len(event.recorder.cases)
            failures += [f"{label}: {check.name}: {check.failure_info.failure.title if check.failure_info else ''}\n"
                         f"{check.failure_info.code_sample if check.failure_info else ''}"
                         for checks in event.recorder.checks.values() for check in checks
                         if check.status == "failure"]
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            errors.append(str(getattr(event, "info", None) or getattr(event, "exception", event)))
        elif isinstance(event, events.EngineFinished):
            assert event.stop_reason == "completed", event.stop_reason
    operations = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    print(f"schemathesis: {len(operations)} operations, {sum(cases.values())} requests "
          f"({dict(cases)}), {len(failures)} failures")
    assert not errors, errors[:3]
    assert not failures, "\n".join(failures[:10])
    assert set(cases) == operations  # every operation was exercised
    assert cases[f"POST {SCORE.path}"] >= MAX_EXAMPLES and cases[f"POST {SCORE_SELLER.path}"] >= MAX_EXAMPLES
