"""``/sdapi/v1/options`` (A1111 calls its handlers get_config/set_config) and ``/sdapi/v1/cmd-flags``."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol import Flags, Options
from sdapi.protocol.settings import OptionsUpdate
from sdapi.routes.deps import AppSettings, State
from sdapi.serving.options import get_options, set_options
from sdapi.serving.system import cmd_flags

router = APIRouter()


@router.get("/sdapi/v1/options", response_model=Options)
def get_config(state: State):
    return get_options(state)


@router.post("/sdapi/v1/options")
def set_config(req: OptionsUpdate, state: State):
    set_options(state, req)
    return None


@router.get("/sdapi/v1/cmd-flags", response_model=Flags)
def get_cmd_flags(settings: AppSettings):
    return cmd_flags(settings)
