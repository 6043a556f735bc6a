"""Selectable scripts: ``/sdapi/v1/scripts`` (A1111 v1.2.1) and ``/sdapi/v1/script-info`` (A1111 v1.4+)."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol import ScriptsList
from sdapi.protocol.scripts import ScriptInfo
from sdapi.routes.deps import State
from sdapi.serving.scripts import script_info, scripts_list

router = APIRouter()


@router.get("/sdapi/v1/scripts", response_model=ScriptsList)
def get_scripts_list():
    return scripts_list()


@router.get("/sdapi/v1/script-info", response_model=list[ScriptInfo])
def get_script_info(state: State):
    return script_info(state)
