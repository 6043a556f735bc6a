"""Images into and out of the VAE's latent space, as A1111's ``encode_first_stage``/``decode_first_stage``.

A1111 v1.2.1 *samples* the VAE posterior from the unseeded global generator, so its img2img results vary by a
few low bits from run to run; we take the posterior mean, the deterministic centre of what it draws. Decoded
images become 8-bit by truncation, as A1111's do (not rounding).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# Above this many pixels a CUDA decode or encode goes tile by tile (diffusers' tiled VAE, seams blended): an SDXL
# image past about 1536x1536 (a hires fix's target) would otherwise need more memory for its float32 VAE than a
# 24 GB card has left. Tiling changes pixels slightly, so it is never used below the limit, nor on CPU.
CUDA_TILE_ABOVE_PIXELS = 1536 * 1536


def tile_limit(device: torch.device) -> int | None:
    """The pixel count above which the VAE works in tiles on ``device`` (``None``: never)."""
    return CUDA_TILE_ABOVE_PIXELS if torch.device(device).type == "cuda" else None


def _tiled(pixels: int, limit: int | None) -> bool:
    return limit is not None and pixels > limit


def vae_dtype(vae) -> torch.dtype:
    """The VAE's weight dtype (a loaded ``AutoencoderKL`` or fast mode's wrapper of one), read from one parameter:
    diffusers' ``vae.dtype`` walks every module on each call."""
    return next(getattr(vae, "module", vae).decoder.parameters()).dtype


def images_to_pixels(images: list[Image.Image]) -> torch.Tensor:
    """RGB images (one size) as a ``(B, 3, H, W)`` float32 tensor in ``[-1, 1]`` (A1111's ``2 * x / 255 - 1``)."""
    arrays = [np.moveaxis(np.array(img.convert("RGB")).astype(np.float32) / 255.0, 2, 0) for img in images]
    return 2.0 * torch.from_numpy(np.stack(arrays)) - 1.0


@torch.no_grad()
def encode_pixels(model, pixels: torch.Tensor, tile_above: int | None = -1) -> torch.Tensor:
    """Scaled latents (float32, on the model's device) of ``(B, 3, H, W)`` pixels in ``[-1, 1]``.

    Args:
        tile_above: encode in tiles above this many pixels per image (``None``: never; -1: the device's rule,
            :func:`tile_limit`).
    """
    vae = model.vae
    limit = tile_limit(model.device) if tile_above == -1 else tile_above
    x = pixels.to(model.device, vae.dtype)
    if _tiled(pixels.shape[-1] * pixels.shape[-2], limit):
        dist = vae.tiled_encode(x).latent_dist
    else:
        dist = vae.encode(x).latent_dist
    return (dist.mean * vae.config.scaling_factor).float().contiguous()


@torch.no_grad()
def decode_latents(model, latents: torch.Tensor, tile_above: int | None = -1) -> list[Image.Image]:
    """VAE-decode each image on its own and convert to 8-bit by truncation, as A1111 does.

    Args:
        tile_above: decode in tiles above this many pixels per image (``None``: never; -1: the device's rule,
            :func:`tile_limit`).
    """
    vae = model.vae
    limit = tile_limit(model.device) if tile_above == -1 else tile_above
    dtype = vae_dtype(vae)
    images = []
    for i in range(latents.shape[0]):
        # The default memory layout whatever the sampler left: the layout picks the convolution kernels.
        z = latents[i:i + 1].to(model.device, dtype).contiguous() / vae.config.scaling_factor
        decode = vae.tiled_decode if _tiled(z.shape[-1] * z.shape[-2] * 64, limit) else vae.decode
        with torch.inference_mode():
            x = decode(z).sample.float()
            x = torch.clamp((x + 1.0) / 2.0, min=0.0, max=1.0)[0]
            array = (255.0 * np.moveaxis(x.cpu().numpy(), 0, 2)).astype(np.uint8)
        images.append(Image.fromarray(array))
    return images
