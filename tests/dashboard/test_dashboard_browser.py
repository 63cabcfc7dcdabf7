"""A real browser (headless Debian Chromium driven by Playwright) answers "which of today's images are grade A,
and what did the retries change?" over a store of real images and full metadata, with the strict CSP on.

Screenshots go to test-artifacts/dashboard/. The app is mounted under /dashboard, as next to the MCP server.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from starlette.applications import Starlette
from starlette.routing import Mount

from dashboard import build_app
from storage.index import Index
from storage.local import LocalStore
from tests.dashboard.conftest import make_settings
from tests.dashboard.dataset import EXTRA, SPECS, XSS_PROMPT, Dataset, fill
from tests.dashboard.live import LiveServer
from tests.storage.seaweed import wait_until

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
IMAGES_LOADED = "[...document.images].every(function (i) { return i.complete && i.naturalWidth > 0; })"


def wait_js(page: Page, expression: str, timeout: float = 30) -> None:
    """Poll ``expression`` from the test side (Playwright's own wait_for_function polls with eval() inside the
    page, which the dashboard's Content-Security-Policy rightly refuses)."""
    if not wait_until(lambda: bool(page.evaluate(expression)), timeout=timeout):
        raise AssertionError(f"still false after {timeout} s: {expression}")


def charts_drawn(page: Page, count: int) -> None:
    wait_js(page, f"document.body.dataset.chartsDrawn === '{count}'")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            "BROWSER TESTS SKIPPED: /usr/bin/chromium is missing. Install it with `apt-get install -y chromium` "
            "(`./run test` does this) - the dashboard's real-browser checks did NOT run"
        )
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Dataset]]:
    tmp = tmp_path_factory.mktemp("dashboard-browser")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("COMFY_QUALITY_"):
                mp.delenv(name)
        settings = make_settings(tmp)
    store = LocalStore(settings.storage.local_root)
    with Index(settings.storage.index_path) as index:
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs an event loop in this thread
            data = pool.submit(asyncio.run, fill(store, index, SPECS + EXTRA)).result(timeout=120)
        outer = Starlette(routes=[Mount("/dashboard", app=build_app(settings, store=store, index=index))])
        with LiveServer(outer) as server:
            yield server.url + "/dashboard", data


class Watch:
    """Console errors (CSP violations are reported there), uncaught page errors and dialogs (alert)."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _dialog(self, dialog: object) -> None:
        self.problems.append("a dialog opened: script ran")
        dialog.dismiss()  # type: ignore[attr-defined]


def shot(page: Page, name: str, *, full: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=full)


def card_ids(page: Page) -> set[str]:
    return set(
        page.locator("a.card").evaluate_all(
            "function (cards) { return cards.map(function (c) { return c.dataset.id; }); }"
        )
    )


def test_todays_grade_a_and_what_the_retries_changed(browser: Browser, served: tuple[str, Dataset]) -> None:
    base, data = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    watch = Watch(page)
    page.goto(base + "/")
    wait_js(page, IMAGES_LOADED)
    assert page.locator("a.card").count() == len(SPECS) + len(EXTRA)
    shot(page, "01-gallery.png")

    page.click("a.chip[data-period=today]")  # click 1: today
    page.wait_for_url(re.compile(r"period=today"))
    page.click("a.grade-chip[data-grade=A]")  # click 2: grade A
    page.wait_for_url(re.compile(r"grade=A"))
    wait_js(page, IMAGES_LOADED)
    assert "period=today" in page.url and "grade=A" in page.url
    today_a = {data.ids[k] for k in ("statue", "sushi", "sushi-2")}
    assert card_ids(page) == today_a
    assert page.locator("a.card .badge").all_inner_texts() == ["A"] * 3
    shot(page, "02-today-grade-a.png")

    page.click(f"a.card[data-id={data.ids['statue']}]")  # click 3: a generation
    page.wait_for_url(re.compile(r"/dashboard/generations/"))
    charts_drawn(page, 1)
    wait_js(page, IMAGES_LOADED)
    attempts = page.locator(".attempt")
    assert attempts.count() == 3
    assert page.locator(".attempt.best").get_attribute("data-attempt") == "3"
    outcomes = page.locator(".attempt .outcome").all_inner_texts()
    assert outcomes[0].startswith("first attempt") and outcomes[1].startswith("helped") and "+1.40" in outcomes[2]
    second_changes = page.locator(".attempt[data-attempt='2'] .changes li").all_inner_texts()
    assert "steps 30 → 40" in second_changes and "prompt: added “highly detailed”" in second_changes
    assert page.locator(".attempt img").count() == 3  # every attempt's image is shown side by side
    assert "4.80 → 8.30" in page.locator("#summary").inner_text()
    shot(page, "03-generation.png")
    page.set_viewport_size({"width": 1400, "height": 1300})
    shot(page, "03-generation-top.png", full=False)  # the README's screenshot (docs/dashboard.png)
    page.set_viewport_size({"width": 1400, "height": 1000})

    page.locator(".attempt[data-attempt='1'] details summary").first.click()  # its parameters
    assert page.locator(".attempt[data-attempt='1'] details").first.locator("th", has_text="seed").is_visible()

    page.click("nav >> text=Charts")
    page.wait_for_url(re.compile(r"/dashboard/charts"))
    charts_drawn(page, 4)
    shot(page, "04-charts.png")
    page.click("#grades-table a >> nth=0")  # the A column goes to the gallery filtered by grade A
    page.wait_for_url(re.compile(r"/dashboard/\?.*grade=A"))
    wait_js(page, IMAGES_LOADED)
    assert page.locator("a.card .badge").all_inner_texts() == ["A"] * len(
        [d for d in data.documents.values() if d.quality and d.quality.grade == "A"]
    )
    assert watch.problems == []
    page.close()


def test_markup_in_a_prompt_stays_text(browser: Browser, served: tuple[str, Dataset]) -> None:
    base, data = served
    page = browser.new_page()
    watch = Watch(page)
    page.goto(base + f"/generations/{data.ids['xss']}")
    charts_drawn(page, 1)
    assert page.locator("#prompt").text_content() == XSS_PROMPT
    assert page.locator("#prompt b").count() == 0 and page.locator("#prompt script").count() == 0
    page.goto(base + "/?q=bold")
    assert page.locator("a.card .prompt").all_text_contents() == [XSS_PROMPT]
    assert watch.problems == []
    page.close()


def test_filter_form(browser: Browser, served: tuple[str, Dataset]) -> None:
    base, data = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    watch = Watch(page)
    page.goto(base + "/")
    page.fill("input[name=q]", "statue of a man")
    page.check("input[name=grade][value=A]")
    page.select_option("select[name=sort]", "composite")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"sort=composite"))
    wait_js(page, IMAGES_LOADED)
    expected = ["bronze", "statue", "statue-old"]  # sorted by composite, highest first: 8.4, 8.3, 8.1
    assert page.locator("a.card").evaluate_all(
        "function (cards) { return cards.map(function (c) { return c.dataset.id; }); }"
    ) == [data.ids[k] for k in expected]
    page.click("text=Score ranges")
    page.fill("input[name=min_gain]", "1")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"min_gain=1"))
    wait_js(page, IMAGES_LOADED)
    assert card_ids(page) == {data.ids["statue"], data.ids["statue-old"]}
    shot(page, "05-filters.png", full=False)
    assert watch.problems == []
    page.close()
