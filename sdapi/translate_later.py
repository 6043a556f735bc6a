"""Later A1111 request fields (v1.4 to v1.10) in engine terms: the hires pass's own sampler, schedule type, prompts
and checkpoint, the refiner, and ``firstpass_image``.

Each rule is A1111 v1.10.1's ``StableDiffusionProcessingTxt2Img.init`` / ``setup_prompts`` and
``sd_samplers_common.apply_refiner``:

* ``hr_sampler_name`` empty, ``None`` or "Use same sampler" means the first pass's sampler; otherwise infotext
  ``Hires sampler`` when it differs from ``sampler_name``. An unknown one is A1111's ``bad sampler name`` (500).
* ``hr_scheduler`` missing, empty or "Use same scheduler" means the first pass's ``scheduler``; infotext
  ``Hires schedule type`` when the hires pass's schedule type differs from the first pass's.
* ``hr_prompt`` / ``hr_negative_prompt`` empty means the prompt / negative prompt; styles apply to them too; infotext
  ``Hires prompt`` / ``Hires negative prompt`` when they differ from the image's prompts.
* ``hr_checkpoint_name`` ("Use same checkpoint" or empty: none) runs the hires pass on that checkpoint (A1111's
  closest-title match; unknown: ``Could not find checkpoint with name …``, 500); infotext ``Hires checkpoint``.
* ``refiner_checkpoint`` (``None``, "", "None", "none": none) with ``refiner_switch_at``; with a hires fix the
  option ``hires_fix_refiner_pass`` says which passes it takes part in; infotext ``Refiner``, ``Refiner switch at``
  (and ``Hires refiner`` unless the option is "second pass").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from sdapi.checkpoints import CheckpointInfo
from sdapi.engine.params import HiresParams, RefinerParams, SamplerSettings
from sdapi.engine.sampling.registry import SamplerSpec
from sdapi.engine.sampling.schedulers import SamplerChoice, resolve_sampler, schedule_label
from sdapi.engine.errors import UnknownSampler
from sdapi.images import decode_image
from sdapi.options import Options
from sdapi.prompts.extra_networks import parse_prompts

SAME_SAMPLER = "Use same sampler"
SAME_SCHEDULER = "Use same scheduler"
SAME_CHECKPOINT = "Use same checkpoint"
NO_REFINER = (None, "", "None", "none")

# ``checkpoint name -> CheckpointInfo`` (hashed), or ``None`` for a name no checkpoint matches.
FindCheckpoint = Callable[[str], "CheckpointInfo | None"]


def hires_sampler_choice(req, first: SamplerSpec) -> SamplerChoice:
    """The hires pass's sampler and schedule type.

    Raises:
        AssertionError: an unknown ``hr_sampler_name`` (A1111's ``bad sampler name``).
    """
    name = getattr(req, "hr_sampler_name", None)
    if name in (None, "", SAME_SAMPLER):
        name = first.name
    scheduler = getattr(req, "hr_scheduler", None)
    if scheduler in (None, "", SAME_SCHEDULER):
        scheduler = req.scheduler
    try:
        return resolve_sampler(name, scheduler)
    except UnknownSampler:
        raise AssertionError(f"bad sampler name: {name}") from None


def apply_hires_fields(hires: HiresParams, req, first: SamplerSpec, first_settings: SamplerSettings,
                       settings_for: Callable[[SamplerSpec], SamplerSettings], fallback: Callable[[SamplerSpec],
                                                                                                  SamplerSpec],
                       prompts: tuple[list[str], list[str]], hr_prompts: tuple[list[str], list[str]],
                       hr_checkpoint: CheckpointInfo | None) -> dict[str, Any]:
    """Set the hires pass's sampler, settings, prompts and checkpoint from the later fields.

    Args:
        first, first_settings: the first pass's sampler and settings.
        settings_for: a sampler's settings for this request (eta defaults depend on the sampler).
        fallback: the sampler an image pass runs with (PLMS and UniPC become DDIM).
        prompts: the images' (prompts, negative prompts) as shown in infotexts.
        hr_prompts: the hires (prompts, negative prompts) as shown, styles applied, tags kept.
        hr_checkpoint: the hires checkpoint, or ``None``.

    Returns:
        The infotext keys these fields add, in A1111's order (before ``Hires upscale``).
    """
    extra: dict[str, Any] = {}
    if hr_checkpoint is not None:
        hires.checkpoint = str(hr_checkpoint.filename)
        extra["Hires checkpoint"] = short_title(hr_checkpoint)
    choice = hires_sampler_choice(req, first)
    if choice.sampler.name != first.name or choice.schedule_type != first_settings.schedule_type:
        hires.sampler = fallback(choice.sampler)
        hires.settings = dataclasses.replace(settings_for(choice.sampler), schedule_type=choice.schedule_type)
    hr_sampler_name = getattr(req, "hr_sampler_name", None)
    if hr_sampler_name not in (None, "", SAME_SAMPLER) and hr_sampler_name != (req.sampler_name or req.sampler_index):
        extra["Hires sampler"] = hr_sampler_name
    if prompts != hr_prompts:
        hires.prompts, _ = parse_prompts(hr_prompts[0])
        hires.negative_prompts = list(hr_prompts[1])
        if hr_prompts[0][0] != prompts[0][0]:
            extra["Hires prompt"] = hr_prompts[0][0]
        if hr_prompts[1][0] != prompts[1][0]:
            extra["Hires negative prompt"] = hr_prompts[1][0]
    if choice.schedule_type != first_settings.schedule_type and choice.schedule_type is not None:
        extra["Hires schedule type"] = schedule_label(choice.schedule_type)
    return extra


def hires_prompt_texts(req, styles, prompts: list[str], negatives: list[str]) -> tuple[list[str], list[str]]:
    """Each image's hires prompt and negative prompt: ``hr_prompt`` / ``hr_negative_prompt`` with the request's
    styles applied, or (empty) the image's own ``prompts`` / ``negatives`` (styles already applied)."""
    hr_prompt = getattr(req, "hr_prompt", "") or ""
    hr_negative = getattr(req, "hr_negative_prompt", "") or ""
    if hr_prompt or hr_negative:
        styled = req.model_copy(update={"prompt": hr_prompt or req.prompt, "negative_prompt": hr_negative
                                        or req.negative_prompt})
        prompt, negative = styled.prompt or "", styled.negative_prompt or ""
        if styles is not None and req.styles:
            prompt, negative = styles.apply(prompt, negative, list(req.styles))
        prompts = [prompt] * len(prompts) if hr_prompt else prompts
        negatives = [negative] * len(negatives) if hr_negative else negatives
    return list(prompts), list(negatives)


def hires_checkpoint(req, find: FindCheckpoint | None) -> CheckpointInfo | None:
    """The checkpoint ``hr_checkpoint_name`` names, or ``None`` for the job's own.

    Raises:
        Exception: A1111's ``Could not find checkpoint with name …`` (its 500).
    """
    name = getattr(req, "hr_checkpoint_name", None)
    if name in (None, "", SAME_CHECKPOINT) or find is None:
        return None
    return _found(find, name)


def refiner_params(req, options: Options, find: FindCheckpoint | None, hires: bool
                   ) -> tuple[RefinerParams | None, dict[str, Any]]:
    """The refiner a request asks for, and the infotext keys it adds.

    Raises:
        Exception: A1111's ``Could not find checkpoint with name …`` (its 500).
    """
    name = getattr(req, "refiner_checkpoint", None)
    switch_at = getattr(req, "refiner_switch_at", None)
    if name in NO_REFINER or find is None:
        return None, {}
    info = _found(find, name)
    switch_at = 1.0 if switch_at is None else float(switch_at)
    which = str(options.get("hires_fix_refiner_pass"))
    refiner = RefinerParams(str(info.filename), switch_at,
                            first_pass=not hires or which in ("first pass", "both passes"),
                            second_pass=not hires or which in ("second pass", "both passes"),
                            by_steps=bool(options.get("refiner_switch_by_sample_steps")))
    extra: dict[str, Any] = {}
    if switch_at >= 1.0:
        return refiner, extra  # it never takes over, and A1111 names a refiner only once it has
    if hires and which != "second pass":
        extra["Hires refiner"] = which
    extra["Refiner"] = short_title(info)
    extra["Refiner switch at"] = switch_at
    if refiner.by_steps:
        extra["Refiner switch by sampling steps"] = True
    return refiner, extra


def firstpass_image(req):
    """Later A1111's ``firstpass_image`` as an RGB image (only with a hires fix), or ``None``."""
    data = getattr(req, "firstpass_image", None)
    if not data or not getattr(req, "enable_hr", False):
        return None
    return decode_image(data).convert("RGB")


def short_title(info: CheckpointInfo) -> str:
    """A1111's ``CheckpointInfo.short_title``: the file's stem and its short hash."""
    return f"{info.filename.stem} [{info.shorthash}]"


def _found(find: FindCheckpoint, name: str) -> CheckpointInfo:
    info = find(name)
    if info is None:
        raise Exception(f"Could not find checkpoint with name {name}")
    return info
