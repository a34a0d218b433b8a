"""The portal in Debian's chromium, driven by Playwright, against a live
`recast serve` on loopback whose in-process runners execute the workflow:
browse the catalogue, sign in, submit a three-point scan of the demo analysis,
watch it finish, read the results and the contour. A screenshot of each page
goes to tests/artifacts/portal/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.conftest import DEMO, REPO
from tests.servers import free_port, wait_for_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "tests" / "artifacts" / "portal"
PASSWORD = "wonderland-1865"
SCAN = ["stop_450_100", "stop_550_300", "stop_650_100"]
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FINISH_MS = 8 * 60 * 1000  # three demo points take about 1.5 minutes here

playwright = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "needs Debian's chromium (apt-get install chromium)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    var = tmp_path_factory.mktemp("portal-server")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL")
    }
    env.update(RECAST_VAR_DIR=str(var), RECAST_ENVS_DIR=str(settings.RECAST_ENVS_DIR))
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    subprocess.run(
        [*manage, "catalogue_load"], env=env, check=True, capture_output=True
    )
    make_user = (
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user('alice', password='{PASSWORD}')"
    )
    subprocess.run([*manage, "shell", "-c", make_user], env=env, check=True)

    port = free_port()
    recast = str(Path(sys.executable).with_name("recast"))
    with (var / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [recast, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_server(url, process, var / "server.log", path="/", seconds=120)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium with a fresh profile (Playwright makes one per launch)."""
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_FLAGS
        )
        yield launched
        launched.close()


class Watched:
    """A page that records answers with an error status, and console errors
    (a CSP violation shows as one)."""

    def __init__(self, browser: Any, **options: Any) -> None:
        self.context = browser.new_context(  # a fresh profile for each test
            viewport={"width": 1280, "height": 900}, **options
        )
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self.console)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on(
            "response",
            lambda r: (
                self.problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
            ),
        )

    def console(self, message: Any) -> None:
        # A failed load is also a console error; the response records it.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(message.text)

    def shot(self, name: str, full: bool = True) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


def image_loaded(page: Any, selector: str) -> bool:
    """Whether the image at ``selector`` loads (an SVG that fails to parse or
    a 404 never gets a width)."""
    loaded = "s => { const i = document.querySelector(s); "
    loaded += "return i && i.complete && i.naturalWidth > 0; }"
    page.wait_for_function(loaded, arg=selector, timeout=30_000)
    return True


def test_a_scan_submitted_in_the_browser_finishes_with_its_results_and_contour(
    server: str, browser: Any
) -> None:
    watched = Watched(browser)
    page = watched.page

    page.goto(f"{server}/")
    watched.shot("01-catalogue")
    page.get_by_role("searchbox", name="Search").fill("stop")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Demo: top squark").click()
    assert page.url == f"{server}/analyses/{DEMO}/"
    assert image_loaded(page, "figure.graph img")
    watched.shot("02-analysis")

    page.get_by_role("link", name="Submit a signal model").click()
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    watched.shot("03-sign-in")
    page.get_by_role("button", name="Sign in").click()
    assert page.url == f"{server}/analyses/{DEMO}/submit/"

    page.get_by_label("A scan of patches chosen from the patchset").check()
    page.get_by_role("button", name="Submit").click()
    error = page.locator("#field-patches .error")
    assert error.inner_text() == "choose at least one patch for the scan"
    watched.shot("04-submit-error")

    for name in SCAN:
        page.get_by_label(name, exact=True).check()
    watched.shot("05-submit")
    page.get_by_role("button", name="Submit").click()
    assert "/requests/" in page.url
    watched.shot("06-request-running")

    status = page.locator('[data-field="request-status"]')
    status.filter(has_text="succeeded").wait_for(timeout=FINISH_MS)
    page.wait_for_load_state("load")
    rows = page.locator("#points tbody tr[data-run]")
    assert rows.count() == 3
    assert sorted(rows.locator("th a").all_inner_texts()) == SCAN
    assert all(t == "succeeded" for t in rows.locator(".status").all_inner_texts())
    assert image_loaded(page, "figure.plot img")
    assert image_loaded(page, "figure.graph img")
    watched.shot("07-request-results")

    page.get_by_role("link", name=SCAN[2], exact=True).click()
    assert page.get_by_role("heading", name=f"Point {SCAN[2]}").is_visible()
    assert image_loaded(page, "figure.plot img")
    watched.shot("08-point")

    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="My requests"
    ).click()
    assert page.locator("tbody tr").count() == 1
    watched.shot("09-my-requests")

    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="API tokens"
    ).click()
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Make a token").click()
    assert page.get_by_role("textbox", name="Token").input_value().startswith("rc_")
    watched.shot("10-tokens")
    page.get_by_role("button", name="Revoke the token").click()
    assert page.get_by_text("No active token.").is_visible()

    # The one error answer is the refused submission.
    assert watched.problems == [f"400 {server}/analyses/{DEMO}/submit/"]


def test_the_pages_fit_a_phone_and_the_keyboard(server: str, browser: Any) -> None:
    watched = Watched(browser)
    page = watched.page
    page.set_viewport_size({"width": 390, "height": 844})

    page.goto(f"{server}/")
    catalogue_width = page.evaluate("document.documentElement.scrollWidth")
    watched.shot("11-phone-catalogue")
    page.goto(f"{server}/analyses/{DEMO}/")
    analysis_width = page.evaluate("document.documentElement.scrollWidth")
    watched.shot("12-phone-analysis")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")

    assert catalogue_width <= 390 and analysis_width <= 390
    assert focused == "Skip to the content"
    assert watched.problems == []


def test_browsing_and_the_submit_form_work_without_javascript(
    server: str, browser: Any
) -> None:
    watched = Watched(browser, java_script_enabled=False)
    page = watched.page

    page.goto(f"{server}/")
    page.get_by_label("Keyword").select_option("stop")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Demo: top squark").click()

    assert page.locator("#group-point").is_visible()
    assert page.locator("#group-patches").is_visible()
    assert page.locator("#group-patchset").is_visible()
    watched.shot("13-no-javascript-analysis")


def test_a_credential_added_in_the_portal_is_offered_on_the_submit_form(
    server: str, browser: Any
) -> None:
    watched = Watched(browser)
    page = watched.page

    page.goto(f"{server}/credentials/")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Name", exact=True).fill("eos-token")
    page.get_by_label("Value").fill("eos-secret-Qx7Lp3Vb")  # made up
    page.get_by_role("button", name="Store it").click()
    page.goto(f"{server}/analyses/{DEMO}/submit/")
    page.get_by_label("eos-token", exact=True).check()
    # A refused form keeps the tick; nothing runs, so the test stays short.
    page.get_by_label("A scan of patches chosen from the patchset").check()
    page.get_by_role("button", name="Submit").click()
    watched.shot("14-submit-credentials")

    assert page.locator("#field-patches .error").is_visible()
    assert page.get_by_label("eos-token", exact=True).is_checked()
    assert "eos-secret" not in page.content()
    assert watched.problems == [f"400 {server}/analyses/{DEMO}/submit/"]
