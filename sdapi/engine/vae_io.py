"""Images into and out of the VAE's latent space, as A1111's ``encode_first_stage``/``decode_first_stage``.

A1111 v1.2.1 *samples* the VAE posterior from the unseeded global generator, so its img2img results vary by a
few low bits from run to run; we take the posterior mean, the deterministic centre of what it draws. Decoded
images become 8-bit by truncation, as A1111's do (not rounding).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def images_to_pixels(images: list[Image.Image]) -> torch.Tensor:
    """RGB images (one size) as a ``(B, 3, H, W)`` float32 tensor in ``[-1, 1]`` (A1111's ``2 * x / 255 - 1``)."""
    arrays = [np.moveaxis(np.array(img.convert("RGB")).astype(np.float32) / 255.0, 2, 0) for img in images]
    return 2.0 * torch.from_numpy(np.stack(arrays)) - 1.0


@torch.no_grad()
def encode_pixels(model, pixels: torch.Tensor) -> torch.Tensor:
    """Scaled latents (float32, on the model's device) of ``(B, 3, H, W)`` pixels in ``[-1, 1]``."""
    vae = model.vae
    dist = vae.encode(pixels.to(model.device, vae.dtype)).latent_dist
    return (dist.mean * vae.config.scaling_factor).float().contiguous()


@torch.no_grad()
def decode_latents(model, latents: torch.Tensor) -> list[Image.Image]:
    """VAE-decode each image on its own and convert to 8-bit by truncation, as A1111 does."""
    vae = model.vae
    images = []
    for i in range(latents.shape[0]):
        # The default memory layout whatever the sampler left: the layout picks the convolution kernels.
        z = latents[i:i + 1].to(model.device, vae.dtype).contiguous() / vae.config.scaling_factor
        x = vae.decode(z).sample.float()
        x = torch.clamp((x + 1.0) / 2.0, min=0.0, max=1.0)[0]
        array = (255.0 * np.moveaxis(x.cpu().numpy(), 0, 2)).astype(np.uint8)
        images.append(Image.fromarray(array))
    return images
