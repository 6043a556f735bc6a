"""Which generation jobs may be sampled as one batch (cross-request batching). No torch here.

Jobs merge when everything the batch shares is the same for each: the checkpoint, its LoRAs, VAE and embedding
files, the size, the sampler with its steps and settings, fast mode or not, the hires fix, img2img's step range and
whether it has a mask, the upscaler tiling. What stays per image is free to differ: prompts, negative prompts, seeds, variation seeds, guidance scale,
clip skip, noise options, init images and masks, batch sizes. Each job keeps its own noise streams and prompt
schedules, so its images are the ones it gets alone.

Not merged: jobs with ControlNet units (each has its own control maps), jobs of several batches (``n_iter`` > 1: their batches run one after another), DPM adaptive (its step
size follows an error norm over the whole batch), ``AND`` with a CompVis sampler (A1111 refuses it: the error
must stay that job's), and jobs whose UNet calls have one row per image (:func:`single_row_calls`). Token lengths
are checked once the prompts are encoded (:class:`sdapi.engine.generation.NotMergeable`). How the UNet keeps rows
independent of the batch: :mod:`sdapi.engine.batch_invariance`.
"""

from __future__ import annotations

from typing import Hashable

from sdapi.engine.api import GenerationJob
from sdapi.engine.params import Img2ImgParams
from sdapi.prompts.composable import split_subprompts

# Whose step sizes depend on every image of the batch.
BATCH_DEPENDENT_SAMPLERS = frozenset({"dpm_adaptive"})


def batch_key(job: GenerationJob) -> Hashable | None:
    """What ``job`` must share with others to be sampled in one batch with them; ``None`` when it runs alone."""
    p = job.params
    samplers = [p.sampler] + ([p.hires.sampler] if p.hires is not None else [])
    if p.n_iter != 1 or any(spec.function in BATCH_DEPENDENT_SAMPLERS for spec in samplers):
        return None
    if not samplers[0].kdiffusion and any(len(split_subprompts(prompt)) > 1 for prompt in p.prompts):
        return None
    if single_row_calls(p) or p.firstpass_image is not None or p.controlnets:
        # ControlNet units: each job has its own control maps; they run alone.
        return None
    shared = (job.checkpoint, job.tiling, type(p).__name__, p.sampler, p.steps, p.width, p.height,
              tuple(p.loras), p.hires, p.mask_weight, p.circular, p.sampler_settings, p.fast, p.refiner,
              job.embeddings, job.vae)
    if isinstance(p, Img2ImgParams):
        shared += (p.mask is not None, p.denoising_strength, p.fix_steps, p.mask_round)
    # Some parts are mutable dataclasses (not hashable); their reprs list every field, so equal reprs are equal
    # values.
    return repr(shared)


def single_row_calls(p) -> bool:
    """Whether the job alone calls the UNet with one row per image: a CompVis sampler at guidance scale 1, or
    ``s_min_uncond`` skipping the negative prompt. A one-image job then runs batches of one row, and a convolution
    over one row rounds differently from one over several (measured on CPU): merged, its pixels would change."""
    compvis = not p.sampler.kdiffusion or (p.hires is not None and not p.hires.sampler.kdiffusion)
    return (compvis and p.cfg_scale == 1.0) or p.sampler_settings.s_min_uncond > 0


def merge_groups(jobs: list[GenerationJob], max_images: int) -> list[list[int]]:
    """``jobs`` (in order) gathered into batches: each batch the indices of jobs with one key, at most
    ``max_images`` images together (a job alone may exceed it), keyless jobs on their own.
    """
    groups: list[list[int]] = []
    open_groups: dict[Hashable, list[int]] = {}
    for index, job in enumerate(jobs):
        key = batch_key(job)
        images = job.params.batch_size
        group = open_groups.get(key) if key is not None else None
        if group is not None and sum(jobs[i].params.batch_size for i in group) + images <= max_images:
            group.append(index)
            continue
        group = [index]
        groups.append(group)
        if key is not None:
            open_groups[key] = group
    return groups
