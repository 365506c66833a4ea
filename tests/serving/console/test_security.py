"""The console as a security engineer and an auditor probe it (issue 24), each defect found then as a
test: the real console app mounted at /console as the service mounts it (behind the service's Guard where
the Guard matters), over small synthetic score tables shaped as the batch job writes them, and a real
store on SQLite and on PostgreSQL (`db_url`). `seller-risk` commands run for real (CliRunner).

1. signing out (and an administrator) ends a session: a copied cookie opens nothing afterwards;
2. append-only holds against REPLACE, on served_scores too, and `audit verify` names any edit;
3. the SQLite file and the session key are 0600, and `serve` refuses looser ones;
4. sign-in is throttled per account and per address, locks, and every attempt is written down;
5. security headers on every answer, Secure cookies behind HTTPS, sign-out only by POST, 414;
6. a reviewer corrects their own decision from the seller page; queue and leader count the latest;
7. each role on each route."""

from __future__ import annotations

import re
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from typer.testing import CliRunner

from features.platform.settings import Settings
from serving.store.store import RecordRef, Store

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from bench_console import LATEST, make_data  # noqa: E402  (synthetic tables shaped as the batch job's)

PASSWORD = "correct horse battery staple"
ROLES = {"rita": "reviewer", "lena": "leader", "ada": "administrator", "sam": "reviewer"}


class Clock:
    """A clock the test moves on, for idle timeouts and throttling delays."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 6, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Settings:
    """300 sellers, two scored weeks, six snapshot weeks (made once per module)."""
    return make_data(tmp_path_factory.mktemp("security") / "data", 300, 2, 6)


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def store(db_url: str, clock: Clock):
    opened = Store.open(db_url)
    store = Store(opened.engine, clock=clock)
    for name, role in ROLES.items():
        store.add_reviewer(name, PASSWORD, role=role)
    yield store
    store.close()


@pytest.fixture()
def settings(tables: Settings, db_url: str) -> Settings:
    return tables.model_copy(update={"db": db_url})


def client_for(settings: Settings, store: Store, guard: bool = False) -> TestClient:
    from serving.console.web import create_app

    app = Starlette(routes=[Mount("/console", create_app(settings, store))])
    if guard:  # the service's front door, in front of every route as BentoML stacks it
        from serving.api.guard import Guard
        from serving.api.routes import ROUTES

        app = Guard(app, routes=[r for r in ROUTES if r.keyed], max_body_bytes=1 << 20, api_key=None)
    return TestClient(app)


def token(text_: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text_).group(1)


def sign_in(c: TestClient, username: str = "rita", password: str = PASSWORD, follow: bool = False):
    page = c.get("/console/login")
    return c.post("/console/login", data={"username": username, "password": password,
                                          "csrf_token": token(page.text)}, follow_redirects=follow)


def signed_in(settings: Settings, store: Store, username: str = "rita") -> TestClient:
    c = client_for(settings, store)
    assert sign_in(c, username).status_code == 303
    return c


def queued_seller(settings: Settings) -> dict:
    import pyarrow.parquet as pq

    from features.platform import layout

    rows = pq.read_table(layout.score_files(settings.scores_dir, LATEST)).to_pylist()
    return next(r for r in sorted(rows, key=lambda r: r["queue_rank"] or 0) if r["queue"] == "early_warning")


def decide(c: TestClient, row: dict, action: str = "contact_seller", **extra):
    page = c.get(f"/console/sellers/{row['seller_id']}")
    return c.post(f"/console/sellers/{row['seller_id']}", follow_redirects=False, data={
        "csrf_token": token(page.text), "record_id": row["record_id"], "week": str(LATEST), "action": action,
        "note": "n", **extra})


def run(*args: str, input: str | None = None):
    from serving.main import app

    return CliRunner().invoke(app, list(args), input=input)


# ------------------------------------------------------------------ 1. sessions that end


def test_signing_out_ends_the_session_even_for_a_copied_cookie(settings, store) -> None:
    c = signed_in(settings, store)
    copied = dict(c.cookies)
    csrf = token(c.get("/console/").text)
    assert c.get("/console/logout", follow_redirects=False).status_code == 405  # a GET signs nobody out
    assert c.get("/console/", follow_redirects=False).status_code == 200
    assert c.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    thief = client_for(settings, store)
    thief.cookies.update(copied)
    r = thief.get("/console/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    row = queued_seller(settings)
    r = thief.post(f"/console/sellers/{row['seller_id']}", follow_redirects=False, data={
        "csrf_token": csrf, "record_id": row["record_id"], "week": str(LATEST), "action": "escalate"})
    assert r.status_code == 303 and store.decisions_for_seller(row["seller_id"]) == []


def test_the_session_id_changes_at_sign_in_and_only_its_hash_is_stored(settings, store) -> None:
    c = signed_in(settings, store)
    first = dict(c.cookies)
    assert sign_in(c).status_code == 303  # signing in again: a new session, the old one ends
    old = client_for(settings, store)
    old.cookies.update(first)
    assert old.get("/console/", follow_redirects=False).status_code == 303
    assert c.get("/console/", follow_redirects=False).status_code == 200
    with store.engine.connect() as conn:
        kept = conn.execute(text("SELECT token_hash, address FROM console_sessions")).all()
    cookie = c.cookies["seller_risk_console"]
    assert len(kept) == 2 and all(len(h) == 64 and h not in cookie for h, _ in kept)
    assert {a for _, a in kept} == {"testclient"}


def test_an_administrator_ends_an_accounts_sessions(settings, store, db_url) -> None:
    rita, admin = signed_in(settings, store), signed_in(settings, store, "ada")
    r = admin.post("/console/admin/revoke", data={"username": "rita", "csrf_token": token(admin.get("/console/admin").text)})
    assert r.status_code == 200 and "1 session(s) of rita ended." in r.text
    assert rita.get("/console/", follow_redirects=False).status_code == 303
    rita = signed_in(settings, store)
    result = run("accounts", "revoke-sessions", "rita", "--db", db_url)
    assert result.exit_code == 0 and "1 session(s) of rita ended." in result.output
    assert rita.get("/console/", follow_redirects=False).status_code == 303


def test_a_session_ends_when_idle_and_at_its_lifetime(settings, store, clock) -> None:
    c = signed_in(settings, store)
    for _ in range(5):  # used every 25 minutes: alive past the idle timeout of 30
        clock.advance(minutes=25)
        assert c.get("/console/", follow_redirects=False).status_code == 200
    clock.advance(minutes=31)
    assert c.get("/console/", follow_redirects=False).status_code == 303
    c = signed_in(settings, store)
    statuses = []
    for _ in range(12 * 60 // 20):
        clock.advance(minutes=20)
        statuses.append(c.get("/console/", follow_redirects=False).status_code)
    assert statuses == [200] * 35 + [303]  # 12 hours after sign-in, however used


# ------------------------------------------------------------------ 2. tamper evidence


def _replace(engine, table_sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(table_sql))


REWRITE_DECISION = {
    "sqlite": "INSERT OR REPLACE INTO decisions (id, record_id, seller_id, as_of, model_name, model_version, "
              "feature_spec_hash, risk_score, action, note, reviewer, decided_at, prev_hash, row_hash) "
              "SELECT id, record_id, seller_id, as_of, model_name, model_version, feature_spec_hash, risk_score, "
              "'escalate', note, reviewer, decided_at, prev_hash, row_hash FROM decisions WHERE id = 1",
    "postgresql": "INSERT INTO decisions SELECT * FROM decisions WHERE id = 1 "
                  "ON CONFLICT (id) DO UPDATE SET action = 'escalate'",
}


def _some_history(store: Store, settings: Settings) -> None:
    row = queued_seller(settings)
    ref = RecordRef(row["record_id"], row["seller_id"], LATEST, "seller-risk", "3", "h", row["risk_score"])
    first = store.record_decision(ref, "rita", "contact_seller", "called")
    store.record_decision(ref, "rita", "formal_warning", "second thoughts", corrects=first.id)
    store.record_decision(ref, "sam", "no_action", "fine")
    store.log_served([{"record_id": f"r{i}", "seller_id": "S1", "as_of": LATEST, "model_name": "seller-risk",
                       "model_version": "3", "feature_spec_hash": "h", "policy_version": "p", "risk_score": 0.1 * i,
                       "features": {"orders_30d": 240.0 + i}} for i in range(1, 4)])


def test_rewrites_are_refused_even_replace_and_on_the_served_records(settings, store) -> None:
    from sqlalchemy.exc import DBAPIError

    _some_history(store, settings)
    dialect = store.engine.dialect.name
    statements = [REWRITE_DECISION[dialect], "UPDATE served_scores SET risk_score = 0",
                  "DELETE FROM served_scores WHERE id = 2"]
    if dialect == "sqlite":
        statements.append("REPLACE INTO served_scores SELECT * FROM served_scores WHERE id = 1")
    else:
        statements += ["TRUNCATE served_scores", "INSERT INTO served_scores SELECT * FROM served_scores "
                                                 "WHERE id = 1 ON CONFLICT (id) DO UPDATE SET risk_score = 0"]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            _replace(store.engine, statement)
    assert store.decision(1).action == "contact_seller"
    result = run("audit", "verify", "--db", str(store.engine.url.render_as_string(hide_password=False)))
    assert result.exit_code == 0, result.output
    assert "decisions: 3 rows intact" in result.output and "served_scores: 3 rows intact" in result.output


EDITS = {  # (triggers set aside first, the edit, what `audit verify` must name)
    "replace": ("decisions", "REWRITE", "decisions row 1: its content does not match its hash"),
    "delete": ("decisions", "DELETE FROM decisions WHERE id = 2", "decisions row 2 missing"),
    "delete-last": ("decisions", "DELETE FROM decisions WHERE id = 3", "decisions rows after 2 missing"),
    "update-served": ("served_scores", "UPDATE served_scores SET features = '{\"orders_30d\": 1.0}' WHERE id = 2",
                      "served_scores row 2: its content does not match its hash"),
}


def _set_aside_triggers(engine, table: str) -> list[str]:
    """Drop (SQLite) or disable (PostgreSQL) a table's append-only triggers, as someone with the file would."""
    from serving.store.chain import TRIGGERS

    names = [t for t in TRIGGERS[engine.dialect.name] if t.startswith(table + "_no")]
    with engine.begin() as conn:
        for name in names:
            if engine.dialect.name == "sqlite":
                conn.execute(text(f"DROP TRIGGER {name}"))
            else:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {name}"))
    return names


@pytest.mark.parametrize("edit", list(EDITS))
def test_audit_verify_names_the_first_row_an_edit_broke_and_the_trigger_gone(settings, store, edit) -> None:
    _some_history(store, settings)
    table, statement, named = EDITS[edit]
    gone = _set_aside_triggers(store.engine, table)
    with store.engine.begin() as conn:
        conn.execute(text(REWRITE_DECISION[store.engine.dialect.name] if statement == "REWRITE" else statement))
    result = run("audit", "verify", "--db", store.engine.url.render_as_string(hide_password=False))
    assert result.exit_code == 1, result.output
    assert named in result.output
    for name in gone:
        assert f"trigger {name} dropped" in result.output


def test_the_chains_carry_on_across_writers_and_verify_clean(settings, store, db_url) -> None:
    from concurrent.futures import ThreadPoolExecutor

    others = [Store.open(db_url) for _ in range(3)]  # an engine each, as service workers have
    ref = RecordRef("r", "S1", LATEST, "seller-risk", "3", "h", 0.5)

    def write(i: int) -> None:
        s = others[i % 3]
        s.record_decision(ref, "rita", "no_action", f"n{i}")
        s.log_served([{"record_id": f"r{i}", "seller_id": "S1", "as_of": LATEST, "model_name": "m",
                       "model_version": "3", "feature_spec_hash": "h", "policy_version": "p", "risk_score": 0.5,
                       "features": {"x": i / 7}}])

    try:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(write, range(24)))
    finally:
        for s in others:
            s.close()
    verdict = store.verify()
    assert verdict.problems == [] and verdict.rows == {"decisions": 24, "served_scores": 24}


# ------------------------------------------------------------------ 3. private files


def test_the_database_and_key_are_created_private_and_serve_refuses_loose_ones(tmp_path, monkeypatch) -> None:
    from serving.console.sessions import secret_key

    data = tmp_path / "data"
    store = Store.open(f"sqlite:///{data / 'console.db'}")
    store.add_reviewer("rita", PASSWORD)
    files = [data / "console.db", data / "console.db-wal", data / "console.db-shm"]
    secret_key(Settings(data=data))
    files.append(data / "console.key")
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    monkeypatch.setenv("SELLER_RISK_DATA", str(data))
    monkeypatch.delenv("SELLER_RISK_DB", raising=False)
    monkeypatch.delenv("SELLER_RISK_SECRET_KEY", raising=False)
    for loose in (files[0], files[3]):
        loose.chmod(0o644)
        result = run("serve", "--models", str(tmp_path / "no-models"), "--features", str(tmp_path / "none"))
        assert result.exit_code == 2  # `fail`: one line, no traceback
        assert f"chmod 600 {loose}" in result.output.replace("\n", "")
        loose.chmod(0o600)
    store.close()


# ------------------------------------------------------------------ 4. sign-in throttling and its audit


def test_six_failed_sign_ins_are_throttled_and_every_attempt_is_written_down(settings, store, clock) -> None:
    c = client_for(settings, store)
    for _ in range(5):
        assert sign_in(c, password="wrong password").status_code == 401
    r = sign_in(c)  # the right password, at once: refused all the same
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    clock.advance(seconds=1)
    assert sign_in(c, password="wrong again").status_code == 401
    r = sign_in(c)
    assert r.status_code == 429 and r.headers["retry-after"] == "2"  # twice as long each time
    clock.advance(seconds=2)
    assert sign_in(c).status_code == 303
    attempts = store.attempts("rita")
    assert [a["outcome"] for a in attempts] == ["wrong"] * 5 + ["throttled", "wrong", "throttled", "ok"]
    assert {a["address"] for a in attempts} == {"testclient"} and attempts[-1]["success"]
    assert attempts[0]["at"] == datetime(2026, 1, 6, 9, 0, tzinfo=UTC)


def test_one_address_trying_many_accounts_is_throttled_too(settings, store) -> None:
    c = client_for(settings, store)
    for name in ("a1", "a2", "a3", "sam", "nobody"):
        assert sign_in(c, username=name, password="guess-123").status_code == 401
    assert sign_in(c, username="lena").status_code == 429


def test_ten_failures_lock_the_account_until_an_administrator_clears_it(settings, store, clock, db_url) -> None:
    c = client_for(settings, store)
    for _ in range(10):
        clock.advance(seconds=60)  # slow enough never to be throttled
        assert sign_in(c, password="wrong password").status_code == 401
    clock.advance(seconds=60)
    r = sign_in(c)
    assert r.status_code == 403 and "locked" in r.text
    clock.advance(hours=2)
    assert sign_in(c).status_code == 403  # the lock outlasts the window
    admin = signed_in(settings, store, "ada")
    assert "locked" in admin.get("/console/admin").text
    result = run("accounts", "unlock", "rita", "--db", db_url)
    assert result.exit_code == 0, result.output
    assert sign_in(c).status_code == 303


# ------------------------------------------------------------------ 5. headers, cookies, URLs

HEADERS = {"content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                      "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
           "x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "same-origin"}


def test_every_console_answer_carries_the_security_headers_and_no_inline_code(settings, store) -> None:
    row = queued_seller(settings)
    anonymous, c = client_for(settings, store), signed_in(settings, store, "lena")
    answers = [anonymous.get("/console/login"), anonymous.get("/console/", follow_redirects=False),
               anonymous.get("/console/static/console.css"), anonymous.get("/console/nowhere"),
               c.get("/console/"), c.get(f"/console/sellers/{row['seller_id']}"), c.get("/console/leader"),
               c.get("/console/sellers/S9999999"), c.get("/console/admin"), c.get("/console/?week=someday")]
    assert [a.status_code for a in answers] == [200, 303, 200, 404, 200, 200, 200, 404, 403, 400]
    for answer in answers:
        for name, value in HEADERS.items():
            assert answer.headers.get(name) == value, (answer.url, name)
        if answer.headers.get("content-type", "").startswith("text/html"):
            assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=|javascript:", answer.text, re.I), answer.url


def test_the_session_cookie_is_secure_behind_https(settings, store) -> None:
    plain = signed_in(settings, store)
    assert plain.cookies.jar and not any(k.secure for k in plain.cookies.jar)
    from serving.console.web import create_app

    app = Starlette(routes=[Mount("/console", create_app(settings.model_copy(update={"behind_https": True}), store))])
    c = TestClient(app, base_url="https://testserver")
    r = sign_in(c)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "; secure" in cookie.lower() and "samesite=strict" in cookie.lower() and "httponly" in cookie.lower()


def test_an_over_long_url_gets_414_at_once_on_every_route(settings, store) -> None:
    import time

    c = client_for(settings, store, guard=True)
    for path in ("/console/sellers/" + "S" * 8000, "/console/?standard=" + "x" * 8000, "/score?" + "a" * 5000):
        t = time.perf_counter()
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 414 and time.perf_counter() - t < 1.0
    assert c.get("/console/login").status_code == 200


# ------------------------------------------------------------------ 6. corrections


def test_a_reviewer_corrects_their_own_decision_and_the_latest_counts(settings, store) -> None:
    row = queued_seller(settings)
    seller = row["seller_id"]
    c = signed_in(settings, store)
    assert decide(c, row).status_code == 303
    first = store.decisions_for_seller(seller)[0]
    page = c.get(f"/console/sellers/{seller}").text
    assert f'name="corrects" value="{first.id}"' in page  # the correct form, on the reviewer's own decision
    other = signed_in(settings, store, "sam")
    assert 'name="corrects"' not in other.get(f"/console/sellers/{seller}").text
    r = decide(other, row, "no_action", corrects=str(first.id))
    assert r.status_code == 400 and "only they may correct it" in r.text
    r = decide(c, row, "escalate", corrects=str(first.id))
    assert r.status_code == 303
    assert f"Correction of decision #{first.id} recorded" in c.get(r.headers["location"]).text
    latest = store.decisions_for_seller(seller)[0]
    assert (latest.action, latest.corrects) == ("escalate", first.id)
    page = c.get(f"/console/sellers/{seller}").text
    assert f'name="corrects" value="{first.id}"' not in page and f'name="corrects" value="{latest.id}"' in page
    assert "decided: escalate (corrected)" in c.get("/console/").text
    leader = signed_in(settings, store, "lena").get("/console/leader").text
    week = leader.split(f"?week={LATEST}", 1)[1].split("</tr>", 1)[0]
    cells = [re.sub(r"<[^>]+>", "", x).strip() for x in re.findall(r"<td[^>]*>(.*?)</td>", week, re.S)]
    assert cells[4] == "1 (1 corrected)"  # one seller, one standing decision


# ------------------------------------------------------------------ 7. roles


ROUTES = {  # path -> the roles allowed
    "/console/": {"reviewer", "leader"},
    "/console/sellers/SELLER": {"reviewer", "leader"},
    "/console/leader": {"leader"},
    "/console/leader/decisions.parquet": {"leader"},
    "/console/admin": {"administrator"},
}
POSTS = {"/console/sellers/SELLER": {"reviewer", "leader"}, "/console/admin/revoke": {"administrator"},
         "/console/admin/unlock": {"administrator"}}
NAVIGATION = {"Queue": "/console/\"", "Leader": "/console/leader\"", "Accounts": "/console/admin\""}


@pytest.mark.parametrize("username", ["rita", "lena", "ada"])
def test_each_role_opens_its_routes_only_and_sees_only_them_in_the_navigation(settings, store, username) -> None:
    role, row = ROLES[username], queued_seller(settings)
    c = signed_in(settings, store, username)
    for path, allowed in ROUTES.items():
        r = c.get(path.replace("SELLER", row["seller_id"]), follow_redirects=False)
        assert r.status_code == (200 if role in allowed else 403), (role, path)
    csrf = token(c.get("/console/login", follow_redirects=True).text)
    for path, allowed in POSTS.items():
        data = {"csrf_token": csrf, "username": "sam", "record_id": row["record_id"], "week": str(LATEST),
                "action": "no_action", "note": ""}
        r = c.post(path.replace("SELLER", row["seller_id"]), data=data, follow_redirects=False)
        assert (r.status_code == 403) == (role not in allowed), (role, path, r.status_code)
    home = c.get("/console/login", follow_redirects=True).text
    nav = home.split("<nav>", 1)[1].split("</nav>", 1)[0]
    shown = {name for name, href in NAVIGATION.items() if href in nav}
    assert shown == {"reviewer": {"Queue"}, "leader": {"Queue", "Leader"}, "administrator": {"Accounts"}}[role]


def test_accounts_are_added_with_a_role_and_listed_with_it(db_url) -> None:
    result = run("accounts", "add", "lea", "--role", "leader", "--password-stdin", "--db", db_url,
                 input=PASSWORD + "\n")
    assert result.exit_code == 0 and "leader" in result.output
    bad = run("accounts", "add", "bob", "--role", "owner", "--password-stdin", "--db", db_url)
    assert bad.exit_code == 2 and "role 'owner'" in bad.output
    listed = run("accounts", "list", "--db", db_url)
    assert "lea" in listed.output and "leader" in listed.output


def test_a_database_of_the_first_revision_upgrades_to_clean_chains_and_reviewer_accounts(db_url) -> None:
    from serving.store.db import create_db_engine
    from serving.store.migrations import upgrade

    engine = create_db_engine(db_url)
    upgrade(engine, "0001")  # as `make demo` left it before this change
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO reviewers (username, display_name, password_hash, created_at) "
                          "VALUES ('demo', 'Demo', 'x', '2026-01-05 10:00:00')"))
        for i in (1, 2):
            conn.execute(text(
                "INSERT INTO decisions (record_id, seller_id, as_of, model_name, model_version, feature_spec_hash, "
                "risk_score, action, note, reviewer, decided_at, corrects_id) VALUES "
                f"('r{i}', 'S{i}', '2026-01-05', 'seller-risk', '3', 'h', 0.{i}5, 'escalate', 'é <b>', 'demo', "
                f"'2026-01-06 09:0{i}:00.123456', NULL)"))
            conn.execute(text(
                "INSERT INTO served_scores (record_id, seller_id, as_of, model_name, model_version, "
                "feature_spec_hash, policy_version, risk_score, features, served_at) VALUES "
                f"('r{i}', 'S{i}', NULL, 'seller-risk', '3', 'h', 'p', 0.1, '{{\"x\": 0.1}}', '2026-01-06 09:00:00')"))
    engine.dispose()
    store = Store.open(db_url)
    try:
        verdict = store.verify()
        assert verdict.problems == [] and verdict.rows == {"decisions": 2, "served_scores": 2}
        assert [(r.username, r.role) for r in store.reviewers()] == [("demo", "reviewer")]
        store.record_decision(RecordRef("r3", "S3", LATEST, "seller-risk", "3", "h", 0.5), "demo", "no_action", "")
        assert store.verify().problems == [] and store.decision(3).id == 3
    finally:
        store.close()
