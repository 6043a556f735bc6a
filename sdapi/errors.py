"""Domain exceptions and the one handler that renders A1111's error envelope.

A1111 v1.2.1 answers every handler error with
``{"error": <exception class>, "detail": ..., "body": ..., "errors": str(exc)}`` and the exception's
``status_code`` (500 when it has none). Its pinned starlette gave ``HTTPException`` no ``__str__``, so
``errors`` is ``""`` for those; we reproduce that rather than starlette's modern ``"404: ..."``.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sdapi.engine.errors import UnknownSampler, UnsupportedRequest
from sdapi.protocol.validation import v1_validation_errors

log = logging.getLogger("sdapi")


class ApiError(Exception):
    """An error A1111 raises as ``fastapi.HTTPException(status_code, detail)``.

    Rendered with ``error: "HTTPException"`` and an empty ``errors`` string, exactly as v1.2.1 does.
    """

    status_code = 500
    error_name = "HTTPException"

    def __init__(self, detail: str, status_code: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class NotFound(ApiError):
    """404 with A1111's wording, e.g. ``Sampler not found``."""

    status_code = 404


class Unprocessable(ApiError):
    """422 raised by a handler (not a schema validation error), e.g. an unknown script."""

    status_code = 422


class InvalidRequest(Exception):
    """A request that cannot work, refused before any tensor is allocated (sdapi's improvement on A1111's 500s).

    Rendered like A1111 renders a plain exception: ``error`` is this class name, ``errors`` the message.
    """

    status_code = 422


class GenerationError(RuntimeError):
    """A failure inside generation that A1111 would report as a 500 with the exception text."""


# An absolute path (two or more components) or a traceback's source reference, in an exception's text.
_SERVER_PATH = re.compile(r"""(?<![\w.:/])/(?:[^\s'"/:,;()<>]+/)+([^\s'"/:,;()<>]*)""")
_SOURCE_LINE = re.compile(r'File "[^"]*", line \d+(, in \S+)?')


def without_server_paths(text: str) -> str:
    """``text`` with absolute paths cut to their last part and traceback source lines removed: an answer never
    shows how the server's disk is laid out."""
    return _SERVER_PATH.sub(lambda m: m.group(1) or "/", _SOURCE_LINE.sub("", text))


def envelope(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """Build A1111's ``{"error","detail","body","errors"}`` body and status for an exception.

    Args:
        exc: any exception raised while serving a request.

    Returns:
        ``(status_code, body)``.
    """
    if hasattr(exc, "response_body"):
        return exc.status_code, exc.response_body()
    if isinstance(exc, UnknownSampler):
        exc = NotFound(str(exc))
    if isinstance(exc, ApiError):
        return exc.status_code, {"error": exc.error_name, "detail": exc.detail, "body": "", "errors": ""}
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code, {"error": "HTTPException", "detail": exc.detail, "body": "", "errors": ""}
    status = 422 if isinstance(exc, UnsupportedRequest) else getattr(exc, "status_code", 500)
    name = getattr(exc, "a1111_name", None) or type(exc).__name__
    return status, {"error": name, "detail": "", "body": "", "errors": without_server_paths(str(exc))}


def install_error_handlers(app: FastAPI) -> None:
    """Register the A1111 envelope for every error, keeping FastAPI's shapes where A1111 kept them."""

    async def on_exception(request: Request, exc: Exception) -> JSONResponse:
        status, body = envelope(exc)
        if status >= 500:
            # A1111 prints the traceback of unexpected errors; its own HTTP errors need none.
            trace = None if isinstance(exc, (ApiError, StarletteHTTPException)) else exc
            log.error("API error: %s %s: %s", request.method, request.url.path, exc, exc_info=trace)
        return JSONResponse(status_code=status, content=body, headers=getattr(exc, "headers", None))

    async def on_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing errors keep starlette's own body, as in A1111: {"detail": "Not Found"}.
        if exc.status_code in (404, 405) and isinstance(exc.detail, str) and exc.detail in ("Not Found", "Method Not Allowed"):
            return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)
        status, body = envelope(exc)
        return JSONResponse(status_code=status, content=body)

    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = await request.body()
        return JSONResponse(status_code=422, content={"detail": v1_validation_errors(exc, raw)})

    @app.middleware("http")
    async def envelope_and_timing(request: Request, call_next):
        # A middleware rather than an Exception handler: starlette re-raises after a handler for
        # Exception, which would log twice and break in-process test clients.
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001 - every error becomes A1111's envelope
            response = await on_exception(request, exc)
        response.headers["X-Process-Time"] = f"{time.perf_counter() - started:.4f}"
        return response

    app.add_exception_handler(ApiError, on_exception)
    app.add_exception_handler(InvalidRequest, on_exception)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
