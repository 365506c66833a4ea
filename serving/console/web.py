"""The reviewer console: server-rendered pages over the weekly score table and the decision store,
as one Starlette app that `serving.api.service` mounts under /console (same process and port as the
scoring API).

    /console/login, /console/logout    sign in with a reviewer account (`Store.authenticate`)
    /console/                          the week's early-warning queue and recovery list, with filters
    /console/sellers/{seller_id}       a seller's standards week by week, scores, reasons, actions, decisions;
                                       POST: record a decision on the exact score record shown
    /console/leader                    per week: expected breaches vs capacity, coverage, decisions, outcomes

Security: every page but sign-in needs a session (a cookie signed with the settings' secret key, or a
random key kept in <data>/console.key, created 0600); every form carries a token bound to the session
and a POST without it is refused with 403; templates escape every value (autoescape on). Bad input
(an unknown seller, week or action) gets a 4xx page that says what was wrong.

Nothing is read or opened when the app is built: the key, the store and the tables on first use.
"""

from __future__ import annotations

import math
import os
import secrets
import threading
from datetime import date
from pathlib import Path
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from features.platform.settings import Settings
from serving.console import pages
from serving.console.pages import BadInput, Filters, NotFound

HERE = Path(__file__).parent
SESSION_COOKIE = "seller_risk_console"
SESSION_HOURS = 12
KEY_FILE = "console.key"
CSRF_FIELD = "csrf_token"


def secret_key(settings: Settings) -> str:
    """The key that signs sessions: the setting, else a random one kept in <data>/console.key (created
    0600 by whichever worker gets there first; the others read it)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data) / KEY_FILE
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    try:
        os.link(tmp, path)  # atomic, and refuses to replace a key another worker wrote meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


class _LazySessions:
    """SessionMiddleware whose key is found on the first request, not when the app is built."""

    def __init__(self, app, settings: Settings) -> None:
        self.app, self.settings, self._inner = app, settings, None

    async def __call__(self, scope, receive, send) -> None:
        if self._inner is None:
            self._inner = SessionMiddleware(self.app, secret_key=secret_key(self.settings),
                                            session_cookie=SESSION_COOKIE, max_age=SESSION_HOURS * 3600,
                                            same_site="strict", https_only=False)
        await self._inner(scope, receive, send)


class Console:
    """The console's state: settings, the tables reader, the store (opened on first use), templates."""

    def __init__(self, settings: Settings, store=None) -> None:
        self.settings = settings
        self.tables = pages.Tables(settings.scores_dir, settings.features_dir, settings.events_dir, settings.policy)
        self._store = store
        self._lock = threading.Lock()
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                            undefined=jinja2.StrictUndefined)
        self.templates.filters["pct"] = lambda v, d=1: "" if v is None or v != v else f"{v:.{d}%}"
        self.templates.filters["num"] = lambda v, d=1: "" if v is None or v != v else f"{v:,.{d}f}"
        self.templates.filters["words"] = lambda v: v.replace("_", " ") if isinstance(v, str) else ""  # NaN: none
        self.templates.filters["path"] = lambda v: quote(str(v), safe="")

    @property
    def store(self):
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from serving.console.store import Store

                    self._store = Store.open(self.settings.db_url)
        return self._store

    def actions(self) -> tuple[str, ...]:
        from serving.console.store import ACTIONS

        return ACTIONS

    def render(self, request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        flash = request.session.pop("flash", None) if "session" in request.scope else None
        html = self.templates.get_template(name).render(
            base=base, user=request.session.get("user"), csrf=csrf_token(request), flash=flash, **context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def problem(self, request: Request, status: int, message: str) -> HTMLResponse:
        return self.render(request, "problem.html", status=status, status_code=status, message=message)


def csrf_token(request: Request) -> str:
    """The session's form token (created with the session)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, form) -> bool:
    sent, kept = form.get(CSRF_FIELD), request.session.get("csrf")
    return isinstance(sent, str) and bool(kept) and secrets.compare_digest(sent.encode(), kept.encode())


def _int(text: str | None, name: str, default: int = 1) -> int:
    if text in (None, ""):
        return default
    try:
        return int(text)
    except ValueError:
        raise BadInput(f"{name} {text!r} is not a whole number") from None


def _local(base: str, target: str | None) -> str:
    """Where to go after signing in: a path inside the console, never another site."""
    if target and target.startswith(base + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return base + "/"


def create_app(settings: Settings | None = None, store=None) -> Starlette:
    """The console app. `store`: an open Store (tests); by default one is opened from the settings'
    database URL on first use."""
    console = Console(settings or Settings.from_env(), store)

    def signed_in(request: Request) -> str | Response:
        user = request.session.get("user")
        if user:
            return user
        base = request.scope.get("root_path", "")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{base}/login?{urlencode({'next': target})}", status_code=303)

    async def guarded(request: Request, page) -> Response:
        user = signed_in(request)
        if isinstance(user, Response):
            return user
        form = None
        if request.method == "POST":
            form = await request.form()
            if not csrf_ok(request, form):
                return console.problem(request, 403, "This form carried no valid CSRF token (it may be from an "
                                                     "older session): reload the page and send it again.")
        try:
            return await run_in_threadpool(page, request, user, form)
        except BadInput as err:
            return console.problem(request, 400, str(err))
        except NotFound as err:
            return console.problem(request, 404, str(err))

    # ---------------------------------------------------------------- sign in and out

    async def login(request: Request) -> Response:
        base = request.scope.get("root_path", "")
        target = _local(base, request.query_params.get("next"))
        if request.method == "GET":
            if request.session.get("user"):
                return RedirectResponse(target, status_code=303)
            return console.render(request, "login.html", target=target, error=None, username="")
        form = await request.form()
        if not csrf_ok(request, form):
            return console.problem(request, 403, "The sign-in form carried no valid CSRF token: reload the "
                                                 "sign-in page and try again.")
        username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        target = _local(base, str(form.get("next", "")))
        reviewer = await run_in_threadpool(console.store.authenticate, username, password) \
            if username and password else None
        if reviewer is None:
            return console.render(request, "login.html", status=401, target=target, username=username,
                                  error="Wrong username or password.")
        request.session.clear()
        request.session.update({"user": reviewer.username, "csrf": secrets.token_urlsafe(32)})
        return RedirectResponse(target, status_code=303)

    async def logout(request: Request) -> Response:
        base = request.scope.get("root_path", "")
        if request.method == "POST":
            form = await request.form()
            if not csrf_ok(request, form):
                return console.problem(request, 403, "The sign-out form carried no valid CSRF token.")
        request.session.clear()
        return RedirectResponse(f"{base}/login", status_code=303)

    # ---------------------------------------------------------------- the queue

    def queue_page(request: Request, user: str, form) -> Response:
        q = request.query_params
        as_of = console.tables.pick_week(q.get("week"))
        week = console.tables.week(as_of)
        policy = console.tables.policy(None)
        options = pages.filter_options(week.queued, policy)
        filters = Filters(q.get("standard", ""), q.get("category", ""), q.get("region", ""))
        for name, value in (("standard", filters.standard), ("category", filters.category), ("region", filters.region)):
            if value and value not in options[name]:
                raise BadInput(f"{name} {value!r} is not one of: {', '.join(options[name]) or 'none this week'}")
        shown = filters.apply(week.queued)
        decided = pages.latest_decisions(console.store.decisions_for_week(as_of))
        early = pages.paged(shown[shown["queue"] == pages.EARLY_WARNING], _int(q.get("page"), "page"),
                            pages.QUEUE_PAGE, decided)
        recovery = pages.paged(shown[shown["queue"] == pages.RECOVERY], _int(q.get("rpage"), "rpage"),
                               pages.RECOVERY_PAGE, decided)
        keep = {k: v for k, v in (("week", q.get("week", "")), ("standard", filters.standard),
                                  ("category", filters.category), ("region", filters.region)) if v}
        return console.render(request, "queue.html", as_of=as_of, weeks=console.tables.weeks(), week=week,
                              early=early, recovery=recovery, filters=filters, options=options, policy=policy,
                              keep=keep, urlencode=urlencode)

    # ---------------------------------------------------------------- a seller

    def seller_page(request: Request, user: str, form) -> Response:
        seller_id = request.path_params["seller_id"]
        as_of = console.tables.pick_week(request.query_params.get("week"))
        return _seller(request, seller_id, as_of)

    def _seller(request: Request, seller_id: str, as_of: date, status: int = 200, error: str | None = None,
                note: str = "") -> Response:
        record = console.tables.record(as_of, seller_id)
        policy = console.tables.policy(record.get("policy_version"))
        history = console.tables.history(seller_id)
        rates = console.tables.rates(seller_id, policy, as_of)
        actions = console.tables.actions(seller_id)
        return console.render(
            request, "seller.html", status=status, as_of=as_of, seller_id=seller_id, record=pages.record_view(record),
            charts=pages.rate_charts(rates, policy), history=pages.history_rows(history),
            history_chart=pages.history_chart(history), actions=actions.to_dict("records"),
            decisions=console.store.decisions_for_seller(seller_id), choices=console.actions(), error=error,
            note=note, policy=policy)

    def decide(request: Request, user: str, form) -> Response:
        from serving.console.store import DecisionRefused, RecordRef

        seller_id = request.path_params["seller_id"]
        as_of = console.tables.pick_week(str(form.get("week", "")) or None)
        action, note = str(form.get("action", "")), str(form.get("note", ""))
        record_id = str(form.get("record_id", ""))
        record = console.tables.record(as_of, seller_id)

        def again(message: str) -> Response:
            return _seller(request, seller_id, as_of, status=400, error=message, note=note)

        if action not in console.actions():
            return again(f"action {action!r} is not one of: {', '.join(console.actions())}")
        if not record.get("record_id"):
            return again("this week's score table has no record ids yet, so a decision cannot be bound to its "
                         "record: re-run `seller-risk score` for the week")
        if record_id != record["record_id"]:
            return again(f"record {record_id!r} is not the seller's {as_of} score record "
                         f"({record['record_id']}): reload the page and decide again")
        ref = RecordRef(record_id=record["record_id"], seller_id=seller_id, as_of=as_of,
                        model_name=record["model_name"], model_version=record["model_version"],
                        feature_spec_hash=record["feature_spec_hash"], risk_score=float(record["risk_score"]))
        try:
            decision = console.store.record_decision(ref, user, action, note)
        except DecisionRefused as err:
            return again(str(err))
        request.session["flash"] = (f"Decision recorded: {action.replace('_', ' ')} on {seller_id} "
                                    f"(record {decision.record_id}, {as_of}).")
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/sellers/{quote(seller_id, safe='')}?{urlencode({'week': str(as_of)})}",
                                status_code=303)

    # ---------------------------------------------------------------- the leader

    def leader_page(request: Request, user: str, form) -> Response:
        weeks = console.tables.weeks()
        if not weeks:
            raise NotFound(f"the score table {console.settings.scores_dir} holds no scored week yet")
        frame = console.store.decisions_frame()
        all_decisions = pages.decisions_table_from_frame(frame)
        rows = []
        for as_of in weeks:
            week = console.tables.week(as_of)
            mine = all_decisions[all_decisions["as_of"] == as_of]
            early = week.queued[week.queued["queue"] == pages.EARLY_WARNING]["seller_id"].tolist()
            rows.append(pages.leader_week(week, mine, console.tables.labels(as_of, early)))
        return console.render(request, "leader.html", rows=rows, reviewers=pages.per_reviewer(all_decisions),
                              isnan=math.isnan)

    async def queue(request: Request) -> Response:
        return await guarded(request, queue_page)

    async def seller(request: Request) -> Response:
        return await guarded(request, decide if request.method == "POST" else seller_page)

    async def leader(request: Request) -> Response:
        return await guarded(request, leader_page)

    routes = [
        Route("/", queue, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["GET", "POST"]),
        Route("/sellers/{seller_id:path}", seller, methods=["GET", "POST"]),  # an id may hold any character
        Route("/leader", leader, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(_LazySessions, settings=console.settings)
    app.state.console = console
    return app
