"""Who is signed in, and that a form came from the console: sessions kept in a cookie signed with the
settings' secret key (or a random key kept in <data>/console.key, created 0600), and a CSRF token bound
to the session that every form carries. The key is found on the first request, not when the app is built."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path
from urllib.parse import urlencode

from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from features.platform.settings import Settings

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


class LazySessions:
    """SessionMiddleware whose key is found on the first request, not when the app is built."""

    def __init__(self, app, settings: Settings) -> None:
        self.app, self.settings, self._inner = app, settings, None

    async def __call__(self, scope, receive, send) -> None:
        if self._inner is None:
            self._inner = SessionMiddleware(self.app, secret_key=secret_key(self.settings),
                                            session_cookie=SESSION_COOKIE, max_age=SESSION_HOURS * 3600,
                                            same_site="strict", https_only=False)
        await self._inner(scope, receive, send)


def csrf_token(request: Request) -> str:
    """The session's form token (created with the session)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, form) -> bool:
    sent, kept = form.get(CSRF_FIELD), request.session.get("csrf")
    return isinstance(sent, str) and bool(kept) and secrets.compare_digest(sent.encode(), kept.encode())


def signed_in(request: Request) -> str | Response:
    """The signed-in reviewer's username, else the redirect to sign in (and back here afterwards)."""
    user = request.session.get("user")
    if user:
        return user
    base = request.scope.get("root_path", "")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{base}/login?{urlencode({'next': target})}", status_code=303)
