"""The built-in page over HTTP: ``/ui`` always, ``/`` unless ``--nowebui``, its files with browser content types,
and ``--api-auth`` in front of all of it.

The page only needs files, not a model: these apps run without their lifespan (no state, nothing loaded).
``tests/e2e/test_ui_browser.py`` drives the page in a real browser against a real server.
"""

from __future__ import annotations

import base64
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.cli import build_parser, settings_from_args
from sdapi.settings import Settings

ASSET_URL = re.compile(r"""(?:src|href)="(ui/[^"]+)\"""")
IMPORT = re.compile(r"""^import .*?"\./([^"]+)";$""", re.MULTILINE)
ROOT = Path(__file__).resolve().parents[2]
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def page_client(tmp_path, **settings) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path, **settings), load_model=False))


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_ui_and_root_serve_the_page(tmp_path):
    client = page_client(tmp_path)
    for path in ("/ui", "/"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert "<title>sdapi</title>" in r.text and 'id="generate-form"' in r.text
    assert client.get("/ui/", follow_redirects=False).status_code in (307, 308)  # to /ui, where the URLs resolve


def test_every_file_the_page_loads_is_served_with_its_type(tmp_path):
    client = page_client(tmp_path)
    todo, seen = ASSET_URL.findall(client.get("/ui").text), set()
    assert todo == ["ui/style.css", "ui/app.js"]
    while todo:  # the stylesheet, the entry module, and every module it imports, transitively
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        r = client.get("/" + url)
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith(CONTENT_TYPES[url[url.rindex("."):]]), url
        assert r.headers["cache-control"] == "no-cache"
        todo += ["ui/" + name for name in IMPORT.findall(r.text)]
    assert {"ui/api.js", "ui/generate.js", "ui/gallery.js", "ui/training.js", "ui/chart.js", "ui/xyz.js"} <= seen


@pytest.mark.parametrize("path", ["/ui/__init__.py", "/ui/nothing.js", "/ui/%2e%2e%2fapp.py",
                                  "/ui/..%2Fsettings.py", "/ui/.hidden.js"])
def test_only_the_pages_own_files_are_served(tmp_path, path):
    assert page_client(tmp_path).get(path).status_code == 404


def test_page_uses_nothing_from_elsewhere(tmp_path):
    client = page_client(tmp_path)
    texts = [client.get(p).text for p in ("/ui", "/ui/style.css", "/ui/app.js", "/ui/api.js")]
    for text in texts:
        assert "http://" not in text and "https://" not in text and "@import" not in text and "//cdn" not in text


def test_nowebui_keeps_only_ui(tmp_path):
    args, unknown = build_parser().parse_known_args(["serve", "--nowebui", "--data-dir", str(tmp_path)])
    settings = settings_from_args(args, unknown)
    assert settings.web_ui is False and settings.port == 7861 and "--nowebui" not in settings.ignored_flags
    client = TestClient(create_app(settings, load_model=False))
    r = client.get("/")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}  # FastAPI's unmatched-route answer, as A1111 --nowebui gives
    assert client.get("/ui").status_code == 200 and client.get("/ui/app.js").status_code == 200


def test_page_routes_stay_out_of_the_schema(tmp_path):
    paths = page_client(tmp_path).get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


@pytest.mark.parametrize("path", ["/", "/ui", "/ui/app.js", "/ui/style.css", "/ui/nothing.js"])
def test_api_auth_protects_the_page(tmp_path, path):
    client = page_client(tmp_path, api_auth="alice:s3:cr3t")
    r = client.get(path)
    # The browser asks for credentials (WWW-Authenticate) and then sends them with the page's API calls too.
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Basic"
    assert client.get(path, headers=basic("alice", "wrong")).status_code == 401
    expected = 404 if path.endswith("nothing.js") else 200
    assert client.get(path, headers=basic("alice", "s3:cr3t")).status_code == expected


def test_a_wheel_carries_the_pages_files():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["sdapi"]
    files = [p.relative_to(ROOT / "sdapi").as_posix() for p in (ROOT / "sdapi" / "web").iterdir()
             if p.is_file() and p.suffix in CONTENT_TYPES]
    assert "web/index.html" in files
    assert [f for f in files if not any(fnmatch(f, g) for g in globs)] == []
