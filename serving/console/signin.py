"""Signing in and out (/login, /logout). A sign-in goes through the store's throttle (`Store.sign_in`:
429 with Retry-After after repeated failures, a lock an administrator clears), and a success opens a new
server-side session, ending the one the browser held (the id changes at every sign-in) with a fresh CSRF
token. Signing out is a POST carrying that token; it revokes the session in the database, so a copy of
the cookie opens nothing afterwards. After signing in, the account goes back to the page it asked for,
never to another site."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from serving.console.app import HOME, Console
from serving.console.sessions import SESSION_ID, client_address, csrf_ok


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
        if await run_in_threadpool(console.signed, request):
            return RedirectResponse(target, status_code=303)
        return console.render(request, "login.html", target=target, error=None, username="")
    await run_in_threadpool(console.signed, request)  # signed in already: the form carries that session's token
    form = await request.form()
    if not csrf_ok(request, form):
        return console.problem(request, 403, "The sign-in form carried no valid CSRF token: reload the "
                                             "sign-in page and try again.")
    username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    asked = str(form.get("next", ""))
    target = local_target(base, asked)
    outcome = await run_in_threadpool(console.store.sign_in, username, password, client_address(request))
    if outcome.refused == "throttled":
        response = console.render(request, "login.html", status=429, target=target, username=username,
                                  error=f"Too many failed sign-ins: wait {outcome.retry_after} s and try again.")
        response.headers["Retry-After"] = str(outcome.retry_after)
        return response
    if outcome.refused == "locked":
        return console.render(request, "login.html", status=403, target=target, username=username,
                              error="This account is locked after too many failed sign-ins: an administrator "
                                    "clears it (seller-risk accounts unlock USERNAME).")
    if outcome.reviewer is None:
        return console.render(request, "login.html", status=401, target=target, username=username,
                              error="Wrong username or password.")
    old = request.session.get(SESSION_ID)
    token, _ = await run_in_threadpool(_rotate, console, old, outcome.reviewer.username, client_address(request))
    request.session.clear()
    request.session[SESSION_ID] = token
    if not asked.startswith(base + "/"):  # no page asked for: the role's own first page
        target = base + HOME[outcome.reviewer.role]
    return RedirectResponse(target, status_code=303)


def _rotate(console: Console, old: str | None, username: str, address: str):
    """A new session for the account; the one the browser held before (if any) ends."""
    if old:
        console.store.end_session(old)
    return console.store.open_session(username, address)


async def logout(console: Console, request: Request) -> Response:
    """POST with the session's CSRF token: the session is revoked server-side and the cookie cleared."""
    base = request.scope.get("root_path", "")
    signed = await run_in_threadpool(console.signed, request)
    form = await request.form()
    if signed is not None and not csrf_ok(request, form):
        return console.problem(request, 403, "The sign-out form carried no valid CSRF token.")
    token = request.session.get(SESSION_ID)
    if token:
        await run_in_threadpool(console.store.end_session, token)
    request.session.clear()
    return RedirectResponse(f"{base}/login", status_code=303)


def routes(console: Console) -> list[Route]:
    async def login_route(request: Request) -> Response:
        return await login(console, request)

    async def logout_route(request: Request) -> Response:
        return await logout(console, request)

    return [Route("/login", login_route, methods=["GET", "POST"]),
            Route("/logout", logout_route, methods=["POST"])]  # a GET (a link, an image) cannot sign anyone out
