"""An img2img / inpainting job on the device: encode the prepared images, sample every batch, decode.

The PIL side (resize modes, mask blur/crop/fill, compositing the result over the original) happens outside the
engine (:mod:`sdapi.img2img_images`); this module gets images at the processing size and the processing-size
mask, as A1111's ``StableDiffusionProcessingImg2Img.init`` leaves them.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from sdapi.engine.control import JobControl
from sdapi.engine.image_cond import img2img_image_cond
from sdapi.engine.img2img import (
    Img2ImgStart,
    fixed_steps,
    img2img_steps,
    sample_img2img,
)
from sdapi.engine.noise import initial_noise, noise_device
from sdapi.engine.params import Img2ImgParams
from sdapi.engine.prompt_conds import ScheduleEncoder, schedule_length
from sdapi.engine.txt2img import check_nans, decode_latents
from sdapi.engine.vae_io import encode_pixels, images_to_pixels

FILL_LATENT_NOISE, FILL_LATENT_NOTHING = 2, 3


def latent_keep_mask(mask: Image.Image | None, latent: torch.Tensor) -> torch.Tensor | None:
    """A1111's ``p.mask``: the mask shrunk to latent size (PIL's default filter), rounded, inverted (1 = keep)."""
    if mask is None:
        return None
    small = mask.convert("RGB").resize((latent.shape[3], latent.shape[2]))
    repaint = np.around(np.array(small, dtype=np.float32)[:, :, 0] / 255)
    keep = 1.0 - torch.from_numpy(np.tile(repaint[None, None], (1, latent.shape[1], 1, 1)))
    return keep.to(latent)


def encode_init_images(model, p: Img2ImgParams) -> tuple[torch.Tensor, torch.Tensor]:
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


def run_img2img(model, p: Img2ImgParams, control: JobControl | None = None) -> list[Image.Image]:
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
    start = Img2ImgStart(latent, steps, t_enc, keep, image_cond)
    shape = tuple(latent.shape[1:])
    schedules = ScheduleEncoder(model.encoder, schedule_length(p.sampler, p.steps, p.fix_second_order_schedule),
                                p.clip_skip, p.comma_backtrack, p.emphasis)
    images: list[Image.Image] = []
    for batch in p.batches():
        if control is not None:
            if control.interrupted:
                break
            control.next_batch(t_enc + 1)
        conds = schedules.batch(p.prompts[batch], p.negative_prompts[batch])
        noise, generators = initial_noise(p.seeds[batch], p.subseeds[batch], p.subseed_strength, shape,
                                          p.seed_resize_from, noise_device(model.device, p.randn_source))
        if p.noise_multiplier != 1.0:
            noise = noise * p.noise_multiplier
        latents = start.keep_original(sample_img2img(model, p.sampler, start, noise, generators, conds,
                                                     p.cfg_scale, control))
        check_nans(latents)
        images.extend(decode_latents(model, latents))
        if control is not None:
            control.batch_done()
    return images
