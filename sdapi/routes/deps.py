"""Dependency aliases so routes read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sdapi.serving import ServerState


def get_state(request: Request) -> ServerState:
    """The server state created in the lifespan (or injected by tests)."""
    return request.app.state.sdapi


State = Annotated[ServerState, Depends(get_state)]
