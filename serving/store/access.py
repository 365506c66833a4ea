"""Sign-in throttling, from the attempts the store writes down (`signin_attempts`): after THROTTLE_AFTER
wrong passwords within WINDOW, for one account or from one client address, each further attempt must
wait twice as long as the one before (1 s, 2 s, 4 s... at most WINDOW), and is refused until then (the
console answers 429 with Retry-After, no worker sleeps); after LOCK_AFTER wrong passwords on an account,
it is locked until an administrator clears it (`seller-risk accounts unlock USER`). An unknown username
is throttled and refused the same way, so the answers do not tell which accounts exist (its "lock" ends
with the window, as there is no account to keep it on)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from serving.store.db import ReviewerRow, SignInAttemptRow

WINDOW = timedelta(minutes=15)
THROTTLE_AFTER = 5
LOCK_AFTER = 10


@dataclass(frozen=True)
class Gate:
    """Whether a sign-in attempt may check its password: `refused` is None, "throttled" (retry after
    `retry_after` seconds) or "locked"."""

    refused: str | None = None
    retry_after: int = 0


def delay(failures: int) -> timedelta:
    """How long to wait after the latest failure when there have been `failures` in the window."""
    if failures < THROTTLE_AFTER:
        return timedelta(0)
    return min(timedelta(seconds=2 ** min(failures - THROTTLE_AFTER, 20)), WINDOW)


def _failures(session: Session, where, since: datetime) -> tuple[int, datetime | None]:
    """(wrong passwords since `since`, the latest one's time) among the attempts matching `where`."""
    query = select(func.count(), func.max(SignInAttemptRow.at)).where(
        where, SignInAttemptRow.outcome == "wrong", SignInAttemptRow.at > since)
    count, latest = session.execute(query).one()
    if isinstance(latest, str):  # SQLite's max() of a moment comes back as its text
        latest = datetime.fromisoformat(latest)
    if latest is not None and latest.tzinfo is None:
        latest = latest.replace(tzinfo=since.tzinfo)
    return int(count), latest


def account_since(session: Session, username: str, now: datetime) -> datetime:
    """Where an account's failures start counting: the window, its last success or its last unlock."""
    since = now - WINDOW
    last_ok = session.scalar(select(func.max(SignInAttemptRow.id)).where(
        SignInAttemptRow.username == username, SignInAttemptRow.outcome == "ok"))
    if last_ok is not None:
        since = max(since, session.get(SignInAttemptRow, last_ok).at)
    cleared = session.scalar(select(ReviewerRow.cleared_at).where(ReviewerRow.username == username))
    return max(since, cleared) if cleared is not None else since


def gate(session: Session, username: str, address: str, now: datetime) -> Gate:
    """May an attempt on `username` from `address` check its password now?"""
    locked = session.scalar(select(ReviewerRow.locked_at).where(ReviewerRow.username == username))
    if locked is not None:
        return Gate("locked")
    on_account, account_latest = _failures(session, SignInAttemptRow.username == username,
                                           account_since(session, username, now))
    if on_account >= LOCK_AFTER:
        return Gate("locked")
    from_address, address_latest = _failures(session, SignInAttemptRow.address == address, now - WINDOW)
    wait = 0.0
    for failures, latest in ((on_account, account_latest), (from_address, address_latest)):
        if latest is not None and failures >= THROTTLE_AFTER:
            wait = max(wait, (latest + delay(failures) - now).total_seconds())
    return Gate("throttled", math.ceil(wait)) if wait > 0 else Gate()


def lock_when_due(session: Session, username: str, now: datetime) -> None:
    """After a wrong password (already written down): lock the account at LOCK_AFTER failures."""
    failures, _ = _failures(session, SignInAttemptRow.username == username, account_since(session, username, now))
    if failures >= LOCK_AFTER:
        row = session.scalar(select(ReviewerRow).where(ReviewerRow.username == username, ReviewerRow.locked_at.is_(None)))
        if row is not None:
            row.locked_at = now
