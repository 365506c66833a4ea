"""Stopping the job cleanly: SIGINT and SIGTERM end the run as interrupted, and the previous week's
partition stays as it was."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_signals() -> Iterator[Callable[[], None]]:
    """SIGINT and SIGTERM stop the run, even when Python swallows the KeyboardInterrupt (a signal that
    lands while a finalizer runs is only printed as "Exception ignored"): the handler raises it and
    remembers it, and the `check` this yields raises it again between chunks, so an interrupted run
    always ends as interrupted and leaves the previous partition. Outside the main thread: no handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    def check() -> None:
        if received:
            raise KeyboardInterrupt(f"stopped by signal {received[0]}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield check
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
