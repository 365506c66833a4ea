"""The reviewer console as one Starlette app, which `serving.api.service` mounts under /console (same
process and port as the scoring API): each page's routes, the static files and the sessions.

    /console/login, /console/logout    sign in with a reviewer account (serving.console.signin)
    /console/                          the week's early-warning queue and recovery list, with filters (queue)
    /console/sellers/{seller_id}       a seller's standards week by week, scores, reasons, actions, decisions;
                                       POST: record a decision on the exact score record shown (seller)
    /console/leader                    per week: expected breaches vs capacity, coverage, decisions, outcomes (leader)

Security: every page but sign-in needs a session (a cookie signed with the settings' secret key, or a
random key kept in <data>/console.key, created 0600); every form carries a token bound to the session
and a POST without it is refused with 403; templates escape every value (autoescape on). Bad input
(an unknown seller, week or action) gets a 4xx page that says what was wrong.

Nothing is read or opened when the app is built: the key, the store and the tables on first use.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from features.platform.settings import Settings
from serving.console import leader, queue, seller, signin
from serving.console.app import HERE, Console
from serving.console.sessions import LazySessions


def create_app(settings: Settings | None = None, store=None) -> Starlette:
    """The console app. `store`: an open Store (tests); by default one is opened from the settings'
    database URL on first use."""
    console = Console(settings or Settings.from_env(), store)
    routes = [
        *queue.routes(console),
        *signin.routes(console),
        *seller.routes(console),
        *leader.routes(console),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(LazySessions, settings=console.settings)
    app.state.console = console
    return app
