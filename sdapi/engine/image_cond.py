"""The extra UNet input of inpainting checkpoints (9-channel UNets), built as A1111 v1.2.1 builds it.

An inpainting UNet sees, besides the 4 latent channels, a 1-channel mask (1 = repaint) and the 4-channel latent of
the image with the repainted area blacked out (``inpainting_mask_weight`` blends between the plain and the masked
image). txt2img on such a model gives it an all-repaint mask and the latent of a mid-grey image (zeros in
``[-1, 1]``).

SDXL inpainting checkpoints get the same (A1111 v1.10's ``is_sdxl_inpaint`` branches: its txt2img image is 0.5 in
``[0, 1]``, the same grey, and img2img goes through the same ``inpainting_image_conditioning``), placed after the
latent channels as its ``apply_model`` concatenates ``c_concat``.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from sdapi.engine.vae_io import encode_pixels


def txt2img_image_cond(model, batch: int, width: int, height: int) -> torch.Tensor | None:
    """txt2img's conditioning: a mask of ones and the latent of a mid-grey image; ``None`` for plain models."""
    if not model.inpainting:
        return None
    latent = encode_pixels(model, torch.zeros(batch, 3, height, width))
    return torch.nn.functional.pad(latent, (0, 0, 0, 0, 1, 0), value=1.0)


def _mask_tensor(mask: Image.Image | None, like: torch.Tensor) -> torch.Tensor:
    """``(1, 1, H, W)`` mask rounded to 0/1 (ones when there is no mask), as the inpainting UNet was trained."""
    if mask is None:
        return like.new_ones(1, 1, *like.shape[-2:])
    array = np.array(mask.convert("L")).astype(np.float32) / 255.0
    return torch.round(torch.from_numpy(array[None, None])).to(like)


def img2img_image_cond(model, pixels: torch.Tensor, latent: torch.Tensor, mask: Image.Image | None,
                       mask_weight: float = 1.0) -> torch.Tensor | None:
    """img2img's conditioning for an inpainting model; ``None`` for plain models.

    Args:
        model: the loaded model.
        pixels: the batch's source images ``(B, 3, H, W)`` in ``[-1, 1]`` (after the masked-area fill).
        latent: their latents (for the size).
        mask: the processing-size mask (white = repaint), or ``None`` (everything is repainted).
        mask_weight: A1111's ``inpainting_mask_weight``.
    """
    if not model.inpainting:
        return None
    mask_t = _mask_tensor(mask, pixels)
    masked = torch.lerp(pixels, pixels * (1.0 - mask_t), mask_weight)
    masked_latent = encode_pixels(model, masked)
    mask_latent = torch.nn.functional.interpolate(mask_t, size=latent.shape[-2:]).to(masked_latent)
    return torch.cat([mask_latent.expand(masked_latent.shape[0], -1, -1, -1), masked_latent], dim=1)
