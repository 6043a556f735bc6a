"""``/docs`` and ``/redoc`` over HTTP: every asset the pages reference is served by sdapi itself.

The rendering itself is checked in a real browser by ``tests/e2e/test_docs_browser.py``.
"""

from __future__ import annotations

import re

import pytest

ASSET_URL = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url:\s*'([^']+)'""")


def referenced_urls(html: str) -> list[str]:
    """The script, stylesheet, icon and schema URLs written into a docs page."""
    return [a or b for a, b in ASSET_URL.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_page_references_only_local_assets(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = referenced_urls(r.text)
    assert "/openapi.json" in urls
    assert len(urls) >= 3, urls  # the script, an icon, the schema (and Swagger UI's stylesheet)
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url


def test_docs_assets_have_browser_content_types(client):
    assert client.get("/docs-assets/swagger-ui/swagger-ui-bundle.js").headers["content-type"].startswith(
        ("text/javascript", "application/javascript"))
    assert client.get("/docs-assets/swagger-ui/swagger-ui.css").headers["content-type"].startswith("text/css")
    assert client.get("/docs-assets/redoc/redoc.standalone.js").headers["content-type"].startswith(
        ("text/javascript", "application/javascript"))


def test_redoc_keeps_images_local(client):
    assert client.get("/redoc").headers["content-security-policy"] == "img-src 'self' data: blob:"


def test_oauth2_redirect_page(client):
    r = client.get("/docs/oauth2-redirect")
    assert r.status_code == 200 and "oauth2" in r.text.lower()


def test_openapi_describes_the_api(client):
    document = client.get("/openapi.json").json()
    assert document["info"]["title"] == "sdapi"
    assert "A1111" in document["info"]["description"] or "AUTOMATIC1111" in document["info"]["description"]
    assert document["info"]["version"]
    assert "StableDiffusionProcessingTxt2Img" in document["components"]["schemas"]
    assert not any(path.startswith(("/docs", "/redoc")) for path in document["paths"])
