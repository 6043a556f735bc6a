"""``/docs`` (Swagger UI) and ``/redoc`` served from an installed package, so they work without internet.

FastAPI's built-in pages load their JavaScript, CSS and favicon from a CDN: on an offline machine ``/docs`` is
a blank page. ``openapi-ui-bundles`` ships Swagger UI 5 (needed for the OpenAPI 3.1 schema FastAPI writes;
Swagger UI 4 refuses it) and ReDoc 2, which are mounted as static files and referenced by local URLs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from openapi_ui_bundles import redoc, swagger_ui

SWAGGER_ASSETS = "/docs-assets/swagger-ui"
REDOC_ASSETS = "/docs-assets/redoc"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# validatorUrl null: for a non-local host Swagger UI would otherwise load a badge from an online validator.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None, "displayRequestDuration": True}
# ReDoc's sidebar shows a logo hard-wired to its CDN (hidden when it fails to load): keep images local.
REDOC_CSP = "img-src 'self' data: blob:"
TITLE = "sdapi"
DESCRIPTION = """\
The AUTOMATIC1111 stable-diffusion-webui API (**v1.2.1**) on HuggingFace diffusers.

Requests and responses use A1111's models (`StableDiffusionProcessingTxt2Img`, `TextToImageResponse`, ...):
scripts written for A1111 run unchanged. Errors come back in A1111's envelope
`{"error", "detail", "body", "errors"}`; schema validation errors keep FastAPI's `{"detail": [...]}` shape.

Images are base64-encoded PNGs whose `parameters` text chunk holds A1111's infotext.
"""


def docs_metadata() -> dict[str, str]:
    """The title, description and version shown at the top of ``/docs`` and in ``/openapi.json``.

    Returns:
        keyword arguments for ``FastAPI(...)``.
    """
    try:
        package_version = version("sdapi")
    except PackageNotFoundError:  # running from a source tree that was never installed
        package_version = "0.0.0"
    return {"title": TITLE, "description": DESCRIPTION, "version": package_version}


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, its OAuth2 redirect and ``/redoc`` with assets from the installed bundles.

    Create ``app`` with ``docs_url=None, redoc_url=None`` so FastAPI's CDN-based pages are not registered.

    Args:
        app: the application whose ``openapi_url`` the pages render.
    """
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=swagger_ui.static_path), name="swagger-ui-assets")
    app.mount(REDOC_ASSETS, StaticFiles(directory=redoc.static_path), name="redoc-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT,
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{REDOC_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{SWAGGER_ASSETS}/favicon-32x32.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = REDOC_CSP
        return page
