"""Signing in and out (/login, /logout): a reviewer account of the store (`Store.authenticate`) opens a
session with a fresh CSRF token; signing out ends it. After signing in, the reviewer goes back to the
page they asked for, never to another site."""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from serving.console.app import Console
from serving.console.sessions import csrf_ok

def local_target(base: str, target: str | None) -> str:
    """Where to go after signing in: a path inside the console, never another site."""
    if target and target.startswith(base + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return base + "/"


async def login(console: Console, request: Request) -> Response:
    """GET: the sign-in form (or straight on, when signed in already). POST: check the account."""
    base = request.scope.get("root_path", "")
    target = local_target(base, request.query_params.get("next"))
    if request.method == "GET":
        if request.session.get("user"):
            return RedirectResponse(target, status_code=303)
        return console.render(request, "login.html", target=target, error=None, username="")
    form = await request.form()
    if not csrf_ok(request, form):
        return console.problem(request, 403, "The sign-in form carried no valid CSRF token: reload the "
                                             "sign-in page and try again.")
    username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    target = local_target(base, str(form.get("next", "")))
    reviewer = await run_in_threadpool(console.store.authenticate, username, password) \
        if username and password else None
    if reviewer is None:
        return console.render(request, "login.html", status=401, target=target, username=username,
                              error="Wrong username or password.")
    request.session.clear()
    request.session.update({"user": reviewer.username, "csrf": secrets.token_urlsafe(32)})
    return RedirectResponse(target, status_code=303)


async def logout(console: Console, request: Request) -> Response:
    base = request.scope.get("root_path", "")
    if request.method == "POST":
        form = await request.form()
        if not csrf_ok(request, form):
            return console.problem(request, 403, "The sign-out form carried no valid CSRF token.")
    request.session.clear()
    return RedirectResponse(f"{base}/login", status_code=303)


def routes(console: Console) -> list[Route]:
    async def login_route(request: Request) -> Response:
        return await login(console, request)

    async def logout_route(request: Request) -> Response:
        return await logout(console, request)

    return [Route("/login", login_route, methods=["GET", "POST"]),
            Route("/logout", logout_route, methods=["GET", "POST"])]
