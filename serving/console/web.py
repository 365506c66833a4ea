"""The reviewer console as one Starlette app, which `serving.api.service` mounts under /console (same
process and port as the scoring API): each page's routes, the static files and the sessions.

    /console/login, /console/logout    sign in with a reviewer account (serving.console.signin)
    /console/                          the week's early-warning queue and recovery list, with filters (queue)
    /console/sellers/{seller_id}       a seller's standards week by week, scores, reasons, actions, decisions;
                                       POST: record a decision on the exact score record shown (seller)
    /console/leader                    per week: expected breaches vs capacity, coverage, decisions, outcomes (leader)
    /console/leader/decisions.parquet  every decision, as `seller-risk decisions export` writes it (leader)
    /console/admin                     accounts, their sessions and sign-in locks; POST revoke, unlock (admin)

Security: every page but sign-in needs a live server-side session (serving.console.sessions) and a role
allowed on it (serving.console.app); every form carries a token bound to the session and a POST without
it is refused with 403; templates escape every value (autoescape on). Every answer carries a strict
Content-Security-Policy (the console's own files only: no inline script or style), refuses framing,
sniffing and cross-site referrers. Bad input (an unknown seller, week or action) gets a 4xx page that
says what was wrong.

Nothing is read or opened when the app is built: the key, the store and the tables on first use.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from features.platform.settings import Settings
from serving.console import admin, leader, queue, seller, signin
from serving.console.app import HERE, Console
from serving.console.sessions import LazySessions

SECURITY_HEADERS = (
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
"""On every console answer (pages, problems, redirects, static files)."""


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every HTTP answer of the app it wraps."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {k for k, _ in SECURITY_HEADERS}
                message["headers"] = [*(h for h in message.get("headers", []) if h[0].lower() not in names),
                                      *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None, store=None) -> Starlette:
    """The console app. `store`: an open Store (tests); by default one is opened from the settings'
    database URL on first use."""
    console = Console(settings or Settings.from_env(), store)
    routes = [
        *queue.routes(console),
        *signin.routes(console),
        *seller.routes(console),
        *leader.routes(console),
        *admin.routes(console),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(LazySessions, settings=console.settings)
    app.add_middleware(SecurityHeaders)  # outermost: on the sessions' answers too
    app.state.console = console
    return app
