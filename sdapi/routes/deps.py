"""Dependency aliases so routes read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sdapi.serving import ServerState
from sdapi.settings import Settings


def get_state(request: Request) -> ServerState:
    """The server state created in the lifespan (or injected by tests)."""
    return request.app.state.sdapi


State = Annotated[ServerState, Depends(get_state)]


def get_settings(request: Request) -> Settings:
    """The settings this app was started with (launch flags, auth, CORS)."""
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(get_settings)]
