"""Listing models: ``/sdapi/v1/samplers`` and ``/sdapi/v1/sd-models`` items (A1111 v1.2.1), ``/schedulers`` (v1.9+)
and ``/sd-vae`` (v1.4+)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from .coercion import LaxStr

__all__ = ["SamplerItem", "SchedulerItem", "SDModelItem", "SDVaeItem"]


class SamplerItem(BaseModel):
    model_config = ConfigDict(title="SamplerItem")

    name: str = Field(title="Name")
    aliases: list[str] = Field(title="Aliases")
    # Dict[str, str] in A1111: option values are rendered as strings (True → "True").
    options: dict[str, LaxStr] = Field(title="Options")


class SchedulerItem(BaseModel):
    """Later A1111's (v1.9+) ``GET /sdapi/v1/schedulers`` item."""

    model_config = ConfigDict(title="SchedulerItem")

    name: str = Field(title="Name")
    label: str = Field(title="Label")
    aliases: Optional[list[str]] = Field(default=None, title="Aliases")
    default_rho: Optional[float] = Field(default=None, title="Default Rho")
    need_inner_model: Optional[bool] = Field(default=None, title="Needs Inner Model")


class SDModelItem(BaseModel):
    model_config = ConfigDict(title="SDModelItem", protected_namespaces=())

    title: str = Field(title="Title")
    model_name: str = Field(title="Model Name")
    hash: Optional[str] = Field(default=None, title="Short hash")
    sha256: Optional[str] = Field(default=None, title="sha256 hash")
    filename: str = Field(title="Filename")
    config: Optional[str] = Field(default=None, title="Config file")


class SDVaeItem(BaseModel):
    """Later A1111's ``GET /sdapi/v1/sd-vae`` item."""

    model_config = ConfigDict(title="SDVaeItem", protected_namespaces=())

    model_name: str = Field(title="Model Name")
    filename: str = Field(title="Filename")
