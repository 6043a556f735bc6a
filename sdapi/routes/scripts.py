"""Selectable scripts: ``/sdapi/v1/scripts`` (A1111 v1.2.1) and ``/sdapi/v1/script-info`` (A1111 v1.4+)."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol import ScriptsList
from sdapi.protocol.scripts import ScriptInfo
from sdapi.scripts.registry import script_infos, script_titles

router = APIRouter()


@router.get("/sdapi/v1/scripts", response_model=ScriptsList)
def get_scripts_list():
    # Only the scripts sdapi runs (A1111 also lists prompt matrix, loopback, ...).
    return {"txt2img": script_titles("txt2img"), "img2img": script_titles("img2img")}


@router.get("/sdapi/v1/script-info", response_model=list[ScriptInfo])
def get_script_info():
    # Added in A1111 v1.4 (v1.2.1 answers 404); clients read the X/Y/Z plot's argument order and axis list here.
    return script_infos()
