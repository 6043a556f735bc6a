"""The txt2img sampling loop over a loaded pipeline's UNet, VAE and text encoder.

We drive the diffusers scheduler ourselves rather than calling the pipeline: A1111's results depend on
details the pipeline does not expose (initial latent scale per sampler, per-image generator streams,
separate cond/uncond passes when their lengths differ, uint8 truncation, interrupt between steps).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from sdapi.engine.conditioning import PromptEncoder
from sdapi.engine.control import JobControl
from sdapi.engine.image_cond import txt2img_image_cond
from sdapi.engine.kdiffusion_runner import txt2img_kdiffusion
from sdapi.engine.noise import initial_noise, noise_device, seed_noise_shape
from sdapi.engine.params import Txt2ImgParams
from sdapi.engine.prompt_conds import (
    AND_WITH_COMPVIS_MESSAGE,
    BatchConds,
    ScheduleEncoder,
    denoiser_step,
    schedule_length,
)
from sdapi.engine.sampler_noise import SamplerNoise, batch_step_noise
from sdapi.engine.samplers import (
    SamplerSpec,
    build_scheduler,
    effective_steps,
    install_a1111_sigmas,
)

NAN_MESSAGE = ("A tensor with all NaNs was produced in Unet. "
               "Use --disable-nan-check commandline argument to disable this check.")


class NansException(RuntimeError):
    """A1111's name for a generation whose latents became NaN (reported as a 500)."""


def check_nans(latents: torch.Tensor) -> torch.Tensor:
    """``latents`` unchanged, or A1111's ``NansException`` when sampling produced NaNs."""
    if torch.isnan(latents).any():
        raise NansException(NAN_MESSAGE)
    return latents


@dataclass
class LoadedModel:
    """A pipeline ready to generate, with its prompt encoder.

    Args:
        pipe: the diffusers pipeline (its components are used, not its ``__call__``).
        encoder: A1111-style prompt encoder over the pipeline's tokenizer/text encoder.
        device, dtype: where and in which precision the UNet/VAE run.
    """

    pipe: object
    encoder: PromptEncoder
    device: torch.device
    dtype: torch.dtype

    @property
    def unet(self):
        return self.pipe.unet

    @property
    def vae(self):
        return self.pipe.vae


def initial_latent(noise: torch.Tensor, scheduler, spec: SamplerSpec) -> torch.Tensor:
    """Scale unit noise into the scheduler's space so it equals A1111's starting point.

    k-diffusion starts at ``noise * sigmas[0]`` (the scheduler's first sigma, A1111's own once
    :func:`install_a1111_sigmas` has run). The DPM-Solver family works in VP space (``init_noise_sigma == 1``),
    where the same point is that times k-diffusion's ``c_in = 1 / sqrt(sigma^2 + 1)``, computed in the same float32
    order so the first UNet input is bit-identical. CompVis samplers (DDIM, PLMS, UniPC) start at unit noise.
    """
    if not spec.kdiffusion:
        return noise
    sigma = scheduler.sigmas[0].detach().to("cpu", torch.float32)
    latent = noise * sigma
    if float(scheduler.init_noise_sigma) == 1.0:
        latent = latent * (1 / (sigma ** 2 + 1.0) ** 0.5)
    return latent


def guided_eps(model: LoadedModel, x: torch.Tensor, t, cond: torch.Tensor, uncond: torch.Tensor,
               cfg_scale: float, conds_list: list[list[tuple[int, float]]] | None = None,
               image_cond: torch.Tensor | None = None) -> torch.Tensor:
    """Classifier-free guided noise prediction, cond rows first then uncond as A1111 batches them.

    With ``AND`` an image has several cond rows; the result is
    ``uncond + sum_i weight_i * (cond_i - uncond) * cfg_scale`` (A1111 combines denoised images, which is the
    same affine combination). Different token lengths (a long prompt against a short negative) go through
    separate UNet calls (conds in slices of twice the image count, then uncond), as in v1.2.1, instead of padding,
    which would change the result.

    Args:
        x: ``(images, C, H, W)`` model input.
        cond: ``(rows, tokens, hidden)``; uncond: ``(images, tokens', hidden)``.
        conds_list: per image, ``(cond row, weight)`` of each part; ``None``: row ``i`` for image ``i``, weight 1.
        image_cond: an inpainting UNet's extra input channels per image (cond and uncond rows alike), or ``None``.
    """
    unet, dtype = model.unet, model.dtype
    if image_cond is not None:
        x = torch.cat([x, image_cond.to(x)], dim=1)
    images = x.shape[0]
    if conds_list is None:
        conds_list = [[(i, 1.0)] for i in range(images)]
    x_cond = torch.cat([x[i:i + 1].expand(len(pairs), *x.shape[1:]) for i, pairs in enumerate(conds_list)])
    rows = x_cond.shape[0]
    if cond.shape[1] == uncond.shape[1]:
        out = unet(torch.cat([x_cond, x]).to(dtype), t,
                   encoder_hidden_states=torch.cat([cond, uncond]).to(dtype)).sample.float()
        eps_cond, eps_uncond = out[:rows], out[rows:]
    else:
        slices = range(0, rows, 2 * images)
        eps_cond = torch.cat([unet(x_cond[a:a + 2 * images].to(dtype), t,
                                   encoder_hidden_states=cond[a:a + 2 * images].to(dtype)).sample.float()
                              for a in slices])
        eps_uncond = unet(x.to(dtype), t, encoder_hidden_states=uncond.to(dtype)).sample.float()
    eps = eps_uncond.clone()
    for i, pairs in enumerate(conds_list):
        for row, weight in pairs:
            eps[i] += (eps_cond[row] - eps_uncond[i]) * (weight * cfg_scale)
    return eps


@functools.lru_cache(maxsize=None)
def _takes_generator(cls) -> bool:
    # Deterministic schedulers (LMS, DDIM's eta=0 path aside) have no generator parameter at all.
    return "generator" in inspect.signature(cls.step).parameters


@torch.no_grad()
def sample_batch(model: LoadedModel, spec: SamplerSpec, steps: int, noise: torch.Tensor,
                 generators: list[torch.Generator], cond: torch.Tensor | BatchConds, uncond: torch.Tensor | None,
                 cfg_scale: float, seed: int, control: JobControl | None = None,
                 step_noise: SamplerNoise | None = None, image_cond: torch.Tensor | None = None) -> torch.Tensor:
    """Denoise one batch from its initial noise; returns the final latents (float32).

    Rows with a ``kdiffusion_loop`` run our own k-diffusion function with A1111's CFG denoiser
    (:func:`~sdapi.engine.kdiffusion_runner.txt2img_kdiffusion`); their ancestral noise comes from ``step_noise``
    (default: A1111's pre-drawn batch noise from ``generators``). Diffusers ancestral schedulers draw from
    ``step_noise.generators`` themselves.

    Stops early (returning the current latents, as A1111 does) when ``control`` asks to interrupt or skip.
    Rows marked ``a1111_sigmas`` sample on A1111's exact schedule and fractional timesteps
    (``install_a1111_sigmas``); in half precision that is the float16-``alphas_cumprod`` schedule A1111 v1.2.1 used.

    ``cond`` is either the batch's scheduled conditioning (``uncond`` is then ``None``), picked per UNet call by
    A1111's denoiser step counter (:func:`~sdapi.engine.prompt_conds.denoiser_step`), or fixed cond/uncond tensors.

    Raises:
        AssertionError: ``AND`` with DDIM, PLMS or UniPC (A1111's CompVis samplers refuse it with this error).
    """
    conds = cond if isinstance(cond, BatchConds) else BatchConds.fixed(cond, uncond)
    if not spec.kdiffusion and conds.composable:
        raise AssertionError(AND_WITH_COMPVIS_MESSAGE)
    if step_noise is None:
        step_noise = SamplerNoise(generators, steps, tuple(noise.shape[1:]), predraw=len(generators) > 1)
    if spec.kdiffusion_loop is not None:
        return txt2img_kdiffusion(model, spec, steps, noise, step_noise, conds, cfg_scale, control, image_cond)
    # A1111 seeds DPM++ SDE's Brownian trees with the batch's seeds: the ones the image generators were seeded with.
    seeds = [g.initial_seed() for g in generators] if generators else seed
    scheduler = build_scheduler(spec, model.pipe.scheduler.config, seeds)
    scheduler.set_timesteps(steps, device=model.device)
    install_a1111_sigmas(spec, scheduler, steps, half=model.dtype == torch.float16)
    latents = initial_latent(noise, scheduler, spec).to(model.device)
    timesteps = scheduler.timesteps
    step_kwargs = {"generator": step_noise.generators} if _takes_generator(type(scheduler)) else {}
    for i, t in enumerate(timesteps):
        if control is not None and control.should_stop():
            break
        x_in = scheduler.scale_model_input(latents, t)
        counter = denoiser_step(i, len(timesteps), spec, steps)
        # A1111's CompVis samplers use the single part's conditioning without its AND weight.
        cond_rows, conds_list = conds.cond_at(counter, weighted=spec.kdiffusion)
        eps = guided_eps(model, x_in, t, cond_rows, conds.uncond_at(counter), cfg_scale, conds_list, image_cond)
        latents = scheduler.step(eps, t, latents, **step_kwargs).prev_sample
        if control is not None:
            control.step(min(steps, int((i + 1) * steps / len(timesteps))), latents)
    return latents


@torch.no_grad()
def decode_latents(model: LoadedModel, latents: torch.Tensor) -> list[Image.Image]:
    """VAE-decode each image on its own and convert to 8-bit by truncation, as A1111 does (not rounding)."""
    vae = model.vae
    images = []
    for i in range(latents.shape[0]):
        z = latents[i:i + 1].to(model.device, vae.dtype) / vae.config.scaling_factor
        x = vae.decode(z).sample.float()
        x = torch.clamp((x + 1.0) / 2.0, min=0.0, max=1.0)[0]
        array = (255.0 * np.moveaxis(x.cpu().numpy(), 0, 2)).astype(np.uint8)
        images.append(Image.fromarray(array))
    return images


def run_txt2img(model: LoadedModel, p: Txt2ImgParams, control: JobControl | None = None,
                second_pass=None) -> list[Image.Image]:
    """Generate every image of a request, batch by batch.

    Args:
        second_pass: ``(latents, batch slice, conds) -> latents`` run on each batch's first-pass result before
            decoding (the hires fix, :func:`sdapi.engine.hires.hires_pass`), or ``None``.

    Returns:
        ``batch_size * n_iter`` images, fewer if interrupted (later batches are not started).
    """
    steps = effective_steps(p.sampler, p.steps)
    shape = (4, p.height // 8, p.width // 8)
    images: list[Image.Image] = []
    # One encoder per job: each distinct prompt's schedule is encoded once, whatever the batch.
    schedules = ScheduleEncoder(model.encoder, schedule_length(p.sampler, p.steps, p.fix_second_order_schedule),
                                p.clip_skip, p.comma_backtrack, p.emphasis)
    for batch in p.batches():
        if control is not None:
            if control.interrupted:
                break
            control.next_batch(steps)
        conds = schedules.batch(p.prompts[batch], p.negative_prompts[batch])
        noise, generators = initial_noise(p.seeds[batch], p.subseeds[batch], p.subseed_strength, shape,
                                          p.seed_resize_from, noise_device(model.device, p.randn_source))
        step_noise = batch_step_noise(p.seeds[batch], generators, p.steps, seed_noise_shape(shape, p.seed_resize_from),
                                      p.eta_noise_seed_delta, p.batch_seeds)
        image_cond = txt2img_image_cond(model, len(p.seeds[batch]), p.width, p.height)
        latents = sample_batch(model, p.sampler, steps, noise, generators, conds, None, p.cfg_scale,
                               p.seeds[batch][0], control, step_noise=step_noise, image_cond=image_cond)
        check_nans(latents)
        if second_pass is not None:
            latents = check_nans(second_pass(latents, batch, conds))
        images.extend(decode_latents(model, latents))
        if control is not None:
            control.batch_done()
    return images
