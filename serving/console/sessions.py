"""Who is signed in, and that a form came from the console. Sessions are kept server-side, in the store
(`Store.open_session`, `Store.session`): the browser's cookie, signed with the settings' secret key (or a
random key kept in <data>/console.key, created 0600), carries only the session's random id, so signing
out, an idle timeout, the absolute lifetime and an administrator can end a session, and a copied cookie
dies with it. Every form carries the session's CSRF token (before sign-in, one kept in the cookie). The
cookie is `Secure` when the settings say the service is reached over HTTPS. The key is found on the
first request, not when the app is built."""

from __future__ import annotations

import os
import secrets
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from features.platform.settings import Settings

SESSION_COOKIE = "seller_risk_console"
KEY_FILE = "console.key"
CSRF_FIELD = "csrf_token"
SESSION_ID = "sid"
"""The cookie's field holding the server-side session's id."""


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


class LazySessions:
    """SessionMiddleware whose key is found on the first request, not when the app is built."""

    def __init__(self, app, settings: Settings) -> None:
        self.app, self.settings, self._inner = app, settings, None

    async def __call__(self, scope, receive, send) -> None:
        if self._inner is None:
            self._inner = SessionMiddleware(self.app, secret_key=secret_key(self.settings),
                                            session_cookie=SESSION_COOKIE, max_age=self.settings.session_hours * 3600,
                                            same_site="strict", https_only=self.settings.behind_https)
        await self._inner(scope, receive, send)


def lifetimes(settings: Settings) -> tuple[timedelta, timedelta]:
    """(idle timeout, absolute lifetime) of a console session."""
    return timedelta(minutes=settings.session_idle_minutes), timedelta(hours=settings.session_hours)


def account(request: Request):
    """The signed-in session (`ConsoleSession`) the request was found to carry, else None."""
    return getattr(request.state, "account", None)


def csrf_token(request: Request) -> str:
    """The form token: the signed-in session's, else one kept in the cookie for the sign-in form."""
    signed = account(request)
    if signed is not None:
        return signed.csrf
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, form) -> bool:
    sent = form.get(CSRF_FIELD)
    signed = account(request)
    kept = signed.csrf if signed is not None else request.session.get("csrf")
    return isinstance(sent, str) and bool(kept) and secrets.compare_digest(sent.encode(), kept.encode())


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def to_sign_in(request: Request) -> Response:
    """The redirect to sign in (and back here afterwards)."""
    base = request.scope.get("root_path", "")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{base}/login?{urlencode({'next': target})}", status_code=303)
