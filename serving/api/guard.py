"""The service's front door, as plain ASGI middleware: it refuses what must never reach the model
(a missing API key, a pickle or any non-JSON body, a body over the size limit) with a 4xx that says
what is wrong, rewrites BentoML's validation errors so the message names each field, and writes one structured log line per request (request id, route, status, model
version, sellers, how many requests shared the scoring call, latency; never feature values)."""

from __future__ import annotations

import hmac
import json
import random
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("seller_risk.requests")

MODEL_VERSION_HEADER = "x-model-version"
SELLERS_HEADER = "x-sellers-scored"
SCORED_WITH_HEADER = "x-scored-with"  # how many requests shared the scoring call (serving/coalesce.py)
REQUEST_ID_HEADER = "x-request-id"
_LOG_ONLY = {SELLERS_HEADER.encode(): "sellers", SCORED_WITH_HEADER.encode(): "scored_with"}


class Guard:
    """Checks every request to `routes` before BentoML reads it, and logs every request to them.

    `recycle_every`: each answer asks the client to reconnect (`Connection: close`) with chance
    1/recycle_every. The workers share one listening socket, and whichever wakes first accepts a
    burst of new connections, so a client pool opened at once can land mostly on one worker while
    the other idles (seen: all 32 of a load tool's connections on one worker, half the throughput).
    A reconnection goes to a worker that is waiting, usually the less busy one, so the connections
    even out within a second or two; the cost is one TCP handshake per ~recycle_every requests."""

    def __init__(self, app: ASGIApp, routes: frozenset[str], max_body_bytes: int, api_key: str | None,
                 recycle_every: int = 0) -> None:
        self.app, self.routes, self.max_body, self.api_key = app, routes, max_body_bytes, api_key
        self.recycle = 1.0 / recycle_every if recycle_every > 0 else 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.routes:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        seen: dict[str, Any] = {"status": 500, "model_version": None, "sellers": 0, "scored_with": 0}
        held: list[Message] = []

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                out = []
                for k, v in message.get("headers", []):
                    if k.lower() in _LOG_ONLY:  # for the log, not for the client
                        seen[_LOG_ONLY[k.lower()]] = int(v)
                        continue
                    if k.lower() == MODEL_VERSION_HEADER.encode():
                        seen["model_version"] = v.decode()
                    out.append((k, v))
                out.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                if self.recycle and random.random() < self.recycle:
                    out.append((b"connection", b"close"))
                message["headers"] = out
                if message["status"] == 400:  # BentoML's validation error: hold it to name the fields
                    held.append(message)
                    return
            elif held and message["type"] == "http.response.body":
                held.append(message)
                if message.get("more_body", False):
                    return
                start, *parts = held
                held.clear()
                body = b"".join(p.get("body", b"") for p in parts)
                body = _naming_fields(body) or body
                start["headers"] = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                start["headers"].append((b"content-length", str(len(body)).encode()))
                await send(start)
                message = {"type": "http.response.body", "body": body, "more_body": False}
            await send(message)

        try:
            refusal = self._refusal(scope, headers)
            body = None if refusal else await self._body(receive)
            if body is None:
                await _reply(send_logged, *(refusal or (413, f"request body over the limit of {self.max_body:,} "
                                                              "bytes; send fewer sellers per request")))
                return
            await self.app(scope, _replay(body, receive), send_logged)
        finally:
            log.info(json.dumps({
                "event": "request", "request_id": request_id, "method": scope["method"], "route": scope["path"],
                "status": seen["status"], "model_version": seen["model_version"], "sellers": seen["sellers"],
                "scored_with": seen["scored_with"], "latency_ms": round(1000 * (time.perf_counter() - started), 3)}))

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        if self.api_key is not None:
            given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not given or not hmac.compare_digest(given.encode(), self.api_key.encode()):
                return 401, "missing or wrong API key: send it in the X-API-Key header"
        if scope["method"] != "POST":
            return 405, f"{scope['path']} takes POST with a JSON body"
        media = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media != "application/json":
            return 415, f"Content-Type {media!r} is not accepted: send application/json"
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return 413, f"request body of {length} bytes is over the limit of {self.max_body:,} bytes; " \
                        "send fewer sellers per request"
        return None

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole body, or None once it grows past the limit (chunked uploads have no length)."""
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def _naming_fields(body: bytes, shown: int = 5) -> bytes | None:
    """BentoML's 400 body (`{"error": "N validation error for Input", "detail": [{loc, msg}, ...]}`)
    with an error that names each field: "sellers[0].features.orders_7d: Input should be ..."."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if not isinstance(detail, list) or not detail or not all(isinstance(d, dict) for d in detail):
        return None
    problems = [f"{_field(d.get('loc') or [])}: {d.get('msg', 'invalid')}" for d in detail]
    more = f" (and {len(problems) - shown} more)" if len(problems) > shown else ""
    payload["error"] = "; ".join(problems[:shown]) + more
    return json.dumps(payload).encode()


def _field(loc: list) -> str:
    """A pydantic error location as a caller writes the field: sellers[0].features.orders_7d."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then waits for the client as usual."""
    sent = False

    async def inner() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return inner


async def _reply(send: Send, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
