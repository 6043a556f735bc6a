"""The sd-webui-controlnet extension's endpoints (``scripts/api.py``): version, model and module lists, settings
and ``detect``. Pure image preprocessors run in the request; model-based ones run their network on the engine, in
the generation queue."""

from __future__ import annotations

from fastapi import APIRouter

from sdapi.protocol.controlnet import (
    ControlNetControlTypes,
    ControlNetDetectRequest,
    ControlNetDetectResponse,
    ControlNetModelList,
    ControlNetModuleList,
    ControlNetSettings,
    ControlNetVersion,
)
from sdapi.routes.deps import State
from sdapi.serving import controlnet

router = APIRouter()


@router.get("/controlnet/version", response_model=ControlNetVersion)
def version():
    return controlnet.version()


@router.get("/controlnet/model_list", response_model=ControlNetModelList)
def model_list(state: State, update: bool = True):
    return controlnet.model_list(state, update)


@router.get("/controlnet/module_list", response_model=ControlNetModuleList)
def module_list(alias_names: bool = False):
    return controlnet.modules(alias_names)


@router.get("/controlnet/control_types", response_model=ControlNetControlTypes)
def control_types(state: State):
    return controlnet.types(state)


@router.get("/controlnet/settings", response_model=ControlNetSettings)
def settings(state: State):
    return controlnet.settings(state)


# ``poses`` only appears for OpenPose preprocessors, as in the extension.
@router.post("/controlnet/detect", response_model=ControlNetDetectResponse, response_model_exclude_none=True)
def detect(req: ControlNetDetectRequest, state: State):
    return controlnet.detect_maps(state, req)
