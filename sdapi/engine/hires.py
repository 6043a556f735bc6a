"""The hires fix second pass (A1111 v1.2.1 ``StableDiffusionProcessingTxt2Img.sample`` after the first pass).

The first pass's latents are upscaled to the target size, either in latent space (the "Latent" modes:
``torch.nn.functional.interpolate``) or in pixels (decode, :func:`sdapi.resize.resize_image` mode 0 with the
upscaler, encode). Both sides given (``hr_resize_x`` and ``hr_resize_y``) cover the target and crop the latent
centre. Then fresh noise from the same seeds and an img2img pass of exactly ``steps`` steps (the fixed-steps
rule) at ``denoising_strength``.
"""

from __future__ import annotations

import torch

from sdapi.engine.control import JobControl
from sdapi.engine.image_cond import img2img_image_cond, txt2img_image_cond
from sdapi.engine.img2img import Img2ImgStart, fixed_steps, sample_img2img
from sdapi.engine.noise import initial_noise, noise_device
from sdapi.engine.params import HiresParams, Txt2ImgParams
from sdapi.engine.prompt_conds import BatchConds
from sdapi.engine.txt2img import decode_latents
from sdapi.engine.upscale_model import model_runner
from sdapi.engine.vae_io import encode_pixels, images_to_pixels
from sdapi.resize import JUST_RESIZE, resize_image
from sdapi.upscalers import Tiling, enlarger


def truncate(latents: torch.Tensor | None, truncate_x: int, truncate_y: int) -> torch.Tensor | None:
    """Crop ``truncate_x/y`` latent pixels, centred (the extra half on the right/bottom), as A1111 does."""
    if latents is None or (truncate_x == 0 and truncate_y == 0):
        return latents
    h, w = latents.shape[2], latents.shape[3]
    return latents[:, :, truncate_y // 2:h - (truncate_y + 1) // 2, truncate_x // 2:w - (truncate_x + 1) // 2]


def upscale_latents(model, latents: torch.Tensor, hires: HiresParams, mask_weight: float,
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


def hires_pass(model, p: Txt2ImgParams, batch: slice, latents: torch.Tensor, conds: BatchConds,
               control: JobControl | None = None, tiling: Tiling = Tiling()) -> torch.Tensor:
    """Upscale one batch's first-pass latents and refine them; returns the final latents.

    Args:
        model: the loaded model.
        p: the job (``p.hires`` set).
        batch: the batch's index range (its seeds).
        latents: the first pass's result.
        conds: the batch's conditioning (the second pass uses the first pass's prompts).
        control: progress, interrupt and skip (the second pass is a job of its own, as A1111 counts it).
        tiling: model upscalers' tile options.
    """
    hires = p.hires
    upscaled, image_cond = upscale_latents(model, latents, hires, p.mask_weight, tiling)
    upscaled = truncate(upscaled, hires.truncate_x, hires.truncate_y)
    image_cond = truncate(image_cond, hires.truncate_x, hires.truncate_y)
    noise, generators = initial_noise(p.seeds[batch], p.subseeds[batch], p.subseed_strength,
                                      tuple(upscaled.shape[1:]), device=noise_device(model.device, p.randn_source))
    steps, t_enc = fixed_steps(hires.steps, hires.denoising_strength)
    if control is not None:
        control.next_pass(t_enc + 1)
    start = Img2ImgStart(upscaled, steps, t_enc, image_cond=image_cond)
    return sample_img2img(model, hires.sampler, start, noise, generators, conds, p.cfg_scale, control)
