"""The console in a real headless Chromium (Debian's, driven by Playwright through its executable_path;
`make chromium` installs it) against a real `bentoml serve` of the scoring service with the console
mounted at /console, over the session's trained model and a week the batch job scored: a reviewer signs
in, opens the queue and a seller, records a decision and finds it in the seller's history and on the
leader page; a note holding a script renders as text; a form post without its CSRF token is refused;
the decision is still there after the service restarts. A screenshot of each page is saved under the
test's temporary folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.store.store import Store
from tests.serving.console.test_pages import PASSWORD, scored_tables

pytestmark = [pytest.mark.browser, pytest.mark.server]
CHROMIUM = "/usr/bin/chromium"
SCRIPT_NOTE = "Spoke to them <script>alert(1)</script> about late deliveries"


def _chromium() -> str:
    path = shutil.which("chromium") or CHROMIUM
    if not Path(path).exists():
        message = f"Debian's chromium is not installed ({CHROMIUM}): run `make chromium`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Service:
    """A `bentoml serve` process with the console, restartable on the same port and data."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        from tests.serving.test_service import _free_port

        self.env, self.folder, self.port = env, folder, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.starts = 0

    def start(self) -> None:
        from tests.serving.test_service import _serve, _wait_ready

        self.starts += 1
        log = self.folder / f"serve-{self.starts}.log"
        self.proc = _serve(self.env, self.port, log)
        _wait_ready(self.proc, self.url, log)

    def stop(self) -> None:
        from tests.serving.test_service import _stop

        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


def console_service(trained, feature_dir, marketplace, tmp_path_factory, name: str,
                    **reviewer) -> Iterator[Service]:
    """A real `seller-risk serve` on the session's scored weeks, with one account, `rita` (`reviewer`: the
    rest of `Store.add_reviewer`'s arguments), in a folder of its own; stopped at the end."""
    from tests.serving.test_service import _env

    scores, _ = scored_tables(tmp_path_factory, trained, feature_dir)
    folder = tmp_path_factory.mktemp(name)
    data = folder / "data"
    db = f"sqlite:///{data / 'console.db'}"
    store = Store.open(db)
    store.add_reviewer("rita", PASSWORD, **reviewer)
    store.close()
    env = _env(trained, feature_dir, f"models:/seller-risk/{trained.version}", SELLER_RISK_DATA=str(data),
               SELLER_RISK_SCORES=str(scores), SELLER_RISK_EVENTS=str(marketplace[0]), SELLER_RISK_DB=db)
    svc = Service(env, folder)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def service(trained, feature_dir, marketplace, tmp_path_factory) -> Iterator[Service]:
    yield from console_service(trained, feature_dir, marketplace, tmp_path_factory, "console-browser",
                               display_name="Rita Reviewer", role="leader")  # also opens the leader page


@pytest.fixture(scope="module")
def browser(service) -> Iterator:
    path = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


def _signed_in(browser, service: Service, dialogs: list[str]):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{service.url}/console/")
    assert "/console/login" in page.url
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{service.url}/console/")
    return page


def test_a_reviewer_works_the_queue_in_a_real_browser(browser, service, tmp_path) -> None:
    dialogs: list[str] = []
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{service.url}/console/")
    assert "/console/login" in page.url
    page.screenshot(path=tmp_path / "login.png", full_page=True)
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{service.url}/console/")
    assert page.locator("h1").inner_text().startswith("Review queue, week of")
    first = page.locator("#early-warning + table.list tbody tr").first
    seller = first.locator("td").nth(1).inner_text()
    assert first.locator("td").nth(8).inner_text() == "open"
    page.screenshot(path=tmp_path / "queue.png", full_page=True)

    first.locator("a").click()
    page.wait_for_url(f"**/console/sellers/{seller}?week=*")
    assert page.locator("h1 .id").inner_text() == seller
    assert page.locator("figure.chart svg line.threshold").count() == 8
    record_id = page.locator("input[name=record_id]").get_attribute("value")
    assert record_id and record_id in page.locator("p.record").inner_text()
    page.screenshot(path=tmp_path / "seller.png", full_page=True)

    page.check("input[name=action][value=contact_seller]")
    page.fill("textarea[name=note]", SCRIPT_NOTE)
    page.click("form.decide button[type=submit]")
    page.wait_for_selector("p.flash")
    assert page.locator("p.flash").inner_text().startswith(f"Decision recorded: contact seller on {seller}")
    row = page.locator("table.decisions tbody tr").first
    assert row.locator("td").nth(1).inner_text() == "rita"
    assert row.locator("td").nth(2).inner_text() == "contact seller"
    assert row.locator("td").nth(3).inner_text() == SCRIPT_NOTE  # the script is text on the page
    assert page.locator("table.decisions script").count() == 0
    page.screenshot(path=tmp_path / "seller-decided.png", full_page=True)

    page.goto(f"{service.url}/console/")
    mine = page.locator("#early-warning + table.list tbody tr", has_text=seller).first
    assert mine.locator("td").nth(8).inner_text() == "decided: contact seller"
    assert mine.locator("td").nth(9).inner_text() == "rita"

    page.click("header nav a:text('Leader')")
    page.wait_for_url(f"{service.url}/console/leader")
    latest = page.locator("table.leader tbody tr").first.locator("td")
    assert int(latest.nth(5).inner_text()) >= 1
    assert page.locator("table.reviewers tbody tr", has_text="rita").locator("td").nth(1).inner_text() == "1"
    page.screenshot(path=tmp_path / "leader.png", full_page=True)

    page.goto(f"{service.url}/console/sellers/%3Cscript%3Ealert(2)%3C%2Fscript%3E")
    assert "<script>alert(2)</script>" in page.locator("p.problem").inner_text()
    assert dialogs == []  # no script ran, on any page
    for name in ("login", "queue", "seller", "seller-decided", "leader"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000


def test_a_form_post_without_its_csrf_token_is_refused(browser, service) -> None:
    page = _signed_in(browser, service, [])
    seller = page.locator("#early-warning + table.list tbody tr").nth(1).locator("td").nth(1).inner_text()
    page.goto(f"{service.url}/console/sellers/{seller}")
    record_id = page.locator("input[name=record_id]").get_attribute("value")
    week = page.locator("input[name=week]").get_attribute("value")
    # the signed-in session's cookie goes along, the token does not
    r = page.request.post(f"{service.url}/console/sellers/{seller}",
                          form={"record_id": record_id, "week": week, "action": "escalate", "note": "forged"})
    assert r.status == 403
    assert "CSRF token" in r.text()
    page.reload()
    assert "forged" not in page.locator("table.decisions").inner_text()


def test_a_decision_survives_a_restart_of_the_service(browser, service) -> None:
    page = _signed_in(browser, service, [])
    seller = page.locator("#early-warning + table.list tbody tr").nth(2).locator("td").nth(1).inner_text()
    page.goto(f"{service.url}/console/sellers/{seller}")
    page.check("input[name=action][value=formal_warning]")
    page.fill("textarea[name=note]", "warned before the restart")
    page.click("form.decide button[type=submit]")
    page.wait_for_selector("p.flash")
    page.context.close()
    service.stop()
    service.start()
    page = _signed_in(browser, service, [])  # the session key was kept in <data>/console.key, the account in the db
    page.goto(f"{service.url}/console/sellers/{seller}")
    row = page.locator("table.decisions tbody tr").first
    assert row.locator("td").nth(2).inner_text() == "formal warning"
    assert row.locator("td").nth(3).inner_text() == "warned before the restart"
