"""HTTP habits of A1111's API server: ``--api-auth``, CORS, gzip, and the access log.

Auth is a middleware rather than a per-route dependency so that every route, ours included, is covered without
each one remembering to ask; the documentation pages stay open, as in A1111.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import time
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse

from sdapi.errors import ApiError, envelope
from sdapi.settings import Settings

log = logging.getLogger("sdapi")
access_log = logging.getLogger("sdapi.access")

OPEN_PATHS = ("/docs", "/redoc", "/openapi.json", "/docs-assets/")
"""Path prefixes served without credentials (A1111 does not protect its documentation either)."""


class NotAuthenticated(ApiError):
    status_code = 401


def parse_credentials(value: str | None) -> dict[str, str]:
    """``"u1:p1,u2:p2"`` → ``{"u1": "p1", "u2": "p2"}`` (a password may contain ``:``, unlike in A1111)."""
    pairs = [cred.split(":", 1) for cred in (value or "").split(",") if cred.strip()]
    bad = [p[0] for p in pairs if len(p) != 2]
    if bad:
        raise ValueError(f"--api-auth expects user:password pairs separated by commas, got {bad[0]!r}")
    return {user.strip(): password for user, password in pairs}


def check_basic_auth(header: str | None, credentials: dict[str, str]) -> str:
    """The authenticated user name.

    Raises:
        NotAuthenticated: with A1111's wording, ``Not authenticated`` or ``Incorrect username or password``.
    """
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic" or not token:
        raise NotAuthenticated("Not authenticated")
    try:
        user, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthenticated("Invalid authentication credentials") from None
    expected = credentials.get(user)
    if expected is None or not secrets.compare_digest(password.encode(), expected.encode()):
        raise NotAuthenticated("Incorrect username or password")
    return user


def install_auth(app: FastAPI, credentials: dict[str, str]) -> None:
    """Require HTTP Basic credentials on every route but the documentation (401 in A1111's envelope)."""

    @app.middleware("http")
    async def basic_auth(request: Request, call_next):
        if request.method == "OPTIONS" or request.url.path.startswith(OPEN_PATHS):
            return await call_next(request)
        try:
            request.state.user = check_basic_auth(request.headers.get("authorization"), credentials)
        except NotAuthenticated as exc:
            status, body = envelope(exc)
            return JSONResponse(status_code=status, content=body, headers={"WWW-Authenticate": "Basic"})
        return await call_next(request)


def install_access_log(app: FastAPI, a1111_format: bool) -> None:
    """One structured (JSON) line per request on ``sdapi.access``; with ``--api-log`` also A1111's line."""

    @app.middleware("http")
    async def log_access(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        duration = time.perf_counter() - started
        client = request.client.host if request.client else ""
        access_log.info(json.dumps({
            "method": request.method, "path": request.url.path, "status": response.status_code,
            "duration_s": round(duration, 4), "client": client, "user": getattr(request.state, "user", None),
        }))
        if a1111_format and request.url.path.startswith("/sdapi"):
            version = request.scope.get("http_version", "1.1")
            log.info("API %s %s %s/%s %s %s %s %.4f", datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f"),
                     response.status_code, request.url.scheme, version, request.method, request.url.path, client,
                     duration)
        return response


def install_inner_habits(app: FastAPI, settings: Settings) -> None:
    """What runs inside the error envelope: ``--api-auth``."""
    credentials = parse_credentials(settings.api_auth)
    if credentials:
        install_auth(app, credentials)


def install_outer_habits(app: FastAPI, settings: Settings) -> None:
    """What wraps the error envelope, innermost first: access log, gzip, CORS (outermost, so preflights need
    no credentials)."""
    install_access_log(app, settings.api_log)
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    if settings.cors_allow_origins or settings.cors_allow_origins_regex:
        origins = [o for o in (settings.cors_allow_origins or "").split(",") if o]
        app.add_middleware(CORSMiddleware, allow_origins=origins,
                           allow_origin_regex=settings.cors_allow_origins_regex or None,
                           allow_methods=["*"], allow_headers=["*"], allow_credentials=True)
