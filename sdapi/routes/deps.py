"""Dependency aliases so routes read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sdapi.serving.base import AppSettings as Settings
from sdapi.serving.base import ServerState


def get_state(request: Request) -> ServerState:
    """The server state created in the lifespan (or injected by tests)."""
    return request.app.state.sdapi


State = Annotated[ServerState, Depends(get_state)]


def get_settings(request: Request) -> Settings:
    """The settings this app was started with (launch flags, auth, CORS); a state shared between apps in tests
    may hold another app's."""
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(get_settings)]
