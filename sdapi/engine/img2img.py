"""Sampling from an image: the one entry point for img2img, inpainting and the hires fix second pass.

A1111 v1.2.1's ``sample_img2img``:

* k-diffusion samplers build the schedule for ``steps`` and run its tail ``sigmas[steps - t_enc - 1:]``
  (``t_enc + 1`` steps), starting at ``x + noise * sigma_sched[0]``. With a diffusers scheduler that is the full
  A1111 schedule with the begin index moved to the tail's first step (``* order`` for the two-call layouts);
  rows with our own k-diffusion loop get the tail directly.
* DDIM encodes with ``sqrt(a) x + sqrt(1 - a) noise`` at DDIM step ``t_enc`` and then runs DDIM steps
  ``t_enc - 1 .. 0`` (A1111's off-by-one included).
* With a mask, the kept area is pinned to the original: k-diffusion samplers replace the kept part of every
  denoised prediction (``init * mask + nmask * denoised``, done here on the noise prediction), DDIM re-noises the
  original to the current step and pastes it into the sample before each step.

``steps``/``t_enc`` come from :func:`img2img_steps` (plain img2img) or :func:`fixed_steps` (hires fix, or the
``img2img_fix_steps`` option).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sdapi.engine.control import JobControl
from sdapi.engine.kdiffusion_runner import (
    denoiser_schedule,
    run_kdiffusion,
    txt2img_sigmas,
)
from sdapi.engine.noise import randn_on
from sdapi.engine.prompt_conds import (
    AND_WITH_COMPVIS_MESSAGE,
    BatchConds,
    denoiser_step,
)
from sdapi.engine.sampler_noise import SamplerNoise
from sdapi.engine.samplers import (
    SamplerSpec,
    build_scheduler,
    effective_steps,
    install_a1111_sigmas,
)
from sdapi.engine.sigmas import model_schedule
from sdapi.engine.txt2img import _takes_generator, guided_eps


def img2img_steps(steps: int, denoising_strength: float) -> tuple[int, int]:
    """A1111's ``setup_img2img_steps`` without fixed steps: ``(steps, int(min(d, 0.999) * steps))``."""
    return steps, int(min(denoising_strength, 0.999) * steps)


def fixed_steps(steps: int, denoising_strength: float) -> tuple[int, int]:
    """A1111's fixed-steps rule (hires fix, ``img2img_fix_steps``): exactly ``steps`` steps on a longer schedule.

    Returns:
        ``(schedule length, t_enc)``: ``int(steps / min(d, 0.999))`` (0 when ``d`` is 0) and ``steps - 1``.
    """
    schedule = int(steps / min(denoising_strength, 0.999)) if denoising_strength > 0 else 0
    return schedule, steps - 1


@dataclass
class Img2ImgStart:
    """Where an image-conditioned pass starts.

    Args:
        latent: the encoded image ``(B, 4, h, w)`` (A1111's ``init_latent``).
        steps: the schedule length (A1111's ``steps`` after ``setup_img2img_steps``).
        t_enc: the schedule position the image is noised to.
        mask: A1111's ``p.mask``: 1 where the original is kept, 0 where it is repainted (``(1 or B, 4, h, w)``).
        image_cond: an inpainting UNet's extra input channels, or ``None``.
    """

    latent: torch.Tensor
    steps: int
    t_enc: int
    mask: torch.Tensor | None = None
    image_cond: torch.Tensor | None = None

    @property
    def nmask(self) -> torch.Tensor | None:
        return None if self.mask is None else 1.0 - self.mask

    def keep_original(self, latents: torch.Tensor) -> torch.Tensor:
        """The result with the kept area restored (A1111's ``samples * nmask + init_latent * mask``)."""
        if self.mask is None:
            return latents
        return latents * self.nmask + self.latent * self.mask


@torch.no_grad()
def sample_img2img(model, spec: SamplerSpec, start: Img2ImgStart, noise: torch.Tensor,
                   generators: list[torch.Generator], conds: BatchConds, cfg_scale: float,
                   control: JobControl | None = None, step_noise: SamplerNoise | None = None) -> torch.Tensor:
    """Denoise one batch from ``start`` (A1111's ``sample_img2img``); returns the latents (float32).

    Args:
        model: the loaded model.
        spec: the sampler (DDIM for PLMS/UniPC: the caller switches, as A1111's hires fix does).
        start: the encoded image, schedule position, mask and image conditioning.
        noise: the batch's unit noise (already times ``initial_noise_multiplier``).
        generators: each image's generator, positioned after its noise.
        conds: the batch's scheduled conditioning.
        cfg_scale: guidance scale.
        control: progress, interrupt and skip.
        step_noise: ancestral noise for our own k-diffusion loops (default: from ``generators``).

    Raises:
        AssertionError: ``AND`` with DDIM (A1111's message).
    """
    if not spec.kdiffusion and conds.composable:
        raise AssertionError(AND_WITH_COMPVIS_MESSAGE)
    if start.steps <= 0:
        return start.latent  # a zero-strength hires pass: the schedule is [0], only the upscale remains
    if step_noise is None:
        step_noise = SamplerNoise(generators, start.steps, tuple(noise.shape[1:]), predraw=len(generators) > 1)
    noise = noise.to(model.device)
    if spec.kdiffusion_loop is not None:
        return _sample_own_loop(model, spec, start, noise, step_noise, conds, cfg_scale, control)
    return _sample_scheduler(model, spec, start, noise, generators, step_noise, conds, cfg_scale, control)


def _sample_own_loop(model, spec: SamplerSpec, start: Img2ImgStart, noise: torch.Tensor, step_noise: SamplerNoise,
                     conds: BatchConds, cfg_scale: float, control: JobControl | None) -> torch.Tensor:
    """Rows run by our k-diffusion loops: the sigma tail straight into the loop.

    The mask is applied to the result only (the loops' denoiser has no per-step mask yet), and inpainting UNets
    are not supported there.
    """
    if start.image_cond is not None:
        raise ValueError(f"{spec.name} cannot sample inpainting checkpoints yet")
    sigmas = txt2img_sigmas(spec, denoiser_schedule(model), start.steps).to(model.device)
    tail = sigmas[start.steps - start.t_enc - 1:]
    x = start.latent + noise * tail[0]
    return run_kdiffusion(model, spec, x, tail, step_noise, conds, cfg_scale, control, model_sigma_range=False,
                          progress_steps=start.t_enc + 1)


def _start_kdiffusion(scheduler, start: Img2ImgStart, noise: torch.Tensor) -> tuple[torch.Tensor, int]:
    """k-diffusion: begin index of the tail and its starting latent in the scheduler's space."""
    first = start.steps - start.t_enc - 1
    begin = first * scheduler.order
    sigma = scheduler.sigmas[begin].detach().to(noise.device, torch.float32)
    latents = start.latent + noise * sigma
    if float(scheduler.init_noise_sigma) == 1.0:  # DPM-Solver family: variance-preserving space
        latents = latents * (1 / (sigma ** 2 + 1.0) ** 0.5)
    return latents, begin


def _start_ddim(scheduler, start: Img2ImgStart, noise: torch.Tensor) -> tuple[torch.Tensor, int]:
    """DDIM: ldm's ``stochastic_encode`` at DDIM step ``t_enc``, then steps ``t_enc - 1 .. 0``."""
    count = len(scheduler.timesteps)
    alpha = scheduler.alphas_cumprod[int(scheduler.timesteps[count - 1 - start.t_enc])].to(noise)
    return alpha.sqrt() * start.latent + (1 - alpha).sqrt() * noise, count - start.t_enc


def _sigma_at(schedule, scheduler, t) -> torch.Tensor:
    """The k-diffusion sigma of a (fractional) model timestep."""
    t = torch.as_tensor(t, dtype=torch.float32).reshape(1).cpu()
    if schedule is not None:
        return schedule.t_to_sigma(t).float()[0]
    alpha = scheduler.alphas_cumprod[int(round(float(t)))]
    return ((1 - alpha) / alpha).sqrt().float()


def _masked_eps(eps: torch.Tensor, x_in: torch.Tensor, sigma: torch.Tensor, start: Img2ImgStart) -> torch.Tensor:
    """The noise prediction whose denoised image keeps the original where ``mask`` is 1.

    The model input is ``x * c_in`` in every k-diffusion-space scheduler (and ``x * alpha``, the same factor, in
    the variance-preserving ones), so ``denoised = x_in * sqrt(sigma^2 + 1) - sigma * eps``.
    """
    sigma = sigma.to(eps)
    denoised = x_in * (sigma ** 2 + 1.0) ** 0.5 - sigma * eps
    return eps + start.mask.to(eps) * (denoised - start.latent) / sigma


def _sample_scheduler(model, spec: SamplerSpec, start: Img2ImgStart, noise: torch.Tensor,
                      generators: list[torch.Generator], step_noise: SamplerNoise, conds: BatchConds,
                      cfg_scale: float, control: JobControl | None) -> torch.Tensor:
    """Rows run by a diffusers scheduler on A1111's schedule, from the start position to the end."""
    seeds = [g.initial_seed() for g in generators]
    scheduler = build_scheduler(spec, model.pipe.scheduler.config, seeds)
    steps = start.steps if spec.kdiffusion else effective_steps(spec, start.steps)
    scheduler.set_timesteps(steps, device=model.device)
    half = model.dtype == torch.float16
    install_a1111_sigmas(spec, scheduler, steps, half=half)
    if spec.kdiffusion:
        latents, begin = _start_kdiffusion(scheduler, start, noise)
    else:
        latents, begin = _start_ddim(scheduler, start, noise)
    if hasattr(scheduler, "set_begin_index"):  # DDIM looks its steps up by timestep instead
        scheduler.set_begin_index(begin)
    timesteps = scheduler.timesteps[begin:]
    run_steps = start.t_enc + 1 if spec.kdiffusion else start.t_enc
    schedule = model_schedule(scheduler.config, half)
    step_kwargs = {"generator": step_noise.generators} if _takes_generator(type(scheduler)) else {}
    original = latents
    for i, t in enumerate(timesteps):
        if control is not None and control.should_stop():
            # A1111 returns its last latent: the un-noised image when no step ran.
            return start.latent if i == 0 else latents
        if not spec.kdiffusion and start.mask is not None:
            latents = _renoised_original(scheduler, start, t, generators) * start.mask + start.nmask * latents
        x_in = scheduler.scale_model_input(latents, t)
        counter = denoiser_step(i, len(timesteps), spec, run_steps)
        cond_rows, conds_list = conds.cond_at(counter, weighted=spec.kdiffusion)
        eps = guided_eps(model, x_in, t, cond_rows, conds.uncond_at(counter), cfg_scale, conds_list,
                         start.image_cond)
        if spec.kdiffusion and start.mask is not None:
            eps = _masked_eps(eps, x_in, _sigma_at(schedule, scheduler, t), start)
        latents = scheduler.step(eps, t, latents, **step_kwargs).prev_sample
        if control is not None:
            control.step(min(run_steps, int((i + 1) * run_steps / len(timesteps))), latents)
    return latents if len(timesteps) else original


def _renoised_original(scheduler, start: Img2ImgStart, t, generators: list[torch.Generator]) -> torch.Tensor:
    """ldm's ``q_sample(init_latent, t)`` (A1111 draws its noise unseeded; here each image's stream is used)."""
    alpha = scheduler.alphas_cumprod[int(t)].to(start.latent)
    noise = torch.stack([randn_on(g, tuple(start.latent.shape[1:])) for g in generators]).to(start.latent)
    return alpha.sqrt() * start.latent + (1 - alpha).sqrt() * noise
