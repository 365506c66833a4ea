"""What the README and the OpenAPI document promise an HTTP caller, tried the way a sceptical
operator tries it on a real service: unknown fields, text and booleans for numbers, keys given
twice and absurd counts are refused naming the field; /docs is the API page; every method a route
does not take gets 405 with Allow; a body shorter than its Content-Length is a prompt 400, logged as
such; a client that sends its request a byte at a time is cut off."""

from __future__ import annotations

import json
import socket
import threading
import time

import pandas as pd
import pytest
import requests

from features.pipeline.spec import Feature
from serving.api.connections import REQUEST_S
from serving.api.guard import BODY_GAP_S
from serving.api.routes import DOCS, DOCS_JSON, LIVEZ, METRICS, READYZ, SCORE, SCORE_SELLER
from serving.api.schema import count_limit
from serving.scoring import Scorer
from tests.serving.test_service import API_KEY, Server, _features, _logged, latest, scorer  # noqa: F401 (fixtures)

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def seller(latest: pd.DataFrame) -> str:  # noqa: F811
    return str(latest["seller_id"].iloc[0])


def _error(r: requests.Response) -> str:
    return r.json()["error"]


# ---------------------------------------------------------------------------- the request schema


@pytest.mark.parametrize("body, field", [
    ({"x": 1}, "x"),
    ({"reason": 3}, "reason"),  # misspelt `reasons`: refused, not silently ignored
    ({"reasons": "3"}, "reasons"),
    ({"reasons": True}, "reasons"),
    ({"lowering_reasons": 1.5}, "lowering_reasons"),
])
def test_score_seller_refuses_unknown_fields_and_loose_types(contract_server: Server, seller: str,
                                                             body: dict, field: str) -> None:
    r = contract_server.post(SCORE_SELLER.path, {"seller_id": seller, **body})
    assert r.status_code == 400, r.text
    assert _error(r).startswith(f"{field}: ")
    assert isinstance(r.json()["detail"], list) and r.json()["detail"][0]["loc"] == [field]


def test_a_whole_number_written_as_a_float_is_still_an_integer(contract_server: Server, seller: str) -> None:
    r = contract_server.post(SCORE_SELLER.path, {"seller_id": seller, "reasons": 3.0})  # JSON Schema: 3.0 is an integer
    whole = contract_server.post(SCORE_SELLER.path, {"seller_id": seller, "reasons": 3})
    assert r.status_code == 200 and r.json()["reasons"] == whole.json()["reasons"] and len(r.json()["reasons"]) <= 3
    one = contract_server.post(SCORE_SELLER.path, {"seller_id": seller, "reasons": 1.0})
    assert one.status_code == 200 and one.json()["reasons"] == whole.json()["reasons"][:1]


def test_a_key_given_twice_is_refused_naming_it(contract_server: Server, seller: str, latest: pd.DataFrame,  # noqa: F811
                                                scorer: Scorer) -> None:  # noqa: F811
    r = contract_server.post(SCORE_SELLER.path, data=f'{{"seller_id": "{seller}", "seller_id": "S9"}}'.encode())
    assert r.status_code == 400 and _error(r).startswith("seller_id: ") and "more than once" in _error(r)
    features = json.dumps(_features(latest, scorer, 0))
    doubled = features[:-1] + ', "orders_7d": 0}'  # one feature twice, deep in the body
    r = contract_server.post(SCORE.path, data=f'{{"sellers": [{{"seller_id": "S1", "features": {doubled}}}]}}'.encode())
    assert r.status_code == 400 and _error(r).startswith("orders_7d: ")


def test_counts_have_an_upper_bound(contract_server: Server, latest: pd.DataFrame, scorer: Scorer) -> None:  # noqa: F811
    features = _features(latest, scorer, 0)
    r = contract_server.post(SCORE.path, {"sellers": [{"seller_id": "S1", "features": {**features, "cancellation_rate_volume": 1e308}}]})
    assert r.status_code == 400
    assert _error(r).startswith("sellers[0].features.cancellation_rate_volume: Input should be less than or equal to")
    limit = count_limit(scorer.spec["cancellation_rate_volume"])
    r = contract_server.post(SCORE.path, {"sellers": [{"seller_id": "S1", "features": {**features, "cancellation_rate_volume": limit}}]})
    assert r.status_code == 200, r.text


def test_count_bounds_sit_far_above_every_seller_of_the_snapshot(latest: pd.DataFrame, scorer: Scorer) -> None:  # noqa: F811
    counts: list[Feature] = [f for f in scorer.spec.features if f.dtype == "int"]
    assert counts
    for f in counts:
        most = latest[f.name].max()
        assert most <= count_limit(f), f.name
        if not (f.name.startswith("days_") or "warning" in f.name):  # orders and messages: a wide margin
            assert most * 100 < count_limit(f), f.name


# ---------------------------------------------------------------------------- the document and the routes


def test_docs_is_the_api_page_over_docs_json(contract_server: Server) -> None:
    page = requests.get(contract_server.url + DOCS.path, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert DOCS_JSON.path in page.text and "swagger-ui" in page.text
    assert "googletagmanager" not in page.text  # nothing loaded from outside the service
    for asset in ("/static_content/swagger-ui-bundle.js", "/static_content/swagger-ui.css"):
        assert requests.get(contract_server.url + asset, timeout=10).status_code == 200
    document = requests.get(contract_server.url + DOCS_JSON.path, timeout=10).json()
    assert {DOCS.path, DOCS_JSON.path, SCORE.path, SCORE_SELLER.path, READYZ.path, LIVEZ.path} == set(document["paths"])


def test_every_status_a_scoring_route_answers_is_documented_with_its_body(contract_server: Server,
                                                                          scorer: Scorer) -> None:  # noqa: F811
    document = requests.get(contract_server.url + DOCS_JSON.path, timeout=10).json()
    for route, statuses in {SCORE.path: {"200", "400", "401", "408", "413", "415", "422", "500", "503", "504"},
                            SCORE_SELLER.path: {"200", "400", "401", "404", "408", "413", "415", "500", "503", "504"}}.items():
        responses = document["paths"][route]["post"]["responses"]
        assert set(responses) == statuses, route
    error = document["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["type"] == "string"
    assert any(branch.get("type") == "array" for branch in error["properties"]["detail"]["anyOf"])
    features = document["components"]["schemas"]["SellerFeatures"]["properties"]
    for name, codes in scorer.model.category_codes.items():  # categories: the model's levels
        assert sorted(features[name]["enum"]) == sorted(codes), name
    assert features["orders_7d"]["maximum"] == count_limit(scorer.spec["orders_7d"])
    assert document["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}


def test_metrics_is_neither_documented_nor_served_with_telemetry_off(contract_server: Server) -> None:
    document = requests.get(contract_server.url + DOCS_JSON.path, timeout=10).json()
    assert METRICS.path not in document["paths"]
    assert requests.get(contract_server.url + METRICS.path, timeout=10).status_code == 404


@pytest.mark.parametrize("method, route, allow", [
    ("GET", SCORE.path, "POST"), ("PUT", SCORE_SELLER.path, "POST"), ("TRACE", SCORE.path, "POST"),
    ("POST", DOCS_JSON.path, "GET, HEAD"), ("DELETE", DOCS.path, "GET, HEAD"), ("POST", READYZ.path, "GET, HEAD"),
])
def test_a_method_a_route_does_not_take_is_405_with_allow(contract_server: Server, method: str, route: str,
                                                          allow: str) -> None:
    r = requests.request(method, contract_server.url + route, headers={"X-API-Key": API_KEY}, timeout=10)
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["allow"].split(",")} == set(allow.split(", "))


# ---------------------------------------------------------------------------- clients that do not send what they say


def _raw(url: str, data: bytes, wait: float = 10) -> tuple[float, bytes]:
    """Send bytes on a fresh connection; (seconds until the server closed it, what it answered)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.settimeout(wait)
        started = time.monotonic()
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return time.monotonic() - started, out


def test_a_content_length_larger_than_the_body_is_a_prompt_400_logged_as_400(contract_server: Server) -> None:
    body = b'{"seller_id": "S1"}'
    took, answer = _raw(contract_server.url, f"POST {SCORE_SELLER.path} HTTP/1.1\r\n".encode()
                        + b"Host: x\r\nContent-Type: application/json\r\n"
                        b"X-API-Key: " + API_KEY.encode() + b"\r\nX-Request-ID: short-body\r\n"
                        b"Content-Length: 100\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert took < 1.0 and took >= BODY_GAP_S  # answered, and the connection closed, within a second
    assert b"the body stopped after 19 of the 100 bytes" in answer
    [logged] = _logged(contract_server, lambda e: e.get("request_id") == "short-body", 1)
    assert logged["status"] == 400


def test_a_stalled_chunked_body_is_408(contract_server: Server) -> None:
    took, answer = _raw(contract_server.url, b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"X-API-Key: " + API_KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"sel\r\n")
    assert answer.startswith(b"HTTP/1.1 408 ") and took < 1.0


def test_connections_that_trickle_their_request_or_send_nothing_are_closed(contract_server: Server) -> None:
    """20 clients send a request's headers a byte every 0.5 s (and 2 open a connection and say
    nothing): each connection is closed within REQUEST_S of opening, while the service keeps
    answering others."""
    host, port = contract_server.url.removeprefix("http://").split(":")
    request = b"GET /readyz HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"s" * 200 + b"\r\n\r\n"
    closed_after: list[float] = []

    def trickle(silent: bool) -> None:
        with socket.create_connection((host, int(port))) as s:
            s.settimeout(0.5)
            started = time.monotonic()
            for i in range(len(request)):
                if time.monotonic() - started > REQUEST_S + 5:
                    return  # still open: not recorded, so the test fails
                try:
                    if not silent:
                        s.send(request[i:i + 1])
                    if s.recv(4096) == b"":
                        break
                    while s.recv(4096):  # the 408, then the close
                        pass
                    break
                except TimeoutError:
                    continue
                except OSError:  # reset while writing: closed
                    break
            closed_after.append(time.monotonic() - started)

    threads = [threading.Thread(target=trickle, args=(i >= 20,)) for i in range(22)]
    for t in threads:
        t.start()
    time.sleep(1)
    assert requests.get(contract_server.url + READYZ.path, timeout=5).status_code == 200  # others still served
    for t in threads:
        t.join(timeout=REQUEST_S + 10)
    assert len(closed_after) == 22, closed_after
    assert max(closed_after) < REQUEST_S + 1.5 and min(closed_after) >= REQUEST_S - 0.5, closed_after
