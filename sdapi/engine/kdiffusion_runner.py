"""Running a registry row that samples with our own k-diffusion loop (:mod:`sdapi.engine.kdiffusion`).

A1111's ``KDiffusionSampler.sample`` (txt2img) and ``sample_img2img``: A1111's sigma schedule for the row, the
starting latent, A1111's CFG denoiser and the arguments each function gets (the schedule, or for the DPM-Solver
samplers a sigma range and a model-call budget). If the job is interrupted, A1111 returns the denoised prediction
of the last step it reported, and so does this.
"""

from __future__ import annotations

import functools

import torch

from sdapi.engine.cfg_denoiser import CfgDenoiser, SamplingInterrupted
from sdapi.engine.control import JobControl
from sdapi.engine.kdiffusion import KDIFFUSION_LOOPS
from sdapi.engine.prompt_conds import BatchConds
from sdapi.engine.samplers import SamplerSpec
from sdapi.engine.sigmas import DiscreteSchedule, a1111_sigmas, model_schedule

ETA_ANCESTRAL = 1.0  # A1111's default ``eta_ancestral``, which it passes to every k-diffusion sampler taking eta


def denoiser_schedule(model) -> DiscreteSchedule:
    """The discrete schedule A1111's k-diffusion wrapper derives from the model (float16 for a half model).

    Raises:
        ValueError: a noise schedule A1111's cannot be rebuilt for (zero-terminal-SNR, cosine betas).
    """
    schedule = model_schedule(model.pipe.scheduler.config, half=model.dtype == torch.float16)
    if schedule is None:
        raise ValueError("this checkpoint's noise schedule has no k-diffusion equivalent")
    return schedule


def txt2img_sigmas(spec: SamplerSpec, schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """``KDiffusionSampler.get_sigmas`` for the row: A1111's schedule, Karras and penultimate-discard as it says."""
    return a1111_sigmas(schedule, steps, spec.karras, spec.discard_penultimate_sigma)


@torch.no_grad()
def run_kdiffusion(model, spec: SamplerSpec, x: torch.Tensor, sigmas: torch.Tensor, noise, conds: BatchConds,
                   cfg_scale: float, control: JobControl | None = None, *, model_sigma_range: bool = True,
                   progress_steps: int | None = None, image_cond: torch.Tensor | None = None,
                   mask: torch.Tensor | None = None, nmask: torch.Tensor | None = None,
                   init_latent: torch.Tensor | None = None) -> torch.Tensor:
    """Sample one batch with the row's k-diffusion loop.

    Args:
        model: the loaded model.
        spec: a row with ``kdiffusion_loop`` set.
        x: the starting latent, already at ``sigmas[0]`` (txt2img: noise times ``sigmas[0]``; img2img: the encoded
            image plus noise times ``sigmas[0]``).
        sigmas: the schedule to sample (img2img: A1111's ``sigma_sched`` tail), ending with 0.
        noise: the ancestral noise source (``SamplerNoise``).
        conds: the batch's scheduled conditioning.
        cfg_scale: guidance scale.
        control: progress, interrupt and skip.
        model_sigma_range: the DPM-Solver samplers run from the model's largest to its smallest sigma (A1111's
            txt2img); ``False``: from ``sigmas[0]`` to ``sigmas[-2]`` (A1111's img2img).
        progress_steps: the step count shown in progress (default: ``len(sigmas) - 1``).
        image_cond: an inpainting UNet's extra input channels per image.
        mask, nmask, init_latent: img2img's mask (1 keeps the original), its complement and the encoded
            original; the denoiser keeps the original there at every call, as A1111's does.

    Returns:
        The final latents (float32), or on interrupt the last reported denoised prediction.
    """
    loop = KDIFFUSION_LOOPS[spec.kdiffusion_loop]
    schedule = denoiser_schedule(model)
    steps = len(sigmas) - 1
    denoiser = CfgDenoiser(model, schedule, conds, cfg_scale, control, image_cond=image_cond, mask=mask,
                           init_latent=init_latent, nmask=nmask)
    state = {"last": x}
    callback = functools.partial(_report, state, control, progress_steps or steps)
    kwargs = {}
    if loop.takes_sigma_range:
        if model_sigma_range:
            kwargs.update(sigma_min=schedule.sigma_min, sigma_max=schedule.sigma_max)
        else:
            kwargs.update(sigma_min=sigmas[-2].item(), sigma_max=sigmas[0].item())
        if loop.takes_step_count:
            kwargs["n"] = steps
    else:
        kwargs["sigmas"] = sigmas.to(x.device)
    try:
        return loop.function(denoiser, x, eta=ETA_ANCESTRAL, noise=noise, callback=callback, **kwargs)
    except SamplingInterrupted:
        return state["last"]


def txt2img_kdiffusion(model, spec: SamplerSpec, steps: int, noise: torch.Tensor, step_noise, conds: BatchConds,
                       cfg_scale: float, control: JobControl | None = None,
                       image_cond: torch.Tensor | None = None) -> torch.Tensor:
    """A1111's ``KDiffusionSampler.sample``: start at ``noise * sigmas[0]`` and run the row's loop.

    Args:
        model, spec, conds, cfg_scale, control: as :func:`run_kdiffusion`.
        steps: sampling steps.
        noise: the batch's unit initial noise.
        step_noise: the ancestral noise source (``SamplerNoise``).
        image_cond: an inpainting UNet's extra input channels per image (txt2img: A1111's blank-image ones).

    Returns:
        As :func:`run_kdiffusion`.
    """
    sigmas = txt2img_sigmas(spec, denoiser_schedule(model), steps).to(model.device)
    x = noise.to(model.device) * sigmas[0]
    return run_kdiffusion(model, spec, x, sigmas, step_noise, conds, cfg_scale, control, image_cond=image_cond)


def _report(state: dict, control: JobControl | None, steps: int, step: int, denoised: torch.Tensor) -> None:
    """Step callback: remember the denoised prediction and publish progress (A1111's ``callback_state``)."""
    state["last"] = denoised
    if control is not None:
        control.step(min(step, steps), denoised)
