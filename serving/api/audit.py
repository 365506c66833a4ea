"""The API's audit of what it serves: every record the HTTP service answers with is first written to
the decisions database (`served_scores`, through `serving.store.store.Store.log_served`) with the
exact feature values the model scored, so `seller-risk replay RECORD_ID` can recompute it later.

A score that cannot be audited is not served: when the database cannot be written, the request
fails with 503 and one line naming the database (`AuditUnavailable`). A write has `within_s` from its
scoring call, waits for another writer's lock included, so it ends inside the request's time: a
database locked for longer is a 503, never a 504 whose record is written once the lock clears (the
audit would list a score no client received).

The write runs off the event loop, in one thread per worker, one insert per coalesced call
(`ServedAudit.submit` hands back a future every request of the call awaits before it replies)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    (queued behind writes that waited), so it is done or refused within `within_s`."""

    def __init__(self, db_url: str, within_s: float = 3.0) -> None:
        self.db_url = db_url
        self.within_s, self.lock_wait_s = within_s, within_s / 2
        self._store = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="audit")

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

        from serving.store.store import Store, StoreUnavailable

        if deadline is not None and deadline - time.monotonic() < self.lock_wait_s:
            raise AuditUnavailable(f"score not served: the audit database {self.database} could not be written within "
                                   f"the request's time (earlier writes waited for its lock)")
        try:
            if self._store is None:
                with self._lock:
                    if self._store is None:
                        self._store = Store.open(self.db_url, lock_wait_s=self.lock_wait_s)
            self._store.log_served(rows)
        except (SQLAlchemyError, StoreUnavailable, OSError) as err:
            reason = err.orig if isinstance(err, DBAPIError) else err
            line = " ".join(str(reason).split()) or type(reason).__name__
            raise AuditUnavailable(f"score not served: the audit database {self.database} cannot be written ({line})") from None

    def submit(self, rows: list[dict]) -> asyncio.Future:
        """Write the rows in the audit thread; the future every request of the call awaits."""
        deadline = time.monotonic() + self.within_s
        future = asyncio.get_running_loop().run_in_executor(self._pool, self.write, rows, deadline)
        future.add_done_callback(_retrieve)  # every waiter may be gone (clients hung up): no "never retrieved"
        return future

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


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
