"""Issue 24's probes against the running service (a real `bentoml serve` of the scoring service with the
console mounted at /console, over the session's trained model and a week the batch job scored), where
the in-process tests of test_security cannot see everything: the 8,000-character URL (414 at once, not
a 408 after 5 s), a copied cookie after sign-out, the headers as BentoML sends them, a decision's
correction, and the database file's mode."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.serving.console.test_browser import Service, console_service
from tests.serving.console.test_pages import PASSWORD
from tests.serving.console.test_security import HEADERS

pytestmark = [pytest.mark.server]


@pytest.fixture(scope="module")
def service(trained, feature_dir, marketplace, tmp_path_factory) -> Iterator[Service]:
    yield from console_service(trained, feature_dir, marketplace, tmp_path_factory, "console-security")


def _token(text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


def _signed_in(service: Service) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{service.url}/console/login", timeout=10)
    r = s.post(f"{service.url}/console/login", data={"username": "rita", "password": PASSWORD,
                                                     "csrf_token": _token(page.text)}, allow_redirects=False, timeout=10)
    assert r.status_code == 303
    return s


def test_an_over_long_url_gets_414_at_once_from_the_running_service(service) -> None:
    for path in ("/console/sellers/" + "S" * 8000, "/console/?region=" + "x" * 8000, "/score?" + "a" * 8000):
        started = time.perf_counter()
        r = requests.get(service.url + path, timeout=10, allow_redirects=False)
        assert r.status_code == 414 and time.perf_counter() - started < 1.0, (path[:30], r.status_code)
    assert requests.get(f"{service.url}/console/login", timeout=10).status_code == 200  # the service is fine


def test_a_copied_cookie_opens_nothing_after_sign_out_and_every_page_has_the_headers(service) -> None:
    s = _signed_in(service)
    queue = s.get(f"{service.url}/console/", timeout=10)
    assert queue.status_code == 200
    for name, value in HEADERS.items():
        assert queue.headers.get(name) == value
    copied = requests.Session()
    copied.cookies.update(s.cookies)
    assert copied.get(f"{service.url}/console/", allow_redirects=False, timeout=10).status_code == 200
    assert s.get(f"{service.url}/console/logout", allow_redirects=False, timeout=10).status_code == 405
    r = s.post(f"{service.url}/console/logout", data={"csrf_token": _token(queue.text)}, allow_redirects=False,
               timeout=10)
    assert r.status_code == 303
    r = copied.get(f"{service.url}/console/", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and "/console/login" in r.headers["location"]


def test_the_served_database_is_private(service) -> None:
    db = Path(service.env["SELLER_RISK_DB"].removeprefix("sqlite:///"))
    for f in (db, db.with_name(db.name + "-wal")):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
