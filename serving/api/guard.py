"""The service's front door, as plain ASGI middleware: it refuses what must never reach the model
(a missing API key, a wrong method, a pickle or any non-JSON body, a body over the size limit, a
body that stalls or is shorter than its Content-Length, a JSON object that gives a key twice) with a
4xx that says what is wrong, rewrites BentoML's validation errors so the message names each field,
and writes one structured log line per request (request id, route, status, model version, sellers,
how many requests shared the scoring call, latency; never feature values)."""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, NamedTuple

from serving.api.routes import Route

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

BODY_GAP_S = 0.5
"""Longest pause inside a request body. A client that declares more bytes than it sends would
otherwise hold the request until the 5 s timeout (a 504, logged as a 500); a body of at most 1 MiB
from another service comes in one burst of TCP segments, far closer together than this."""
BODY_S = 3.0
"""Longest a request body may take in all (at 1 MiB, about 350 KB/s), so a client trickling bytes
just faster than BODY_GAP_S cannot hold a worker's request slot either."""
MAX_URL_BYTES = 4096
"""Longest path and query string accepted, on every route (the console's too): a longer URL is refused
at once with 414 (nothing the service offers needs one)."""
_CLOSE = ((b"connection", b"close"),)  # what is left of a refused body must not be read as the next request


class Refusal(NamedTuple):
    """A request the Guard answers itself: status, message, extra headers."""

    status: int
    error: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Guard:
    """Checks every request to `routes` (the keyed ones of serving/api/routes.py) before BentoML reads
    it, and logs every request to them.

    `recycle_every`: each answer asks the client to reconnect (`Connection: close`) with chance
    1/recycle_every. The workers share one listening socket, and whichever wakes first accepts a
    burst of new connections, so a client pool opened at once can land mostly on one worker while
    the other idles (seen: all 32 of a load tool's connections on one worker, half the throughput).
    A reconnection goes to a worker that is waiting, usually the less busy one, so the connections
    even out within a second or two; the cost is one TCP handshake per ~recycle_every requests."""

    def __init__(self, app: ASGIApp, routes: Iterable[Route], max_body_bytes: int, api_key: str | None,
                 recycle_every: int = 0) -> None:
        self.app, self.max_body, self.api_key = app, max_body_bytes, api_key
        self.routes = {r.path: r for r in routes}
        self.recycle = 1.0 / recycle_every if recycle_every > 0 else 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _url_bytes(scope) > MAX_URL_BYTES:  # any route, the console's too
            await _reply(send, _too_long(scope))
            return
        if scope["type"] != "http" or scope["path"] not in self.routes:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        seen: dict[str, Any] = {"status": None, "model_version": None, "sellers": 0, "scored_with": 0}
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
            body = self._refusal(scope, headers) or await self._body(receive, headers.get("content-length"))
            if isinstance(body, Refusal):
                await _reply(send_logged, body)
                return
            await self.app(scope, _replay(body, receive), send_logged)
        except asyncio.CancelledError:
            if seen["status"] is None:  # BentoML's timeout middleware gave up on the request and answers 504
                seen["status"] = 504
            raise
        finally:
            log.info(json.dumps({
                "event": "request", "request_id": request_id, "method": scope["method"], "route": scope["path"],
                "status": seen["status"] or 500, "model_version": seen["model_version"], "sellers": seen["sellers"],
                "scored_with": seen["scored_with"], "latency_ms": round(1000 * (time.perf_counter() - started), 3)}))

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> Refusal | None:
        if self.api_key is not None:
            given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not given or not hmac.compare_digest(given.encode(), self.api_key.encode()):
                return Refusal(401, "missing or wrong API key: send it in the X-API-Key header")
        method = self.routes[scope["path"]].method
        if scope["method"] != method:
            return Refusal(405, f"{scope['path']} takes {method} with a JSON body", ((b"allow", method.encode()),))
        unaccepted = _unaccepted_media(headers.get("content-type"))
        if unaccepted:
            return Refusal(415, unaccepted)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return Refusal(413, f"request body of {length} bytes is over the limit of {self.max_body:,} bytes; "
                                "send fewer sellers per request", _CLOSE)
        return None

    async def _body(self, receive: Receive, length: str | None) -> bytes | Refusal:
        """The whole body; or a refusal when it grows past the limit (chunked uploads have no length),
        pauses for over BODY_GAP_S (with a Content-Length: it is shorter than announced) or takes
        over BODY_S, or when a JSON object in it gives a key twice (JSON parsers disagree on which
        one wins: the caller must say)."""
        chunks, total = [], 0
        loop = asyncio.get_running_loop()
        end = loop.time() + BODY_S
        try:
            async with asyncio.timeout(min(end, loop.time() + BODY_GAP_S)) as deadline:
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # the client left, or its connection was closed as too slow
                        return Refusal(408, "the connection closed before the body arrived", _CLOSE)
                    chunk = message.get("body", b"")
                    total += len(chunk)
                    if total > self.max_body:
                        return Refusal(413, f"request body over the limit of {self.max_body:,} bytes; "
                                            "send fewer sellers per request", _CLOSE)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
                    deadline.reschedule(min(end, loop.time() + BODY_GAP_S))
        except TimeoutError:
            if length is not None and loop.time() < end:
                return Refusal(400, f"the body stopped after {total:,} of the {int(length):,} bytes its Content-Length "
                                    f"announces (nothing more for {BODY_GAP_S:g} s): send the whole body", _CLOSE)
            return Refusal(408, f"the body did not arrive in time ({total:,} bytes): it may pause for at most "
                                f"{BODY_GAP_S:g} s and take at most {BODY_S:g} s", _CLOSE)
        body = b"".join(chunks)
        key = _duplicate_key(body)
        if key is not None:
            return Refusal(400, f"{key}: the key is given more than once in a JSON object; send each field once")
        return body


def _unaccepted_media(content_type: str | None) -> str | None:
    """Why a body of this Content-Type is refused, or None for JSON in UTF-8 (RFC 8259's only encoding):
    the header must be sent, name application/json and, if it gives a charset, say utf-8."""
    if content_type is None:
        return "no Content-Type: send application/json"
    media, *parameters = (p.strip() for p in content_type.split(";"))
    if media.lower() != "application/json":
        return f"Content-Type {media.lower()!r} is not accepted: send application/json"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            return f"charset {charset!r} is not accepted: send application/json in UTF-8"
    return None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key given twice (json's default keeps the last)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def _duplicate_key(body: bytes) -> str | None:
    """The first key a JSON object in the body gives twice; None when there is none or the body is
    not JSON (the validator then says where it breaks)."""
    try:
        json.loads(body, object_pairs_hook=_unique)
    except _DuplicateKey as twice:
        return twice.key
    except (ValueError, RecursionError):
        return None
    return None


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


def _too_long(scope: Scope) -> Refusal:
    return Refusal(414, f"the URL is {_url_bytes(scope):,} bytes long, over the limit of {MAX_URL_BYTES:,}", _CLOSE)


def _url_bytes(scope: Scope) -> int:
    """Bytes of the request's path (as sent) and query string."""
    path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    return len(path) + len(scope.get("query_string") or b"")


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


async def _reply(send: Send, refusal: Refusal) -> None:
    body = json.dumps({"error": refusal.error}).encode()
    await send({"type": "http.response.start", "status": refusal.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *refusal.headers]})
    await send({"type": "http.response.body", "body": body})
