"""The administrator's page (/console/admin): every account with its role, open sessions and sign-in
lock; POST /console/admin/revoke ends an account's sessions, POST /console/admin/unlock clears its lock.
Accounts are created with `seller-risk accounts add USERNAME --role ROLE` (the password never passes
through the web)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from serving.console.app import ADMINISTERING, Console
from serving.console.errors import BadInput


def admin_page(console: Console, request: Request, user: str, form) -> Response:
    return console.render(request, "admin.html", accounts=console.store.reviewers(),
                          sessions=console.store.open_sessions())


def _account(console: Console, form) -> str:
    username = str(form.get("username", ""))
    if username not in {r.username for r in console.store.reviewers()}:
        raise BadInput(f"no account {username!r}")
    return username


def revoke(console: Console, request: Request, user: str, form) -> Response:
    """End every session of the form's account (the administrator's own too, when it is theirs)."""
    username = _account(console, form)
    ended = console.store.revoke_sessions(username)
    request.session["flash"] = f"{ended} session(s) of {username} ended."
    return RedirectResponse(f"{request.scope.get('root_path', '')}/admin", status_code=303)


def unlock(console: Console, request: Request, user: str, form) -> Response:
    username = _account(console, form)
    console.store.unlock(username)
    request.session["flash"] = f"{username} may sign in again."
    return RedirectResponse(f"{request.scope.get('root_path', '')}/admin", status_code=303)


def routes(console: Console) -> list[Route]:
    async def page(request: Request) -> Response:
        return await console.guarded(request, admin_page, ADMINISTERING)

    async def revoke_route(request: Request) -> Response:
        return await console.guarded(request, revoke, ADMINISTERING)

    async def unlock_route(request: Request) -> Response:
        return await console.guarded(request, unlock, ADMINISTERING)

    return [Route("/admin", page, methods=["GET"]), Route("/admin/revoke", revoke_route, methods=["POST"]),
            Route("/admin/unlock", unlock_route, methods=["POST"])]
