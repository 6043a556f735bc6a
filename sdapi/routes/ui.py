"""The built-in page: ``GET /ui`` always, ``GET /`` unless the server was started with ``--nowebui``, and the
page's files under ``/ui/``.

The page is plain HTML, CSS and JavaScript shipped in ``sdapi/web``; its scripts call the same public routes any
client calls, so this module only hands out files. ``--api-auth`` covers these paths like every other route (the
auth middleware leaves only the documentation open), so a protected server also protects its page.
"""

from __future__ import annotations

from importlib import resources
from pathlib import PurePosixPath

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

WEB_PACKAGE = "sdapi.web"
PAGE = "index.html"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The files change with every upgrade of the package and carry no validator: make the browser ask each time
# rather than run yesterday's script against today's API.
HEADERS = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)
root_router = APIRouter(include_in_schema=False)


def page_file(name: str) -> Response:
    """One of the page's files, or 404 (only files of the web package with a browser type: no ``__init__.py``,
    and no path, since ``name`` is a single path segment)."""
    media_type = MEDIA_TYPES.get(PurePosixPath(name).suffix)
    resource = resources.files(WEB_PACKAGE).joinpath(name)
    if media_type is None or name.startswith(".") or not resource.is_file():
        raise HTTPException(status_code=404, detail="Not Found")
    return Response(resource.read_bytes(), media_type=media_type, headers=HEADERS)


@router.get("/ui")
def ui_page() -> Response:
    return page_file(PAGE)


@router.get("/ui/{name}")
def ui_asset(name: str) -> Response:
    return page_file(name)


@root_router.get("/")
def root_page() -> Response:
    return page_file(PAGE)
