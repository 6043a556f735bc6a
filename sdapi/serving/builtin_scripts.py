"""A1111's built-in selectable scripts (SD upscale, Prompt matrix, Prompts from file or textbox, Loopback, Poor
man's outpainting, Outpainting mk2) as jobs.

When the request arrives its ``script_args`` are read and the script's plan checks and bounds every count it will
run (tiles, loops, lines, combinations, canvas size), so nothing is queued that the server would refuse halfway.
On the worker the script runs as one job whose ``job_count`` is A1111's; each of its ``process_images`` calls is
generated here exactly as a plain txt2img/img2img request with those values would be (:func:`process`), without
the grid a saved batch would get (every one of these scripts turns it off).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable

from sdapi.engine.api import UpscaleJob
from sdapi.engine.sampling.registry import find_sampler
from sdapi.engine.upscalers import Tiling
from sdapi.images import encode_image
from sdapi.img2img_images import finished
from sdapi.options import OptionsView
from sdapi.scripts.args import read_args
from sdapi.scripts.loopback import plan_loopback, run_loopback
from sdapi.scripts.outpainting_mk2 import plan_mk2, run_mk2
from sdapi.scripts.poor_mans_outpainting import plan_poor_mans, run_poor_mans
from sdapi.scripts.processing import ProcessCall, Processed, Runner, ScriptOutput
from sdapi.scripts.prompt_matrix import plan_prompt_matrix, run_prompt_matrix
from sdapi.scripts.prompts_from_file import plan_prompts_from_file, run_prompts_from_file
from sdapi.scripts.registry import SelectableScript
from sdapi.scripts.sd_upscale import plan_sd_upscale, run_sd_upscale
from sdapi.scripts.xyz.axes import IMG2IMG, TXT2IMG
from sdapi.serving.base import Job, ServerState
from sdapi.serving.generation import CheckedRequest, run_generation
from sdapi.serving.img2img import Img2ImgInputs, img2img_engine_job
from sdapi.serving.saving import image_saver
from sdapi.serving.txt2img import txt2img_engine_job
from sdapi.translate import txt2img_response
from sdapi.translate_img2img import img2img_response

# (plan, runner) -> ScriptOutput
Run = Callable[[Any, Runner], ScriptOutput]


def builtin_script_job(state: ServerState, checked: CheckedRequest, mode: str, inputs: Img2ImgInputs | None,
                       script: SelectableScript) -> Job:
    """The job serving ``script`` (checked and bounded now, run later on the worker).

    Raises:
        InvalidRequest: malformed ``script_args``, or work beyond the server's bounds.
        ValueError, IndexError: A1111's own errors for a bad choice (500), before anything runs.
    """
    req = checked.req
    args = read_args(script.title, script.specs, req.script_args)
    plan, run = _plan(state, script.key, req, args, inputs)
    checked.warnings.extend(getattr(plan, "warnings", []))
    parameters = req.model_dump()
    if mode == IMG2IMG and not req.include_init_images:
        parameters.update(init_images=None, mask=None)

    def respond(options: OptionsView) -> dict[str, Any]:
        output = run(plan, _runner(state, mode, inputs, options))
        if output.saves:  # what the script saves itself; a failure joins the response's warnings
            image_saver(state, options, mode, state.control.warnings).save_script_images(
                output.saves, state.selected_checkpoint(options))
        return script_response(req, output, parameters, options, state.control.warnings)

    return functools.partial(run_generation, state, checked, plan.job_count, respond)


def _plan(state: ServerState, key: str, req, args: dict[str, Any], inputs: Img2ImgInputs | None
          ) -> tuple[Any, Run]:
    """The script's checked plan and how it runs."""
    limits = state.settings.limits
    image = inputs.images[0] if inputs is not None else None
    if key == "sd_upscale":
        return plan_sd_upscale(req, args, image, state.upscalers(), limits), run_sd_upscale
    if key == "prompt_matrix":
        return plan_prompt_matrix(req, args, limits), run_prompt_matrix
    if key == "prompts_from_file":
        return plan_prompts_from_file(req, args, limits), run_prompts_from_file
    if key == "loopback":
        return plan_loopback(req, args, limits), run_loopback
    if key == "poor_mans_outpainting":
        return plan_poor_mans(req, args, image, limits), run_poor_mans
    if key == "outpainting_mk2":
        return plan_mk2(req, args, image, limits), run_mk2
    raise KeyError(f"no runner for script {key}")


def _runner(state: ServerState, mode: str, inputs: Img2ImgInputs | None, options: OptionsView) -> Runner:
    """The server as the script sees it on the worker, with the job's options."""
    tiling = Tiling.from_options(options)

    def upscale(spec, image, scale):
        return state.engine.upscale(UpscaleJob([image], spec, tiling, scale=scale))[0]

    return Runner(process=functools.partial(process, state, mode, options),
                  describe=functools.partial(describe, state, mode, inputs, options),
                  interrupted=lambda: state.control.interrupted, skipped=lambda: state.control.skipped,
                  upscale=upscale, options=options, mask=inputs.mask if inputs is not None else None,
                  images=list(inputs.images) if inputs is not None else [])


def process(state: ServerState, mode: str, options: OptionsView, call: ProcessCall, generate: bool = True
            ) -> Processed:
    """One ``process_images`` call of a script: generated as a plain request with its values would be (nothing
    is generated once the job is interrupted, or with ``generate`` False), and that request's ``info``."""
    control = state.control
    # A1111's scripts leave do_not_save_samples as the request set it (the API: not save_images) and turn the
    # grid off: each call's images are saved when the request saves images, its grid never.
    req = call.req.model_copy(update={"send_images": False})
    saver = image_saver(state, options, mode, control.warnings) if generate and req.save_images else None
    sampler = find_sampler(req.sampler_name or req.sampler_index)
    if mode == TXT2IMG:
        resolved, job, checkpoint = txt2img_engine_job(state, req, sampler, options, call.overrides)
    else:
        inputs = Img2ImgInputs(call.images, call.mask, call.latent_mask)
        resolved, job, checkpoint, prepared = img2img_engine_job(state, req, sampler, inputs, options, call.overrides)
    for warning in resolved.warnings:
        if warning not in control.warnings:  # a script's many calls would repeat it
            control.warn(warning)
    images = state.engine.generate(job, control) if generate and not control.interrupted else []
    if mode == TXT2IMG:
        body = txt2img_response(req, resolved, images, checkpoint, options, control.job_timestamp, saver=saver,
                                grid=False)
    else:
        images = finished(images, prepared, resolved.params.batch_size, options.get("img2img_color_correction"))
        body = img2img_response(req, resolved, images, checkpoint, options, control.job_timestamp, saver=saver,
                                grid=False)
    return Processed(images, json.loads(body["info"]))


def describe(state: ServerState, mode: str, inputs: Img2ImgInputs | None, options: OptionsView, req
             ) -> dict[str, Any]:
    """The ``info`` a request would answer, without generating it (a script's own ``p``)."""
    call = ProcessCall(req, list(inputs.images) if inputs else [], inputs.mask if inputs else None)
    return process(state, mode, options, call, generate=False).info


def script_response(req, output: ScriptOutput, parameters: dict[str, Any], options: OptionsView,
                    warnings: list[str]) -> dict[str, Any]:
    """``TextToImageResponse`` / ``ImageToImageResponse`` of a finished script (``warnings``: sdapi's extension
    of ``info``, as on plain requests)."""
    fmt, quality, pnginfo = options.get("samples_format"), options.get("jpeg_quality"), options.get("enable_pnginfo")
    encoded = [encode_image(image, fmt, quality, pnginfo) for image in output.images] if req.send_images else []
    info = dict(output.info)
    if warnings:
        info["warnings"] = list(warnings)
    return {"images": encoded, "parameters": parameters, "info": json.dumps(info)}
