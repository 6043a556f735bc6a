"""ControlNet in the serving layer: the extension's endpoints (``/controlnet/*``) and its units attached to a
txt2img/img2img job (engine units, infotext, detected maps appended to the response's images)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from sdapi.bounds import MAX_DETECT_IMAGES, check_pixels
from sdapi.controlnet.control_types import control_types
from sdapi.controlnet.image_ops import hwc3
from sdapi.controlnet.preprocessors import (
    Annotate,
    AnnotatorMissing,
    MissingAnnotatorFiles,
    Network,
    RUNNABLE_NETWORKS,
    detect,
    find_preprocessor,
    module_list,
)
from sdapi.controlnet.units import ControlTarget, ResolvedControl, read_units, resolve_units
from sdapi.engine.api import AnnotateJob
from sdapi.errors import InvalidRequest, Unprocessable
from sdapi.images import decode_image, encode_image
from sdapi.options import OptionsView
from sdapi.protocol.controlnet import ControlNetDetectRequest
from sdapi.serving.base import ServerState

# The extension's ``get_api_version``.
API_VERSION = 3


def version() -> dict:
    return {"version": API_VERSION}


def model_list(state: ServerState, update: bool) -> dict:
    """``/controlnet/model_list`` (``update``: rescan the folders first)."""
    if update:
        state.controlnets.refresh()
    return {"model_list": state.controlnets.names()}


def modules(alias_names: bool) -> dict:
    return module_list(alias_names)


def types(state: ServerState) -> dict:
    """``/controlnet/control_types`` over the models found now."""
    state.controlnets.refresh()
    return control_types(state.controlnets.names())


def settings(state: ServerState) -> dict:
    return {"control_net_unit_count": int(state.options.get("control_net_unit_count"))}


def annotator_files(state: ServerState, network: Network) -> dict[str, Path]:
    """A network's files by role in the annotator folder.

    Raises:
        MissingAnnotatorFiles: the ones that are not there.
    """
    root = state.settings.annotator_path
    files = {f.role: root / f.folder / f.file for f in network.files}
    missing = [f for f in network.files if not files[f.role].is_file()]
    if missing:
        raise MissingAnnotatorFiles(missing)
    return files


def annotator_bridge(state: ServerState) -> Annotate:
    """Runs a preprocessor's network on the engine, its files found in the annotator folder (call it on the
    worker: the engine's device work is serialised there)."""

    def annotate(network: Network, image: np.ndarray, options: dict) -> tuple[np.ndarray, dict | None]:
        files = annotator_files(state, network)
        result = state.engine.annotate(AnnotateJob(network.name, files, Image.fromarray(image), options))
        return np.array(result.image, dtype=np.uint8), result.poses

    return annotate


def detect_maps(state: ServerState, req: ControlNetDetectRequest) -> dict:
    """``/controlnet/detect``: each image through the preprocessor, maps returned as base64 PNGs (and, for
    OpenPose, the poses). Model-based preprocessors run on the worker, in the generation queue.

    Raises:
        Unprocessable: the extension's 422s (``Module not available``, ``No image selected``), and a model-based
            preprocessor whose files are missing.
        InvalidRequest: too many or too large images.
    """
    preprocessor = find_preprocessor(req.controlnet_module)
    if preprocessor is None:
        raise Unprocessable("Module not available")
    if not req.controlnet_input_images:
        raise Unprocessable("No image selected")
    if len(req.controlnet_input_images) > MAX_DETECT_IMAGES:
        raise InvalidRequest(f"{len(req.controlnet_input_images)} images exceed this server's limit of "
                             f"{MAX_DETECT_IMAGES} per detect call")
    arrays = []
    for encoded in req.controlnet_input_images:
        image = decode_image(encoded)
        check_pixels("controlnet input image", image.width * image.height, state.settings.limits,
                     "send a smaller image")
        arrays.append(hwc3(np.array(image.convert("RGB"), dtype=np.uint8)))
    resolution = preprocessor.resolution.checked(req.controlnet_processor_res)
    a = preprocessor.slider_1.checked(req.controlnet_threshold_a)
    b = preprocessor.slider_2.checked(req.controlnet_threshold_b)
    poses: list[dict] = []
    network = preprocessor.network

    def run_all() -> list[np.ndarray]:
        annotate = annotator_bridge(state) if network is not None else None
        return [detect(preprocessor, array, resolution, a, b, annotate, poses.append) for array in arrays]

    try:
        if network is None:
            detected = run_all()
        else:
            # Answered before queueing: a refusal need not wait for the generations ahead.
            if network.name not in RUNNABLE_NETWORKS:
                raise AnnotatorMissing(preprocessor)
            try:
                annotator_files(state, network)
            except MissingAnnotatorFiles as exc:
                raise AnnotatorMissing(preprocessor, exc.missing) from exc
            detected = state.run_sync(run_all, "controlnet detect")
    except AnnotatorMissing as exc:
        raise Unprocessable(exc.detail) from exc
    body: dict[str, Any] = {"images": [encode_image(Image.fromarray(m), "png", pnginfo=False) for m in detected],
                            "info": "Success"}
    if poses:
        body["poses"] = poses
    return body


def check_units(req) -> None:
    """Read and check a request's ControlNet units before it is queued (422 on a malformed one)."""
    read_units(req.alwayson_scripts)


def attach_controlnet(state: ServerState, req, params, options: OptionsView, target: ControlTarget
                      ) -> ResolvedControl:
    """Resolve a request's enabled units onto its engine parameters: ``params.controlnets``, the infotext entries
    (before the ones processing adds, as the extension's ``process`` runs first), and the maps to append.

    Raises:
        InvalidRequest: a unit without model or input, an unknown model, a model-based preprocessor.
    """
    units = read_units(req.alwayson_scripts)
    if not units:
        return ResolvedControl()
    state.controlnets.refresh()
    for unit in units:
        image = unit.image if isinstance(unit.image, str) else None
        if image:
            decoded = decode_image(image)
            check_pixels("controlnet input image", decoded.width * decoded.height, state.settings.limits,
                         "send a smaller image")
    try:
        resolved = resolve_units(units, target, state.controlnets.find,
                                 not options.get("control_net_no_detectmap"), annotator_bridge(state))
    except AnnotatorMissing as exc:
        raise InvalidRequest(exc.detail) from exc
    params.controlnets = resolved.params
    params.extra = {**resolved.infotext, **params.extra}
    return resolved


def with_maps(respond: Callable[[list, list[str]], dict[str, Any]], resolved: ResolvedControl, req,
              options: OptionsView) -> Callable[[list, list[str]], dict[str, Any]]:
    """``respond`` with the detected maps appended to the response's images (after the grid and every image, as
    the extension's ``postprocess`` appends them)."""
    if not resolved.maps:
        return respond

    def respond_with_maps(images: list, warnings: list[str]) -> dict[str, Any]:
        body = respond(images, warnings)
        if req.send_images:
            body["images"] = body["images"] + [encode_image(m, options.get("samples_format"),
                                                            options.get("jpeg_quality"), False)
                                               for m in resolved.maps]
        return body

    return respond_with_maps
