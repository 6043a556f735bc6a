"""One generation job on the device, batch by batch: txt2img (with its hires fix) and img2img/inpainting.

Each batch gets its conditioning, its seeded noise and its sampler noise as A1111 v1.2.1 draws them, goes through
the one sampling core (:func:`sdapi.engine.sampling.core.sample`), and is decoded. The PIL side of img2img
(resize modes, mask blur/crop/fill, compositing over the original) happens before and after, outside the engine;
this module gets images and the mask at the processing size, as A1111's ``init`` leaves them.

The hires fix (A1111's ``StableDiffusionProcessingTxt2Img.sample`` after the first pass) upscales the first pass
in latent space (the "Latent" modes) or in pixels (decode, resize with the upscaler, encode); both resize sides
given crop the latent centre; then fresh noise from the same seeds and an image pass of exactly ``steps`` steps
(the fixed-steps rule) at ``denoising_strength``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from PIL import Image

from sdapi.engine.errors import NansException, SamplingInterrupted
from sdapi.engine.image_cond import img2img_image_cond, txt2img_image_cond
from sdapi.engine.model import LoadedModel
from sdapi.engine.params import HiresParams, Img2ImgParams, Txt2ImgParams
from sdapi.engine.sampling.conds import BatchConds, ScheduleEncoder, schedule_length
from sdapi.engine.sampling.core import SamplingStart, sample
from sdapi.engine.sampling.noise import batch_step_noise, initial_noise, noise_device, seed_noise_shape
from sdapi.engine.upscale_model import model_runner
from sdapi.engine.upscalers import Tiling, enlarger
from sdapi.engine.vae_io import decode_latents, encode_pixels, images_to_pixels
from sdapi.resize import JUST_RESIZE, resize_image

NAN_MESSAGE = ("A tensor with all NaNs was produced in Unet. "
               "Use --disable-nan-check commandline argument to disable this check.")
FILL_LATENT_NOISE, FILL_LATENT_NOTHING = 2, 3


class BatchEvents(Protocol):
    """What a generation job tells the outside world (:class:`sdapi.engine.api.JobEvents` in latent terms)."""

    @property
    def interrupted(self) -> bool: ...

    def should_stop(self) -> bool: ...

    def next_batch(self) -> None: ...

    def next_pass(self) -> None: ...

    def sampling(self, steps: int) -> None: ...

    def step(self, step: int, latents: torch.Tensor) -> None: ...

    def batch_done(self) -> None: ...


def check_nans(latents: torch.Tensor) -> torch.Tensor:
    """``latents`` unchanged, or A1111's ``NansException`` when sampling produced NaNs."""
    if torch.isnan(latents).any():
        raise NansException(NAN_MESSAGE)
    return latents


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


class _Batches:
    """What every batch of a job shares: the prompt schedules (each distinct prompt encoded once) and the noise
    settings."""

    def __init__(self, model: LoadedModel, p: Txt2ImgParams, events: BatchEvents | None):
        self.model = model
        self.p = p
        self.events = events
        self.schedules = ScheduleEncoder(model.encoder, schedule_length(p.sampler, p.steps,
                                                                        p.fix_second_order_schedule),
                                         p.clip_skip, p.comma_backtrack, p.emphasis,
                                         stop=(lambda: events.interrupted) if events is not None else None)

    def __iter__(self):
        """Each batch's index range, until an interrupt; reports batch starts and ends."""
        for batch in self.p.batches():
            if self.events is not None:
                if self.events.interrupted:
                    return
                self.events.next_batch()
            yield batch
            if self.events is not None:
                self.events.batch_done()

    def conds(self, batch: slice) -> BatchConds | None:
        """The batch's conditioning, or ``None`` when the job stopped while its prompts were encoded."""
        try:
            return self.schedules.batch(self.p.prompts[batch], self.p.negative_prompts[batch])
        except SamplingInterrupted:
            return None

    def sample(self, batch: slice, start: SamplingStart, conds: BatchConds, noise_multiplier: float = 1.0,
               sampler=None, seed_resize: bool = True) -> torch.Tensor:
        """One sampling pass of the batch from ``start`` with fresh seeded noise at the start latent's size.

        Args:
            noise_multiplier: A1111's ``initial_noise_multiplier`` (img2img).
            sampler: another sampler than the job's (the hires pass's).
            seed_resize: apply the job's seed resize (A1111's hires pass draws its noise without it).
        """
        p, seeds = self.p, self.p.seeds[batch]
        shape = tuple(start.latent.shape[1:]) if start.latent is not None else (4, p.height // 8, p.width // 8)
        resize_from = p.seed_resize_from if seed_resize else (-1, -1)
        noise, generators = initial_noise(seeds, p.subseeds[batch], p.subseed_strength, shape, resize_from,
                                          noise_device(self.model.device, p.randn_source))
        step_noise = batch_step_noise(seeds, generators, p.steps, seed_noise_shape(shape, resize_from),
                                      p.eta_noise_seed_delta, p.batch_seeds)
        if noise_multiplier != 1.0:
            noise = noise * noise_multiplier
        latents = sample(self.model, sampler or p.sampler, start, noise, conds, p.cfg_scale, step_noise, seeds,
                         p.sampler_settings, self.events)
        return check_nans(latents)


def run_txt2img(model: LoadedModel, p: Txt2ImgParams, events: BatchEvents | None = None,
                tiling: Tiling = Tiling()) -> list[Image.Image]:
    """Generate every image of a txt2img job (and its hires fix).

    Args:
        tiling: model upscalers' tile options (a hires fix with an ESRGAN-type upscaler).

    Returns:
        ``batch_size * n_iter`` images, fewer if interrupted (later batches are not started).
    """
    batches = _Batches(model, p, events)
    images: list[Image.Image] = []
    for batch in batches:
        conds = batches.conds(batch)
        if conds is None:
            break
        image_cond = txt2img_image_cond(model, len(p.seeds[batch]), p.width, p.height)
        latents = batches.sample(batch, SamplingStart(p.steps, image_cond=image_cond), conds)
        if p.hires is not None:
            latents = hires_pass(batches, batch, latents, conds, tiling)
        images.extend(decode_latents(model, latents))
    return images


def truncate(latents: torch.Tensor | None, truncate_x: int, truncate_y: int) -> torch.Tensor | None:
    """Crop ``truncate_x/y`` latent pixels, centred (the extra half on the right/bottom), as A1111 does."""
    if latents is None or (truncate_x == 0 and truncate_y == 0):
        return latents
    h, w = latents.shape[2], latents.shape[3]
    return latents[:, :, truncate_y // 2:h - (truncate_y + 1) // 2, truncate_x // 2:w - (truncate_x + 1) // 2]


def upscale_latents(model: LoadedModel, latents: torch.Tensor, hires: HiresParams, mask_weight: float,
                    tiling: Tiling) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first pass upscaled to the hires target, and an inpainting model's image conditioning for it."""
    if hires.latent_mode is not None:
        mode = hires.latent_mode
        upscaled = torch.nn.functional.interpolate(latents, size=(hires.height // 8, hires.width // 8),
                                                   mode=mode.mode, antialias=mode.antialias)
        return upscaled, txt2img_image_cond(model, latents.shape[0], hires.width, hires.height)
    enlarge = enlarger(hires.upscaler, model_runner(model.device, tiling))
    images = [resize_image(JUST_RESIZE, image, hires.width, hires.height, enlarge)
              for image in decode_latents(model, latents)]
    pixels = images_to_pixels(images)
    upscaled = encode_pixels(model, pixels)
    return upscaled, img2img_image_cond(model, pixels, upscaled, None, mask_weight)


def hires_pass(batches: _Batches, batch: slice, latents: torch.Tensor, conds: BatchConds,
               tiling: Tiling) -> torch.Tensor:
    """Upscale one batch's first-pass latents and refine them (a job of its own, as A1111 counts it)."""
    p, hires = batches.p, batches.p.hires
    upscaled, image_cond = upscale_latents(batches.model, latents, hires, p.mask_weight, tiling)
    upscaled = truncate(upscaled, hires.truncate_x, hires.truncate_y)
    image_cond = truncate(image_cond, hires.truncate_x, hires.truncate_y)
    if batches.events is not None:
        batches.events.next_pass()
    steps, t_enc = fixed_steps(hires.steps, hires.denoising_strength)
    start = SamplingStart(steps, t_enc, upscaled, image_cond=image_cond)
    return batches.sample(batch, start, conds, sampler=hires.sampler, seed_resize=False)


def latent_keep_mask(mask: Image.Image | None, latent: torch.Tensor) -> torch.Tensor | None:
    """A1111's ``p.mask``: the mask shrunk to latent size (PIL's default filter), rounded, inverted (1 = keep)."""
    if mask is None:
        return None
    small = mask.convert("RGB").resize((latent.shape[3], latent.shape[2]))
    repaint = np.around(np.array(small, dtype=np.float32)[:, :, 0] / 255)
    keep = 1.0 - torch.from_numpy(np.tile(repaint[None, None], (1, latent.shape[1], 1, 1)))
    return keep.to(latent)


def encode_init_images(model: LoadedModel, p: Img2ImgParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's source pixels and latents (one image is repeated over the batch, as A1111 does)."""
    pixels = images_to_pixels(p.init_images)
    latent = encode_pixels(model, pixels)
    if pixels.shape[0] == 1 and p.batch_size > 1:
        pixels = pixels.expand(p.batch_size, -1, -1, -1)
        latent = latent.expand(p.batch_size, -1, -1, -1)
    if p.latent_resize:
        latent = torch.nn.functional.interpolate(latent, size=(p.height // 8, p.width // 8), mode="bilinear")
    return pixels, latent


def fill_masked_latent(latent: torch.Tensor, keep: torch.Tensor | None, p: Img2ImgParams) -> torch.Tensor:
    """``inpainting_fill`` 2 (latent noise: the first batch's seeds' noise) and 3 (latent nothing: zeros)."""
    if keep is None or p.inpainting_fill not in (FILL_LATENT_NOISE, FILL_LATENT_NOTHING):
        return latent
    if p.inpainting_fill == FILL_LATENT_NOTHING:
        return latent * keep
    seeds = p.seeds[:latent.shape[0]]
    noise, _ = initial_noise(seeds, seeds, 0.0, tuple(latent.shape[1:]),
                             device=noise_device(latent.device, p.randn_source))
    return latent * keep + noise.to(latent) * (1.0 - keep)


def run_img2img(model: LoadedModel, p: Img2ImgParams, events: BatchEvents | None = None) -> list[Image.Image]:
    """Generate every image of an img2img request, batch by batch.

    Returns:
        ``batch_size * n_iter`` images at the processing size (fewer if interrupted), not yet composited over
        the original.
    """
    pixels, latent = encode_init_images(model, p)
    keep = latent_keep_mask(p.mask, latent)
    latent = fill_masked_latent(latent, keep, p)
    image_cond = img2img_image_cond(model, pixels, latent, p.mask, p.mask_weight)
    steps, t_enc = (fixed_steps if p.fix_steps else img2img_steps)(p.steps, p.denoising_strength)
    start = SamplingStart(steps, t_enc, latent, keep, image_cond=image_cond)
    batches = _Batches(model, p, events)
    images: list[Image.Image] = []
    for batch in batches:
        conds = batches.conds(batch)
        if conds is None:
            break
        latents = batches.sample(batch, start, conds, noise_multiplier=p.noise_multiplier)
        images.extend(decode_latents(model, check_nans(start.keep_original(latents))))
    return images
