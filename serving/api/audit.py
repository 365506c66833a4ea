"""The API's audit of what it serves: every record the HTTP service answers with is first written to
the decisions database (`served_scores`, through `serving.store.store.Store.log_served`) with the
exact feature values the model scored, so `seller-risk replay RECORD_ID` can recompute it later.

A score that cannot be audited is not served: when the database cannot be written, the request
fails with 503 and one line naming the database (`AuditUnavailable`). A write has `within_s` from its
scoring call, waits for another writer's lock included, so it ends inside the request's time: a
database locked for longer is a 503, never a 504 whose record is written once the lock clears (the
audit would list a score no client received).

The write runs off the event loop, in one thread per worker, one transaction per coalesced call, or for
all the calls that queued while the previous write committed (`ServedAudit.submit` hands back a future
every request of the call awaits before it replies). Each record's feature values are kept once per
distinct set (serving.store.store.Store.log_served), so a seller served all week costs one copy of them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from models.explain import display_value
from serving.scoring import Scored, Scorer, Snapshot


class AuditUnavailable(RuntimeError):
    """The served records could not be written to the database; the message names it, in one line."""


def snapshot_features(snapshot: Snapshot, scorer: Scorer, seller_ids: Sequence[str]) -> list[dict]:
    """The feature values the model scored for sellers of an in-memory snapshot, {feature: value}
    (numbers as the floats the model read, categories as their labels, None when missing), taken
    column-wise from the model inputs."""
    rows = np.fromiter((snapshot.index[s] for s in seller_ids), dtype=np.int64, count=len(seller_ids))
    X = snapshot.X[rows]
    values = X.astype(object)
    values[np.isnan(X)] = None
    names = scorer.spec.names
    for j, name in enumerate(names):
        labels = snapshot.labels.get(name)
        if labels is not None:
            column = labels[rows]
            values[:, j] = [None if display_value(v) is None else str(v) for v in column]
    return [dict(zip(names, row)) for row in values.tolist()]


def sent_features(scorer: Scorer, features: Sequence[Mapping[str, object]]) -> list[dict]:
    """What callers sent, after validation, with every feature of the spec (None: not sent)."""
    names = scorer.spec.names
    return [{n: f.get(n) for n in names} for f in features]


def served_rows(scorer: Scorer, scored: Scored, features: Sequence[dict], served_at: datetime | None = None) -> list[dict]:
    """The rows `Store.log_served` keeps for a scored batch: the record's identity and model, its
    score, and the features it was computed from."""
    served_at = served_at or datetime.now(UTC)
    common = {"model_name": scorer.ref.name, "model_version": scorer.ref.version,
              "feature_spec_hash": scorer.spec.hash, "policy_version": scorer.policy.version, "served_at": served_at}
    return [{"record_id": str(rid), "seller_id": str(sid), "as_of": as_of, "risk_score": float(score),
             "features": f, **common}
            for rid, sid, as_of, score, f in zip(scored.record_id, scored.seller_id, scored.as_of,
                                                 scored.risk_score.tolist(), features, strict=True)]


class ServedAudit:
    """Writes served records to the database at `db_url`, opened on the first write (once per worker)
    and again on a later write if opening failed. A write has `within_s` from its submission: it waits at
    most half of that for the database's lock, and does not start once less than that half is left
    (queued behind writes that waited), so it is done or refused within `within_s`. `sync`: how far each
    commit goes before the replies it holds are sent (`full` or `normal`, serving.store.store.SYNC;
    default the `audit_sync` setting).

    Group commit: the calls submitted while a write is under way are written together by the next one, in
    one transaction, so a slow commit (a disk's flush) is paid once for all the requests waiting on it."""

    def __init__(self, db_url: str, within_s: float = 3.0, sync: str | None = None) -> None:
        from features.platform.settings import Settings

        self.db_url = db_url
        self.within_s, self.lock_wait_s = within_s, within_s / 2
        self.sync = sync or str(Settings.one("audit_sync"))
        self._store = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="audit")
        self._queue: list[_Pending] = []
        self._queued = threading.Lock()
        self._draining = False

    @property
    def database(self) -> str:
        from serving.store.db import describe

        try:
            return describe(self.db_url)
        except Exception:  # a URL SQLAlchemy cannot parse is still named
            return repr(self.db_url)

    def write(self, rows: list[dict], deadline: float | None = None) -> None:
        """Insert the rows in one transaction (blocking); AuditUnavailable when it cannot be done, or
        not before `deadline` (time.monotonic) with the lock waited for: then nothing is written."""
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        from serving.store.store import StoreUnavailable

        late = self._late(deadline)
        if late is not None:
            raise late
        try:
            self._opened().log_served(rows)
        except (SQLAlchemyError, StoreUnavailable, OSError) as err:
            reason = err.orig if isinstance(err, DBAPIError) else err
            line = " ".join(str(reason).split()) or type(reason).__name__
            raise AuditUnavailable(f"score not served: the audit database {self.database} cannot be written ({line})") from None

    def _opened(self):
        """The store, opened now if it is not yet (Store.open's errors propagate: the next call tries again)."""
        from serving.store.store import Store

        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = Store.open(self.db_url, lock_wait_s=self.lock_wait_s, sync=self.sync)
        return self._store

    def warm_up(self, rows: list[dict]) -> str | None:
        """Before the worker says it is ready: open the database and run one write's statements on `rows`,
        rolled back (nothing is kept), so the first request's write costs what the hundredth's does. None
        when done, else why not (one line): the worker still starts, and the first write tries again."""
        from sqlalchemy.exc import SQLAlchemyError

        from serving.store.store import StoreUnavailable

        try:
            self._opened().rehearse_served(rows)
        except (SQLAlchemyError, StoreUnavailable, OSError, ValueError) as err:
            return " ".join(str(err).split())[:300] or type(err).__name__
        return None

    def _late(self, deadline: float | None) -> AuditUnavailable | None:
        """Why a write due by `deadline` must not start: less time is left than it may wait for the lock."""
        if deadline is None or deadline - time.monotonic() >= self.lock_wait_s:
            return None
        return AuditUnavailable(f"score not served: the audit database {self.database} could not be written within "
                                f"the request's time (earlier writes waited for its lock)")

    def submit(self, rows: list[dict]) -> asyncio.Future:
        """Queue the rows for the audit thread; the future every request of the call awaits."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        future.add_done_callback(_retrieve)  # every waiter may be gone (clients hung up): no "never retrieved"
        with self._queued:
            self._queue.append(_Pending(rows, time.monotonic() + self.within_s, future, loop))
            start, self._draining = not self._draining, True
        if start:
            self._pool.submit(self._drain)
        return future

    def _drain(self) -> None:
        """In the audit thread: write what is queued, together, until nothing is."""
        while True:
            with self._queued:
                batch, self._queue = self._queue, []
                if not batch:
                    self._draining = False
                    return
            self._write_together(batch)

    def _write_together(self, batch: list[_Pending]) -> None:
        """One transaction for the calls of `batch` still in time; those that are not are refused."""
        due = []
        for pending in batch:
            late = self._late(pending.deadline)
            if late is None:
                due.append(pending)
            else:
                pending.settle(late)
        if not due:
            return
        try:
            self.write([row for pending in due for row in pending.rows])
        except AuditUnavailable as err:
            for pending in due:
                pending.settle(err)
            return
        for pending in due:
            pending.settle(None)

    @staticmethod
    async def wait(futures: Iterable[asyncio.Future]) -> str | None:
        """Wait for the writes a request's records depend on: None when written, else why not (one line).
        A request cancelled meanwhile does not cancel the write others wait for."""
        try:
            for future in {id(f): f for f in futures}.values():
                await asyncio.shield(future)
        except AuditUnavailable as err:
            return str(err)
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._store is not None:
            self._store.close()


@dataclass
class _Pending:
    """A coalesced call's rows waiting for the audit thread, and the future its requests await."""

    rows: list[dict]
    deadline: float
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop

    def settle(self, error: AuditUnavailable | None) -> None:
        """Resolve the future on its event loop's thread (gone already when the loop closed: nobody waits)."""
        def resolve() -> None:
            if not self.future.done():
                if error is None:
                    self.future.set_result(None)
                else:
                    self.future.set_exception(error)
        try:
            self.loop.call_soon_threadsafe(resolve)
        except RuntimeError:
            pass


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
