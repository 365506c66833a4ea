"""The decisions and audit store: reviewers' accounts, the decisions they make on score records, and
the audit of the score records the HTTP service answered with. One class, `Store`, is the only way
the console's pages, the store's commands, the API's audit and `replay` reach the database
(serving.store.db).

Decisions are append-only. A decision is bound to the exact score record it was made on (record id,
model version, feature spec hash, snapshot date, score); a correction is a new decision pointing at
the one it corrects, made by the same reviewer; nothing here updates or deletes one, and the
database refuses it too (triggers, see the migrations). Each decision and served record is appended
to a hash chain (serving.store.chain) that `audit verify` checks.

Console sessions are kept here, server-side, so signing out and an administrator can end them; each
sign-in attempt is written down and counted (serving.store.access: throttling and locks).

Passwords are hashed with argon2id through argon2-cffi, the maintained binding of the Password
Hashing Competition's winner (RFC 9106 parameters by default); the hash, never the password, is stored.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, event, exists, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from serving.store import access, chain
from serving.store.db import (
    ACTIONS,
    ROLES,
    DecisionRow,
    ReviewerRow,
    ServedFeatureNamesRow,
    ServedFeaturesRow,
    ServedScoreRow,
    SessionRow,
    SignInAttemptRow,
    create_db_engine,
    describe,
    writer,
)

__all__ = ["ACTIONS", "ROLES", "ConsoleSession", "Decision", "DecisionRefused", "RecordRef", "Reviewer",
           "ReviewerRefused", "SignIn", "Store", "StoreUnavailable"]

USERNAME = re.compile(r"[a-z0-9._-]{1,64}")
MIN_PASSWORD = 8
MAX_NOTE = 10_000


@dataclass(frozen=True)
class RecordRef:
    """The exact score record a decision is made on."""

    record_id: str
    seller_id: str
    as_of: date  # snapshot date
    model_name: str
    model_version: str
    feature_spec_hash: str
    risk_score: float


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision on a score record, as it was made."""

    id: int
    record_id: str
    seller_id: str
    as_of: date
    model_name: str
    model_version: str
    feature_spec_hash: str
    risk_score: float
    action: str
    note: str
    reviewer: str  # username
    decided_at: datetime  # UTC, timezone-aware
    corrects: int | None  # id of the decision this one corrects


@dataclass(frozen=True)
class Reviewer:
    """A person who signs in to the console."""

    username: str
    display_name: str
    created_at: datetime
    role: str = "reviewer"  # one of ROLES
    locked: bool = False  # after too many failed sign-ins, until an administrator clears it


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in console session, as the server keeps it."""

    username: str
    role: str
    csrf: str  # the token every form of the session carries
    created_at: datetime


@dataclass(frozen=True)
class SignIn:
    """How a sign-in attempt was answered: the reviewer when it succeeded; else `refused` says why
    ("wrong", "throttled": retry after `retry_after` seconds, "locked": an administrator must clear it)."""

    reviewer: Reviewer | None
    refused: str | None = None
    retry_after: int = 0


SESSION_TOUCH = timedelta(seconds=60)
"""A session's last-seen time is written at most this often (the idle timeout is minutes)."""


DECISION_COLUMNS = tuple(Decision.__dataclass_fields__)


class DecisionRefused(ValueError):
    """A decision the store will not record; the message says why."""


class ReviewerRefused(ValueError):
    """An account the store will not create; the message names the field and the rule."""


def _wait_for_locks_at_most(engine: Engine, seconds: float) -> None:
    """Every connection of `engine` waits at most `seconds` for a lock another writer holds (SQLite's
    busy timeout, PostgreSQL's lock_timeout), then its statement fails."""
    ms = max(1, int(seconds * 1000))
    _on_connect(engine, f"PRAGMA busy_timeout = {ms}", f"SET lock_timeout = {ms}")


def _on_connect(engine: Engine, sqlite: str, postgresql: str) -> None:
    """Run one statement on every new connection of `engine`: `sqlite`'s or `postgresql`'s."""
    @event.listens_for(engine, "connect")
    def _run(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        if engine.dialect.name == "sqlite":
            cursor.execute(sqlite)
        else:
            cursor.execute(postgresql)
            dbapi_connection.commit()
        cursor.close()


SYNC = ("full", "normal")
"""How far a commit goes before it returns: `full`, to the disk (SQLite `synchronous=FULL`, PostgreSQL
`synchronous_commit=on`); `normal`, to the operating system (SQLite in WAL mode `synchronous=NORMAL`,
PostgreSQL `synchronous_commit=off`): it survives the process, not a power cut, and the database is never
corrupted either way."""


def _commit_to(engine: Engine, sync: str) -> None:
    """Every connection of `engine` commits as far as `sync` says (one of SYNC)."""
    if sync not in SYNC:
        raise ValueError(f"sync {sync!r}: one of {', '.join(SYNC)}")
    _on_connect(engine, f"PRAGMA synchronous = {sync.upper()}",
                f"SET synchronous_commit = {'on' if sync == 'full' else 'off'}")


class StoreUnavailable(RuntimeError):
    """The database cannot be opened or brought up to date."""


class Store:
    """Reviewers, decisions, served records and console sessions in one database (SQLite file or
    PostgreSQL). `clock`: what "now" is (tests move it on to reach timeouts and throttling delays)."""

    def __init__(self, engine: Engine, hasher: PasswordHasher | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self._clock = clock or _now
        # objects stay readable after their transaction ends: they are turned into frozen dataclasses
        self._reading = sessionmaker(engine, expire_on_commit=False)
        self._writer = writer(engine)
        self._writing = sessionmaker(self._writer, expire_on_commit=False)
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    @classmethod
    def open(cls, url: str, hasher: PasswordHasher | None = None, lock_wait_s: float | None = None,
             sync: str = "full") -> Store:
        """Connect to the database at `url` (a SQLite file's folder is created) and bring its tables to
        the newest migration. `hasher`: argon2 parameters other than the library's (RFC 9106) defaults.
        `lock_wait_s`: how long a statement may wait for another writer's lock before it fails (default:
        the database's own, 30 s on SQLite), for callers that must answer within a deadline. `sync`: how
        far each commit goes before it returns (SYNC)."""
        from serving.store.migrations import upgrade

        engine = create_db_engine(url)
        if lock_wait_s is not None:
            _wait_for_locks_at_most(engine, lock_wait_s)
        if sync != "full":
            _commit_to(engine, sync)
        try:
            upgrade(engine)
        except OperationalError as err:
            engine.dispose()
            raise StoreUnavailable(f"cannot open the console database {describe(url)}: {err.orig}") from None
        return cls(engine, hasher)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Release the connections (the data stays, of course)."""
        self._engine.dispose()

    # reviewers

    def add_reviewer(self, username: str, password: str, display_name: str | None = None,
                     role: str = "reviewer") -> Reviewer:
        """Create an account; the username is the reviewer's name on every decision they make."""
        if role not in ROLES:
            raise ReviewerRefused(f"role {role!r}: one of {', '.join(ROLES)}")
        if not isinstance(username, str) or not USERNAME.fullmatch(username):
            raise ReviewerRefused(f"username {username!r}: use 1 to 64 lowercase letters, digits, '.', '_' or '-'")
        if not isinstance(password, str) or len(password) < MIN_PASSWORD:
            raise ReviewerRefused(f"password: at least {MIN_PASSWORD} characters")
        display_name = (display_name or "").strip() or username
        if len(display_name) > 200:
            raise ReviewerRefused("display name: at most 200 characters")
        row = ReviewerRow(username=username, display_name=display_name, password_hash=self._hasher.hash(password),
                          created_at=self._clock(), role=role)
        try:
            with self._writing() as session, session.begin():
                if session.scalar(select(exists().where(ReviewerRow.username == username))):
                    raise ReviewerRefused(f"username {username!r}: taken")
                session.add(row)
        except IntegrityError:  # added by another process between the check and the insert
            raise ReviewerRefused(f"username {username!r}: taken") from None
        return _reviewer(row)

    def authenticate(self, username: str, password: str) -> Reviewer | None:
        """The reviewer when the password is theirs, else None. An unknown username costs the same
        argon2 verification as a wrong password, so timing does not tell which usernames exist."""
        with self._reading() as session:
            row = session.scalar(select(ReviewerRow).where(ReviewerRow.username == username))
        if row is None:
            self._verify(self._dummy(), password)
            return None
        if not self._verify(row.password_hash, password):
            return None
        if self._hasher.check_needs_rehash(row.password_hash):  # parameters raised since the account was made
            with self._writing() as session, session.begin():
                session.get(ReviewerRow, row.id).password_hash = self._hasher.hash(password)
        return _reviewer(row)

    def sign_in(self, username: str, password: str, address: str) -> SignIn:
        """Check a sign-in from `address`, throttled per account and per address (serving.store.access),
        and write the attempt down whatever its outcome."""
        now = self._clock()
        with self._writing() as session, session.begin():
            verdict = access.gate(session, username, address, now)
        if verdict.refused:
            self._attempt(username, address, verdict.refused, now)
            return SignIn(None, verdict.refused, verdict.retry_after)
        reviewer = self.authenticate(username, password)
        self._attempt(username, address, "ok" if reviewer else "wrong", now)
        return SignIn(reviewer, None if reviewer else "wrong")

    def _attempt(self, username: str, address: str, outcome: str, now: datetime) -> None:
        with self._writing() as session, session.begin():
            session.add(SignInAttemptRow(at=now, username=username[:64], address=address[:64], outcome=outcome,
                                         success=outcome == "ok"))
            if outcome == "wrong":
                access.lock_when_due(session, username, now)

    def attempts(self, username: str | None = None) -> list[dict]:
        """The sign-in attempts (of one account), oldest first: at, username, address, outcome, success."""
        query = select(SignInAttemptRow).order_by(SignInAttemptRow.id)
        if username is not None:
            query = query.where(SignInAttemptRow.username == username)
        with self._reading() as session:
            return [{"at": a.at, "username": a.username, "address": a.address, "outcome": a.outcome,
                     "success": a.success} for a in session.scalars(query)]

    def unlock(self, username: str) -> bool:
        """Clear an account's sign-in lock and its failures so far; False when there is no such account."""
        with self._writing() as session, session.begin():
            done = session.execute(update(ReviewerRow).where(ReviewerRow.username == username)
                                   .values(locked_at=None, cleared_at=self._clock()))
        return done.rowcount > 0

    # console sessions

    def open_session(self, username: str, address: str) -> tuple[str, ConsoleSession]:
        """A new session for `username`: (its id, for the cookie only; the session). The database keeps
        only a hash of the id."""
        token, now = secrets.token_urlsafe(32), self._clock()
        with self._writing() as session, session.begin():
            role = session.scalar(select(ReviewerRow.role).where(ReviewerRow.username == username))
            if role is None:
                raise ReviewerRefused(f"username {username!r}: no such account")
            row = SessionRow(token_hash=_token_hash(token), username=username, csrf=secrets.token_urlsafe(32),
                             created_at=now, last_seen_at=now, address=address[:64])
            session.add(row)
        return token, ConsoleSession(username, role, row.csrf, now)

    def session(self, token: str, idle: timedelta, lifetime: timedelta) -> ConsoleSession | None:
        """The live session with this id (not revoked, used within `idle`, younger than `lifetime`), its
        last-seen time moved on; None otherwise."""
        if not isinstance(token, str) or not token:
            return None
        now = self._clock()
        query = (select(SessionRow.id, SessionRow.username, ReviewerRow.role, SessionRow.csrf, SessionRow.created_at,
                        SessionRow.last_seen_at)
                 .join(ReviewerRow, ReviewerRow.username == SessionRow.username)
                 .where(SessionRow.token_hash == _token_hash(token), SessionRow.revoked_at.is_(None)))
        with self._reading() as session:
            row = session.execute(query).first()
        if row is None or now - row.created_at >= lifetime or now - row.last_seen_at >= idle:
            return None
        if now - row.last_seen_at >= SESSION_TOUCH:
            with self._writing() as session, session.begin():
                session.execute(update(SessionRow).where(SessionRow.id == row.id).values(last_seen_at=now))
        return ConsoleSession(row.username, row.role, row.csrf, row.created_at)

    def end_session(self, token: str) -> None:
        """Sign-out: the session with this id is revoked."""
        with self._writing() as session, session.begin():
            session.execute(update(SessionRow).where(SessionRow.token_hash == _token_hash(token),
                                                     SessionRow.revoked_at.is_(None)).values(revoked_at=self._clock()))

    def revoke_sessions(self, username: str) -> int:
        """End every open session of an account (an administrator's action); how many there were."""
        with self._writing() as session, session.begin():
            done = session.execute(update(SessionRow).where(SessionRow.username == username,
                                                            SessionRow.revoked_at.is_(None))
                                   .values(revoked_at=self._clock()))
        return done.rowcount

    def open_sessions(self) -> dict[str, int]:
        """Per account, how many sessions are not revoked (some may have timed out)."""
        query = (select(SessionRow.username, func.count()).where(SessionRow.revoked_at.is_(None))
                 .group_by(SessionRow.username))
        with self._reading() as session:
            return {u: n for u, n in session.execute(query)}

    def reviewers(self) -> list[Reviewer]:
        """Every account, by username."""
        with self._reading() as session:
            return [_reviewer(r) for r in session.scalars(select(ReviewerRow).order_by(ReviewerRow.username))]

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash("not a password of anyone")
        return self._dummy_hash

    # decisions

    def record_decision(self, ref: RecordRef, reviewer: str, action: str, note: str,
                        corrects: int | None = None) -> Decision:
        """Record `reviewer`'s decision on the score record `ref`; with `corrects`, as a correction of
        that earlier decision (theirs, on the same seller, not corrected yet)."""
        if action not in ACTIONS:
            raise DecisionRefused(f"action {action!r}: not one of {', '.join(ACTIONS)}")
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise DecisionRefused("reviewer: empty; a decision names the reviewer who made it")
        note = "" if note is None else str(note)
        if len(note) > MAX_NOTE:
            raise DecisionRefused(f"note: at most {MAX_NOTE:,} characters (got {len(note):,})")
        _check_ref(ref)
        try:
            with self._writing() as session, session.begin():
                if session.scalar(select(ReviewerRow.id).where(ReviewerRow.username == reviewer)) is None:
                    raise DecisionRefused(f"reviewer {reviewer!r}: no such account")
                if corrects is not None:
                    _check_correction(session, corrects, reviewer, ref)
                row = DecisionRow(record_id=ref.record_id, seller_id=ref.seller_id, as_of=ref.as_of,
                                  model_name=ref.model_name, model_version=ref.model_version,
                                  feature_spec_hash=ref.feature_spec_hash, risk_score=float(ref.risk_score),
                                  action=action, note=note, reviewer=reviewer, decided_at=self._clock(),
                                  corrects_id=corrects)
                chain.link(session, "decisions", [row])
                session.add(row)
                session.flush()
                decision = _decision(row)
        except IntegrityError as err:  # a correction raced another one to the same decision
            raise DecisionRefused(f"decision {corrects} was corrected meanwhile ({err.orig})") from None
        return decision

    def decision(self, decision_id: int) -> Decision | None:
        with self._reading() as session:
            row = session.get(DecisionRow, decision_id)
            return None if row is None else _decision(row)

    def decisions_for_seller(self, seller_id: str) -> list[Decision]:
        """Every decision on the seller, corrections included, newest first."""
        return self._decisions(DecisionRow.seller_id == seller_id, newest_first=True)

    def decisions_for_week(self, as_of: date) -> list[Decision]:
        """Every decision on a score record of the snapshot date `as_of`, in the order they were made."""
        return self._decisions(DecisionRow.as_of == as_of)

    def decisions_frame(self) -> pd.DataFrame:
        """Every decision, one row each in the order they were made, with the fields of `Decision` as
        columns (as_of a date, decided_at UTC, corrects a nullable integer)."""
        return decisions_frame(self._decisions(None))

    def _decisions(self, where, newest_first: bool = False) -> list[Decision]:
        # the columns as plain rows, not ORM objects: a week's thousand decisions read in a fifth of the
        # time (the queue page reads them on every view)
        query = select(*_DECISION_SELECT)
        if where is not None:
            query = query.where(where)
        query = query.order_by(DecisionRow.id.desc() if newest_first else DecisionRow.id)
        with self._reading() as session:
            return [Decision(*r) for r in session.execute(query)]

    # the audit of served records

    def log_served(self, rows: list[dict]) -> None:
        """Keep the score records the HTTP service answered with: record_id, seller_id, as_of, model_name,
        model_version, feature_spec_hash, policy_version, risk_score, features (feature -> value; floats
        are kept bit for bit) and served_at (default: now). One transaction and three prepared statements
        for the whole batch: the chain head locked and moved, the feature names and values not kept yet
        added (each distinct list of names and set of values once, by digest), the records appended."""
        if not rows:
            return
        with self._writer.begin() as connection:
            _append_served(connection, rows)

    def rehearse_served(self, rows: list[dict]) -> None:
        """`log_served`'s transaction on `rows`, rolled back: nothing is kept, and the statements, the
        connection and the database's pages are ready for the first real write (a worker's warm-up)."""
        with self._writer.connect() as connection:
            transaction = connection.begin()
            try:
                _append_served(connection, rows)
            finally:
                transaction.rollback()

    def verify(self, archives: bool = False) -> chain.Verdict:
        """Walk the decisions' and served records' hash chains and check the append-only triggers; with
        `archives`, walk the Parquet files the archive checkpoints name too (serving.store.archive)."""
        with self._engine.connect() as connection:
            verdict = chain.verify(connection)
            if archives:
                from serving.store.archive import file_problems

                verdict.problems.extend(file_problems(chain.checkpoints(connection, "served_scores")))
        return verdict

    def served(self, record_id: str) -> dict | None:
        """The served record with this id (the latest, should it have been served more than once), with
        the feature values it was computed from, from the database or else from the archive files its
        checkpoints name; None when it was never served."""
        served, kept, names = ServedScoreRow, ServedFeaturesRow, ServedFeatureNamesRow
        query = (select(*_SERVED_FIELDS, kept.feature_values, names.names)
                 .outerjoin(kept, kept.digest == served.features_digest)
                 .outerjoin(names, names.digest == kept.names_digest).where(served.record_id == record_id)
                 .order_by(served.served_at.desc(), served.id.desc()).limit(1))
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
            if row is None:
                from serving.store.archive import find_archived

                return find_archived(chain.checkpoints(connection, "served_scores"), record_id)
        record = dict(zip([c.key for c in _SERVED_FIELDS], row))
        record["features"] = (dict(zip(json.loads(row.names), json.loads(row.feature_values)))
                              if row.features_digest else json.loads(row.features))
        del record["features_digest"]
        return record

    def archive_served(self, before: datetime, folder: Path, most_rows: int = 500_000) -> list:
        """Move the served records served before `before` from the database to Parquet files in `folder`,
        oldest first, at most `most_rows` a file: each file written whole first (serving.store.archive),
        then its checkpoint added and its rows deleted in one transaction. The archives made (Archived)."""
        from serving.store.archive import archive_next, clear_leftovers

        with self._engine.connect() as connection:
            clear_leftovers(folder, chain.checkpoints(connection, "served_scores"))
        made = []
        while (archived := archive_next(self._engine, self._writer, before, folder, most_rows, self._clock())) is not None:
            made.append(archived)
        return made


def decisions_frame(decisions: list[Decision]) -> pd.DataFrame:
    """Decisions as a frame, one row each, the columns of `Decision` with stable dtypes even when empty."""
    frame = pd.DataFrame([d.__dict__ for d in decisions], columns=list(DECISION_COLUMNS))
    return frame.astype({
        "id": "int64", "record_id": "string", "seller_id": "string", "model_name": "string",
        "model_version": "string", "feature_spec_hash": "string", "risk_score": "float64", "action": "string",
        "note": "string", "reviewer": "string", "decided_at": "datetime64[us, UTC]", "corrects": "Int64",
    }).assign(as_of=frame["as_of"].astype(object))


def _now() -> datetime:
    return datetime.now(UTC)


def _reviewer(row: ReviewerRow) -> Reviewer:
    return Reviewer(row.username, row.display_name, row.created_at, row.role, row.locked_at is not None)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_DECISION_SELECT = (DecisionRow.id, DecisionRow.record_id, DecisionRow.seller_id, DecisionRow.as_of,
                    DecisionRow.model_name, DecisionRow.model_version, DecisionRow.feature_spec_hash,
                    DecisionRow.risk_score, DecisionRow.action, DecisionRow.note, DecisionRow.reviewer,
                    DecisionRow.decided_at, DecisionRow.corrects_id)
"""The columns of a decision in the order of `Decision`'s fields."""


def _decision(row: DecisionRow) -> Decision:
    return Decision(*(getattr(row, column.key) for column in _DECISION_SELECT))


def _check_ref(ref: RecordRef) -> None:
    """A decision must name the score record it was made on, whole."""
    for field in ("record_id", "seller_id", "model_name", "model_version", "feature_spec_hash"):
        value = getattr(ref, field)
        if not isinstance(value, str) or not value.strip():
            raise DecisionRefused(f"record {field}: empty; a decision is bound to the score record it was made on")
    if not isinstance(ref.as_of, date) or isinstance(ref.as_of, datetime):
        raise DecisionRefused(f"record as_of: {ref.as_of!r} is not a date")
    score = ref.risk_score
    if not isinstance(score, int | float) or not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise DecisionRefused(f"record risk_score: {score!r} is not a probability")


def _check_correction(session: Session, corrects: int, reviewer: str, ref: RecordRef) -> None:
    old = session.get(DecisionRow, corrects)
    if old is None:
        raise DecisionRefused(f"corrects: there is no decision {corrects}")
    if old.reviewer != reviewer:
        raise DecisionRefused(f"decision {corrects} was made by {old.reviewer!r}; only they may correct it, "
                              f"not {reviewer!r}")
    if old.seller_id != ref.seller_id:
        raise DecisionRefused(f"decision {corrects} is on seller {old.seller_id!r}, not {ref.seller_id!r}")
    later = session.scalar(select(DecisionRow.id).where(DecisionRow.corrects_id == corrects))
    if later is not None:
        raise DecisionRefused(f"decision {corrects} was already corrected by decision {later}; correct that one")


_SERVED_FIELDS = (ServedScoreRow.record_id, ServedScoreRow.seller_id, ServedScoreRow.as_of, ServedScoreRow.model_name,
                  ServedScoreRow.model_version, ServedScoreRow.feature_spec_hash, ServedScoreRow.policy_version,
                  ServedScoreRow.risk_score, ServedScoreRow.features, ServedScoreRow.served_at,
                  ServedScoreRow.features_digest)
"""A served record's columns as `Store.served` hands them back (features_digest only to find the values)."""

_INSERT_SERVED = insert(ServedScoreRow.__table__)
_KEEP_NAMES = text("INSERT INTO served_feature_names (digest, names) SELECT CAST(:digest AS VARCHAR(64)), "
                   "CAST(:names AS TEXT) WHERE NOT EXISTS (SELECT 1 FROM served_feature_names WHERE digest = :digest)")
_KEEP_VALUES = text("INSERT INTO served_features (digest, names_digest, feature_values) SELECT CAST(:digest AS "
                    "VARCHAR(64)), CAST(:names_digest AS VARCHAR(64)), CAST(:feature_values AS TEXT) "
                    "WHERE NOT EXISTS (SELECT 1 FROM served_features WHERE digest = :digest)")
"""Feature names and values are added once: what is kept already (for another record, or earlier in the
batch) is skipped."""


def _append_served(connection: Connection, rows: list[dict]) -> None:
    """Within the caller's transaction: the chain head locked and moved, the feature names and values not
    kept yet added, the records appended."""
    records, values, names = _served_rows(rows)
    chain.append(connection, "served_scores", records)
    connection.execute(_KEEP_NAMES, [{"digest": d, "names": t} for d, t in names.items()])
    connection.execute(_KEEP_VALUES, [{"digest": d, "names_digest": n, "feature_values": v}
                                      for d, (n, v) in values.items()])
    connection.execute(_INSERT_SERVED, records)


def _served_rows(rows: list[dict]) -> tuple[list[dict], dict[str, tuple[str, str]], dict[str, str]]:
    """The served_scores rows of a batch (without id and hashes yet), its distinct feature values as
    digest -> (names digest, values' JSON array) and its distinct lists of names as digest -> JSON array.
    The same values in the same order give the same digest, so a seller served again from the same
    snapshot names the values already kept."""
    now, records, values, names = _now(), [], {}, {}
    for row in rows:
        missing = [k for k in ("record_id", "seller_id", "model_name", "model_version", "feature_spec_hash",
                               "policy_version", "risk_score", "features") if row.get(k) is None]
        if missing:
            raise ValueError(f"served record {row.get('record_id')!r}: missing {', '.join(missing)}")
        served_at = row.get("served_at") or now
        if isinstance(served_at, str):
            served_at = datetime.fromisoformat(served_at)
        listed, kept = chain.feature_texts(dict(row["features"]), default=_plain)
        names_digest = chain.text_digest(listed)
        names.setdefault(names_digest, listed)
        digest = chain.features_digest(names_digest, kept)
        values.setdefault(digest, (names_digest, kept))
        records.append({
            "record_id": str(row["record_id"]), "seller_id": str(row["seller_id"]), "as_of": _as_date(row.get("as_of")),
            "model_name": str(row["model_name"]), "model_version": str(row["model_version"]),
            "feature_spec_hash": str(row["feature_spec_hash"]), "policy_version": str(row["policy_version"]),
            "risk_score": float(row["risk_score"]), "features": "", "features_digest": digest, "served_at": served_at})
    return records, values, names


def _as_date(value) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # also pandas' Timestamp
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _plain(value):
    """numpy scalars as the Python numbers they hold (float32 widened exactly), dates as ISO text."""
    if value is pd.NA:
        return None
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"feature value {value!r} ({type(value).__name__}) cannot be stored")
