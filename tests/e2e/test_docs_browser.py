"""``/docs`` and ``/redoc`` render in a real headless Chromium with every asset served by sdapi itself.

The app runs under a real uvicorn server on a loopback port. Every request the browser sends to the network
goes through a route handler that lets loopback requests through and aborts the rest, so a page that needs a
CDN fails to render here exactly as it would on an offline machine, and the test names what it tried to load.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.live_server import serve_in_thread

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RENDER_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                "(apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def base_url(settings):
    """A real server over its own app (no model load: the pages need only the schema)."""
    from sdapi.app import create_app

    with serve_in_thread(create_app(settings, load_model=False)) as url:
        yield url


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """A headless Chromium with a fresh profile, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


class PageVisit:
    """One page opened in the browser, with the network requests it sent and the script errors it raised."""

    def __init__(self, context, base_url: str):
        self.base_url = base_url
        self.sent: list[str] = []
        self.script_errors: list[str] = []
        self.page = context.new_page()
        self.page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        self.page.route("**/*", self._only_loopback)

    def _only_loopback(self, route) -> None:
        url = route.request.url
        self.sent.append(url)
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    def open(self, path: str) -> None:
        response = self.page.goto(self.base_url + path)
        assert response is not None and response.status == 200, path

    def wait_visible(self, locator) -> None:
        """Wait for ``locator``; on timeout, fail naming what the page tried to fetch from elsewhere."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            locator.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
        except PlaywrightTimeout:
            pytest.fail(f"not rendered within {RENDER_TIMEOUT_MS} ms; requests that would leave this machine: "
                        f"{self.external_requests()}; script errors: {self.script_errors}")

    def external_requests(self) -> list[str]:
        """Requests that would have left this machine (data: and blob: URLs never reach the router)."""
        return [url for url in self.sent if urlsplit(url).hostname != "127.0.0.1"]


@pytest.fixture()
def visit(browser_context, base_url):
    page_visit = PageVisit(browser_context, base_url)
    yield page_visit
    page_visit.page.close()


def test_swagger_ui_renders_txt2img_offline(visit):
    visit.open("/docs")
    txt2img = visit.page.locator('.opblock-summary-path[data-path="/sdapi/v1/txt2img"]')
    visit.wait_visible(txt2img)
    assert visit.page.locator(".info .title").inner_text().startswith("sdapi")
    schema_titles = visit.page.locator("section.models").get_by_text("StableDiffusionProcessingTxt2Img", exact=True)
    assert schema_titles.count() >= 1, "A1111's request model name is missing from the Schemas section"

    txt2img.click()
    request_body = visit.page.locator("#operations-default-text2imgapi_sdapi_v1_txt2img_post .opblock-body")
    visit.wait_visible(request_body)
    assert "sampler_index" in request_body.inner_text(), "the txt2img request example was not rendered"

    assert visit.external_requests() == [], "/docs loaded assets from outside this machine"
    assert any("/docs-assets/swagger-ui/swagger-ui-bundle.js" in url for url in visit.sent)
    assert visit.script_errors == []


def test_redoc_renders_txt2img_offline(visit):
    visit.open("/redoc")
    visit.wait_visible(visit.page.get_by_text("/sdapi/v1/txt2img").first)

    assert visit.external_requests() == [], "/redoc loaded assets from outside this machine"
    assert any("/docs-assets/redoc/redoc.standalone.js" in url for url in visit.sent)
    assert visit.script_errors == []


def test_swagger_oauth2_redirect_page_is_local(visit):
    visit.open("/docs/oauth2-redirect")
    assert "oauth2" in visit.page.content().lower()
    assert visit.external_requests() == []
