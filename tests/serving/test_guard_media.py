"""The Guard's Content-Type rule, in process (plain ASGI, no server): a scoring body is JSON in UTF-8,
said so in the header; anything else is a 415 that says what to send, before the body is read."""

from __future__ import annotations

import asyncio
import json

import pytest

from serving.api.guard import Guard
from serving.api.routes import ROUTES, SCORE_SELLER


def _post(content_type: str | None) -> tuple[int, dict | None]:
    reached: list[bool] = []

    async def app(scope, receive, send) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    body = b'{"seller_id": "S1"}'
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode("latin-1")))
    scope = {"type": "http", "method": "POST", "path": SCORE_SELLER.path, "raw_path": SCORE_SELLER.path.encode(),
             "query_string": b"", "headers": headers}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    guard = Guard(app, [r for r in ROUTES if r.body is not None], 1 << 20, api_key=None)
    asyncio.run(guard(scope, receive, send))
    status = sent[0]["status"]
    return status, (json.loads(sent[1]["body"]) if not reached else None)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON;charset=UTF-8", 'application/json; charset="utf8"'])
def test_json_in_utf8_passes(content_type: str) -> None:
    assert _post(content_type) == (200, None)


@pytest.mark.parametrize("content_type, says", [
    (None, "no Content-Type"),
    ("application/json; charset=latin-1", "charset 'latin-1'"),
    ("application/json; charset=utf-16", "charset 'utf-16'"),
    ("text/plain", "'text/plain'"),
    ("application/vnd.bentoml+pickle", "pickle"),
])
def test_anything_else_is_415_saying_what_to_send(content_type: str | None, says: str) -> None:
    status, body = _post(content_type)
    assert status == 415 and says in body["error"] and "application/json" in body["error"]
