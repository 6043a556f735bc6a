"""The one sampling core: every txt2img batch, img2img/inpainting batch, hires second pass and x/y/z cell samples here.

:func:`sample` is A1111 v1.2.1's ``sampler.sample`` and ``sampler.sample_img2img`` in one: it builds the row's
schedule (k-diffusion sigmas, ldm's DDIM timesteps or UniPC's time grid), the starting latent, the guided model
and the noise source, runs the row's sampling function, reports every step, and on interrupt returns the latent
A1111 returns (the last denoised prediction).

Where sampling starts (:class:`SamplingStart`):

* txt2img: from ``noise * sigmas[0]`` (k-diffusion) or unit noise (CompVis) over the whole schedule;
* from an image (A1111's ``sample_img2img``): k-diffusion builds the schedule for ``steps`` and runs its tail
  ``sigmas[steps - t_enc - 1:]`` from ``latent + noise * tail[0]``; DDIM encodes the latent to step ``t_enc``
  (``stochastic_encode``) and runs steps ``t_enc - 1 .. 0``. PLMS and UniPC have no image-conditioned pass in
  A1111; they run as DDIM (as A1111's hires fix makes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from sdapi.engine.errors import SamplingInterrupted, UnsupportedRequest
from sdapi.engine.params import SamplerSettings
from sdapi.engine.sampling.compvis import CompVisRun, sample_ddim, sample_plms, stochastic_encode
from sdapi.engine.sampling.conds import BatchConds
from sdapi.engine.sampling.control import ControlRun
from sdapi.engine.sampling.denoiser import CfgDenoiser, CfgScale, CompVisGuidance
from sdapi.engine.sampling.kdiffusion import KDIFFUSION_FUNCTIONS
from sdapi.engine.sampling.noise import BrownianNoise, StepNoise
from sdapi.engine.sampling.refiner import RefinerSwitch
from sdapi.engine.sampling.registry import SamplerSpec, effective_steps, find_sampler
from sdapi.engine.sampling.schedules import (
    DiscreteSchedule,
    a1111_sigmas,
    ddim_schedule,
    model_schedule,
    unipc_times,
)
from sdapi.engine.sampling.unipc import sample_unipc


class SamplingEvents(Protocol):
    """What sampling tells the job and asks it (a subset of :class:`sdapi.engine.api.JobEvents`)."""

    def should_stop(self) -> bool: ...

    def sampling(self, steps: int) -> None: ...

    def step(self, step: int, latents: torch.Tensor) -> None: ...


@dataclass(frozen=True)
class SamplingStart:
    """Where one batch starts sampling.

    Args:
        steps: the schedule length (txt2img: the requested steps; from an image: A1111's ``steps`` after
            ``setup_img2img_steps``).
        t_enc: the schedule position an image is noised to; ``None`` for txt2img.
        latent: the encoded image ``(B, 4, h, w)`` (A1111's ``init_latent``), or ``None``.
        mask: A1111's ``p.mask``: 1 where the original is kept, 0 where it is repainted, or ``None``.
        nmask: A1111's ``p.nmask`` (its own complement of the mask); default ``1 - mask``.
        image_cond: an inpainting UNet's extra input channels, or ``None``.
    """

    steps: int
    t_enc: int | None = None
    latent: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    nmask: torch.Tensor | None = None
    image_cond: torch.Tensor | None = None

    @property
    def from_image(self) -> bool:
        return self.t_enc is not None

    @property
    def keep(self) -> torch.Tensor | None:
        """The repaint weights A1111 pairs with ``mask``."""
        if self.mask is None:
            return None
        return self.nmask if self.nmask is not None else 1.0 - self.mask

    def keep_original(self, latents: torch.Tensor) -> torch.Tensor:
        """The result with the kept area restored (A1111's ``samples * nmask + init_latent * mask``)."""
        if self.mask is None:
            return latents
        return latents * self.keep + self.latent * self.mask


def denoiser_schedule(model) -> DiscreteSchedule:
    """The discrete schedule A1111 derives from the model (float16 for a half model).

    Raises:
        UnsupportedRequest: a noise schedule A1111's cannot be rebuilt for (zero-terminal-SNR, cosine betas).
    """
    schedule = model_schedule(model.pipe.scheduler.config, half=model.dtype == torch.float16)
    if schedule is None:
        raise UnsupportedRequest("this checkpoint's noise schedule has no A1111 sampler equivalent")
    return schedule


def image_pass_sampler(spec: SamplerSpec) -> SamplerSpec:
    """The sampler an image-conditioned pass runs with: PLMS and UniPC become DDIM."""
    return find_sampler("DDIM") if spec.function in ("plms", "unipc") else spec


@torch.no_grad()
def sample(model, spec: SamplerSpec, start: SamplingStart, noise: torch.Tensor, conds: BatchConds,
           cfg_scale: CfgScale, step_noise: StepNoise, seeds: list[int], settings: SamplerSettings = SamplerSettings(),
           events: SamplingEvents | None = None, image_jobs: list[int] | None = None,
           refiner: RefinerSwitch | None = None, control: ControlRun | None = None) -> torch.Tensor:
    """Sample one batch; returns its latents (float32), or on interrupt what A1111 returns.

    Args:
        model: the loaded model (``unet``, ``dtype``, ``device``, ``v_prediction``, ``pipe.scheduler.config``).
        spec: the sampler.
        start: where sampling starts.
        noise: the batch's unit noise (img2img: already times ``initial_noise_multiplier``).
        conds: the batch's scheduled conditioning.
        cfg_scale: guidance scale, or one per image (jobs sampled together).
        step_noise: A1111's ``randn`` stream for the batch (pre-drawn ancestral noise where A1111 pre-draws it).
        seeds: the batch's seeds (DPM++ SDE seeds one Brownian tree per image with them).
        settings: eta, churn and ``s_min_uncond``.
        events: progress, interrupt and skip.
        image_jobs: the job of each image when several jobs share the batch (``None``: one job).
        refiner: where another checkpoint takes over (later A1111's refiner), or ``None``.
        control: the pass's ControlNet units (the step callback tells them where the pass is), or ``None``.

    Raises:
        AndWithCompVis: ``AND`` with DDIM, PLMS or UniPC.
        UnsupportedRequest: the model's noise schedule has no A1111 equivalent.
    """
    schedule = denoiser_schedule(model)
    noise = noise.to(model.device)
    if start.from_image:
        spec = image_pass_sampler(spec)
        if start.steps <= 0:
            return start.latent  # a zero-strength hires pass: only the upscale remains
    if spec.kdiffusion:
        return _sample_kdiffusion(model, schedule, spec, start, noise, conds, cfg_scale, step_noise, seeds, settings,
                                  events, image_jobs, refiner, control)
    return _sample_compvis(model, schedule, spec, start, noise, conds, cfg_scale, step_noise, settings, events,
                           image_jobs, refiner, control)


class _Reporter:
    """A1111's step callbacks: remember the latent an interrupt returns and publish progress (to the job, and to
    the ControlNet units, whose guidance windows read A1111's ``sampling_step / sampling_steps``)."""

    def __init__(self, events: SamplingEvents | None, steps: int, first: torch.Tensor,
                 control: ControlRun | None = None):
        self.events = events
        self.steps = steps
        self.last = first
        self.control = control
        if events is not None:
            events.sampling(steps)
        if control is not None:
            control.progress(0, steps)

    def __call__(self, step: int, latents: torch.Tensor) -> None:
        self.last = latents
        if self.events is not None:
            self.events.step(min(step, self.steps), latents)
        if self.control is not None:
            self.control.progress(min(step, self.steps), self.steps)


def _sample_kdiffusion(model, schedule: DiscreteSchedule, spec: SamplerSpec, start: SamplingStart,
                       noise: torch.Tensor, conds: BatchConds, cfg_scale: CfgScale, step_noise: StepNoise,
                       seeds: list[int], settings: SamplerSettings, events: SamplingEvents | None,
                       image_jobs: list[int] | None, refiner: RefinerSwitch | None = None,
                       control: ControlRun | None = None) -> torch.Tensor:
    """A1111's ``KDiffusionSampler.sample`` / ``sample_img2img``."""
    sigmas = a1111_sigmas(schedule, start.steps, spec.karras, spec.discard_penultimate_sigma, settings.schedule_type,
                          model.sdxl).to(model.device)
    if start.from_image:
        tail = sigmas[start.steps - start.t_enc - 1:]
        x = start.latent + noise * tail[0]
        reporter = _Reporter(events, start.t_enc + 1, start.latent, control)
    else:
        tail = sigmas
        x = noise * sigmas[0]
        reporter = _Reporter(events, start.steps, x, control)
    denoiser = CfgDenoiser(model, schedule, conds, cfg_scale, events, start.image_cond, start.mask, start.latent,
                           start.keep, settings.s_min_uncond, image_jobs, refiner, control)
    kwargs = _kdiffusion_arguments(spec, schedule, tail, start, settings)
    sampler_noise = (BrownianNoise(x, sigmas[sigmas > 0].min(), sigmas.max(), seeds)
                     if spec.function == "dpmpp_sde" else step_noise)
    try:
        return KDIFFUSION_FUNCTIONS[spec.function](denoiser, x, noise=sampler_noise, callback=reporter, **kwargs)
    except SamplingInterrupted:
        return reporter.last


def _kdiffusion_arguments(spec: SamplerSpec, schedule: DiscreteSchedule, tail: torch.Tensor, start: SamplingStart,
                          settings: SamplerSettings) -> dict:
    """The schedule (or sigma range and call budget) and the extra parameters A1111 passes the row's function."""
    kwargs: dict = {}
    if not spec.sigma_range:
        kwargs["sigmas"] = tail
    elif start.from_image:
        # The last sigma is 0, which DPM fast/adaptive cannot take: A1111 stops at the one before.
        kwargs.update(sigma_min=tail[-2].item(), sigma_max=tail[0].item())
    else:
        kwargs.update(sigma_min=schedule.sigma_min, sigma_max=schedule.sigma_max)
    if spec.function == "dpm_fast":
        kwargs["n"] = len(tail) - 1 if start.from_image else start.steps
    if spec.ancestral:
        kwargs["eta"] = settings.eta
    if spec.churn:
        kwargs.update(s_churn=settings.s_churn, s_tmin=settings.s_tmin, s_tmax=settings.s_tmax,
                      s_noise=settings.s_noise)
    return kwargs


def _sample_compvis(model, schedule: DiscreteSchedule, spec: SamplerSpec, start: SamplingStart, noise: torch.Tensor,
                    conds: BatchConds, cfg_scale: CfgScale, step_noise: StepNoise, settings: SamplerSettings,
                    events: SamplingEvents | None, image_jobs: list[int] | None,
                    refiner: RefinerSwitch | None = None, control: ControlRun | None = None) -> torch.Tensor:
    """A1111's ``VanillaStableDiffusionSampler.sample`` / ``sample_img2img`` (DDIM, PLMS, UniPC)."""
    steps = effective_steps(spec, start.steps)
    guidance = CompVisGuidance(model, conds, cfg_scale, events, start.image_cond, image_jobs, refiner, control)
    first = start.latent if start.from_image else noise
    reporter = _Reporter(events, start.t_enc + 1 if start.from_image else steps, first, control)
    run = CompVisRun(guidance, schedule, step_noise.global_stream(), model.v_prediction, reporter, start.mask, start.keep,
                     start.latent)
    run.last = first
    try:
        return _COMPVIS_RUNNERS[spec.function](run, schedule, start, noise, steps, settings)
    except SamplingInterrupted:
        return run.last


def _run_ddim(run: CompVisRun, schedule: DiscreteSchedule, start: SamplingStart, noise: torch.Tensor, steps: int,
              settings: SamplerSettings) -> torch.Tensor:
    ddim = ddim_schedule(schedule, steps, settings.eta)
    if not start.from_image:
        return sample_ddim(run, noise, ddim)
    return sample_ddim(run, stochastic_encode(ddim, start.latent, start.t_enc, noise), ddim, steps=start.t_enc)


def _run_plms(run: CompVisRun, schedule: DiscreteSchedule, start: SamplingStart, noise: torch.Tensor, steps: int,
              settings: SamplerSettings) -> torch.Tensor:
    return sample_plms(run, noise, ddim_schedule(schedule, steps))


def _run_unipc(run: CompVisRun, schedule: DiscreteSchedule, start: SamplingStart, noise: torch.Tensor, steps: int,
               settings: SamplerSettings) -> torch.Tensor:
    return sample_unipc(run, noise, unipc_times(schedule, steps))


_COMPVIS_RUNNERS: dict[str, Callable[..., torch.Tensor]] = {"ddim": _run_ddim, "plms": _run_plms,
                                                            "unipc": _run_unipc}
