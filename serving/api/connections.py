"""HTTP connections with a deadline for the request to arrive.

uvicorn (which BentoML runs each worker on) closes a kept-alive connection idle for 5 s between
requests, but sets no limit while a request is arriving: a client that opens a connection and
sends nothing, or sends its headers a byte a second, holds the connection for as long as it likes
(200 such connections were all still open after 30 s), and enough of them exhaust the workers'
file descriptors. Here a request must arrive whole, headers and body, within REQUEST_S of its
first byte (or of the connection opening); otherwise the connection is closed, with a 408 when part
of a request had come. The Guard refuses a scoring route's stalled body sooner, with a message
(serving/api/guard.py, BODY_GAP_S and BODY_S).

BentoML starts uvicorn itself and exposes no setting for its protocol class, so `install()`
points uvicorn's "auto" HTTP protocol at this one; the service module calls it on import, which
every worker does before it builds its uvicorn server.
"""

from __future__ import annotations

import asyncio
import json

import importlib.util

import uvicorn.config

REQUEST_S = 5.0
"""Longest a request may take to arrive, from its first byte (or the connection opening) to the
end of its body; the same bound as the service's 5 s per request."""


if importlib.util.find_spec("httptools") is not None:  # the `serving` extra installs it; a bare bento may not
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
else:  # pragma: no cover
    HttpToolsProtocol = object  # type: ignore[misc,assignment]


class DeadlineProtocol(HttpToolsProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's httptools protocol, closing a connection whose request does not arrive within REQUEST_S."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._begun = False  # a byte of the current request has come

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        if self._deadline is None:  # a kept-alive connection's next request
            self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        self._begun = False
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(REQUEST_S, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        headers_in = self.cycle is not None and self.cycle.scope is self.scope
        if self._begun and not headers_in:  # part of a request came: say why the connection closes
            body = json.dumps({"error": f"the request did not arrive within {REQUEST_S:g} s"}).encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        self.transport.close()


def install() -> bool:
    """Make uvicorn's default ("auto") HTTP protocol the one with a deadline; False (nothing
    changed) where httptools is missing and uvicorn falls back to h11."""
    if HttpToolsProtocol is object:
        return False
    uvicorn.config.HTTP_PROTOCOLS["auto"] = f"{__name__}:DeadlineProtocol"
    return True
