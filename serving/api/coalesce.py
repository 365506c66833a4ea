"""Score the requests that arrive together in one call.

Scoring one seller costs about 0.5 ms, most of it LightGBM's per-call set-up; scoring 16 in one call
costs about 0.27 ms each (`benchmarks/bench_service.py` prints both). A worker's event loop runs one
request at a time, so while it scores, the next requests queue up on their sockets. The `Coalescer`
gathers the requests that are ready in the same turn of the loop and scores them in one call, with
no waiting window: a request that arrives alone is scored at once, as before.

Each seller's score and reasons come out bit for bit the same whatever else is in the call (TreeSHAP
is computed row by row), so coalescing changes the cost, never the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

MAX_TURNS = 16  # most turns of the event loop a call waits for more requests to join

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Waiting(Generic[Item, Result]):
    items: Sequence[Item]
    done: asyncio.Future[tuple[list[Result], int]]


@dataclass
class Coalescer(Generic[Item, Result]):
    """`await submit(key, items)` returns `score(key, items)` and how many requests shared that call:
    the items of requests submitted in the same turn of the event loop with the same key (for
    example, the number of reasons asked for) go to `score` in one call. `score` must return one
    result per item, in order."""

    score: Callable[[Hashable, list[Item]], Sequence[Result]]
    max_items: int = 256
    _waiting: dict[Hashable, list[_Waiting[Item, Result]]] = field(default_factory=dict)
    _flush: asyncio.Task[None] | None = None

    async def submit(self, key: Hashable, items: Sequence[Item]) -> tuple[list[Result], int]:
        loop = asyncio.get_running_loop()
        waiting: _Waiting[Item, Result] = _Waiting(items, loop.create_future())
        self._waiting.setdefault(key, []).append(waiting)
        if self._flush is None:
            self._flush = loop.create_task(self._flush_when_settled())
        return await waiting.done

    async def _flush_when_settled(self) -> None:
        """Let the requests that are already readable reach `submit` (a few loop turns, no timer),
        then score everything waiting, one call per key and at most `max_items` items per call.
        Under a steady stream (new requests on every turn) it stops waiting after MAX_TURNS turns
        or once a call is full, so no request waits on later ones for long."""
        try:
            seen, turns = -1, 0
            while (seen != (now := sum(len(w) for w in self._waiting.values()))
                   and now < self.max_items and turns < MAX_TURNS):
                seen, turns = now, turns + 1
                await asyncio.sleep(0)
        finally:
            self._flush = None
        waiting, self._waiting = self._waiting, {}
        for key, group in waiting.items():
            for part in _parts(group, self.max_items):
                self._score(key, part)

    def _score(self, key: Hashable, group: list[_Waiting[Item, Result]]) -> None:
        items = [item for w in group for item in w.items]
        try:
            results = list(self.score(key, items))
            if len(results) != len(items):
                raise RuntimeError(f"scored {len(items)} items into {len(results)} results")
        except Exception as exc:  # every request of the call sees the error (the service answers 500)
            for w in group:
                if not w.done.done():
                    w.done.set_exception(exc)
            return
        start = 0
        for w in group:
            if not w.done.done():  # a cancelled request (client gone) just drops its results
                w.done.set_result((results[start:start + len(w.items)], len(group)))
            start += len(w.items)


def _parts(group: list[_Waiting[Item, Result]], max_items: int) -> list[list[_Waiting[Item, Result]]]:
    """Consecutive runs of requests holding at most `max_items` items (a bigger request runs alone)."""
    parts: list[list[_Waiting[Item, Result]]] = []
    size = 0
    for w in group:
        if parts and size + len(w.items) <= max_items:
            parts[-1].append(w)
            size += len(w.items)
        else:
            parts.append([w])
            size = len(w.items)
    return parts
