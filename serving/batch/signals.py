"""Stopping the job cleanly: SIGINT and SIGTERM end the run as interrupted (`Stopped`, naming the
signal), the previous week's partition stays as it was, and a second signal while the run cleans up
is only noted, so its staging folder is always removed."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Stopped(KeyboardInterrupt):
    """The run was stopped by a signal (`signum`); exit status 128 + signum, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def stop_signal(interrupt: KeyboardInterrupt) -> int:
    """The signal an interrupt stands for: its own, or SIGINT for a plain Ctrl-C."""
    return interrupt.signum if isinstance(interrupt, Stopped) else int(signal.SIGINT)


@contextmanager
def stop_signals() -> Iterator[Callable[[], None]]:
    """SIGINT and SIGTERM stop the run, even when Python swallows the KeyboardInterrupt (a signal that
    lands while a finalizer runs is only printed as "Exception ignored"): the handler raises `Stopped`
    and remembers it, and the `check` this yields raises it again between chunks, so an interrupted run
    always ends as interrupted and leaves the previous partition. Later signals are noted, not raised:
    the run is already stopping, and raising again would cut its clean-up short (a staging folder left
    behind). Nested, the inner one answers. Outside the main thread: no handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Stopped(signum)

    def check() -> None:
        if received:
            raise Stopped(received[0])

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield check
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
