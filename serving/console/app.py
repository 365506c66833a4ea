"""What every console page shares: `Console`, the app's state (settings, the tables reader, the
decisions store opened on first use, the templates), with its ways to answer (a page, a problem page)
and `guarded`, the door of every page but sign-in: a live server-side session, a role allowed on the
page (403 otherwise), a valid CSRF token on a POST, and bad input or an unknown week or seller answered
with a 4xx page that says what was wrong.

Roles: a reviewer works the queue and sellers and records decisions (REVIEWING); a leader does too, and
sees the leader page and exports (LEADING); an administrator manages accounts, sessions and sign-in locks
(ADMINISTERING) and nothing else."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from features.platform.settings import Settings
from serving.console.errors import BadInput, NotFound
from serving.console.sessions import SESSION_ID, account, csrf_ok, csrf_token, lifetimes, to_sign_in
from serving.console.tables import Tables

HERE = Path(__file__).parent

REVIEWING = ("reviewer", "leader")
LEADING = ("leader",)
ADMINISTERING = ("administrator",)
HOME = {"reviewer": "/", "leader": "/", "administrator": "/admin"}
"""Where each role lands after signing in, when it asked for no page."""


class Console:
    """The console's state: settings, the tables reader, the store (opened on first use), templates."""

    def __init__(self, settings: Settings, store=None) -> None:
        self.settings = settings
        self.tables = Tables(settings.scores_dir, settings.features_dir, settings.events_dir, settings.policy)
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
                    from serving.store.store import Store

                    self._store = Store.open(self.settings.db_url)
        return self._store

    def actions(self) -> tuple[str, ...]:
        from serving.store.store import ACTIONS

        return ACTIONS

    def render(self, request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        flash = request.session.pop("flash", None) if "session" in request.scope else None
        signed = account(request)
        html = self.templates.get_template(name).render(
            base=base, user=signed.username if signed else None, role=signed.role if signed else None,
            csrf=csrf_token(request), flash=flash, REVIEWING=REVIEWING, LEADING=LEADING, ADMINISTERING=ADMINISTERING,
            **context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def problem(self, request: Request, status: int, message: str) -> HTMLResponse:
        return self.render(request, "problem.html", status=status, status_code=status, message=message)

    def signed(self, request: Request):
        """The live session the request's cookie names (`ConsoleSession`), else None; kept on the request."""
        token = request.session.get(SESSION_ID)
        if not token:
            return None
        found = self.store.session(token, *lifetimes(self.settings))
        request.state.account = found
        return found

    async def guarded(self, request: Request, page: Page, roles: tuple[str, ...] = REVIEWING) -> Response:
        """`page(console, request, user, form)` for a signed-in account whose role is one of `roles`, in a
        worker thread (it reads tables and the store); a POST's form must carry the session's CSRF token."""
        signed = await run_in_threadpool(self.signed, request)
        if signed is None:
            request.session.pop(SESSION_ID, None)
            return to_sign_in(request)
        if signed.role not in roles:
            return self.problem(request, 403, f"This page is not for the {signed.role} role: it is for "
                                              f"{' and '.join(r + 's' for r in roles)}.")
        user = signed.username
        form = None
        if request.method == "POST":
            form = await request.form()
            if not csrf_ok(request, form):
                return self.problem(request, 403, "This form carried no valid CSRF token (it may be from an "
                                                  "older session): reload the page and send it again.")
        try:
            return await run_in_threadpool(page, self, request, user, form)
        except BadInput as err:
            return self.problem(request, 400, str(err))
        except NotFound as err:
            return self.problem(request, 404, str(err))


Page = Callable[[Console, Request, str, object], Response]
"""A page behind sign-in: (console, request, the reviewer's username, the POST's form or None) -> response."""
