"""Dependency aliases so routes read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sdapi.serving.base import AppSettings as Settings
from sdapi.serving.base import ServerState
from sdapi.serving.dataset import DatasetService
from sdapi.serving.training import TrainingService


def get_state(request: Request) -> ServerState:
    """The server state created in the lifespan (or injected by tests)."""
    return request.app.state.sdapi


State = Annotated[ServerState, Depends(get_state)]


def get_settings(request: Request) -> Settings:
    """The settings this app was started with (launch flags, auth, CORS); a state shared between apps in tests
    may hold another app's."""
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(get_settings)]


def get_dataset(request: Request) -> DatasetService:
    """The dataset service built with the state."""
    return request.app.state.sdapi.dataset


def get_training(request: Request) -> TrainingService:
    """The training service built with the state."""
    return request.app.state.sdapi.training


Dataset = Annotated[DatasetService, Depends(get_dataset)]
Training = Annotated[TrainingService, Depends(get_training)]
