"""Live previews: a cheap latent → RGB approximation, no VAE and no extra model.

A fixed linear map from the four SD latent channels to RGB (the well-known "approx cheap" coefficients) gives a
blurry but recognisable picture at 1/8 resolution in microseconds, so ``/progress`` can afford it mid-job.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# Rows: latent channels; columns: R, G, B contributions.
LATENT_RGB = torch.tensor([
    [0.298, 0.207, 0.208],
    [0.187, 0.286, 0.173],
    [-0.158, 0.189, 0.264],
    [-0.184, -0.271, -0.473],
])


def approx_cheap(latents: torch.Tensor) -> Image.Image | None:
    """Preview of the first image of a batch of SD latents ``(B, 4, H/8, W/8)``; ``None`` for anything else."""
    if latents is None or latents.ndim != 4 or latents.shape[1] != LATENT_RGB.shape[0]:
        return None
    sample = latents[0].detach().to("cpu", torch.float32)
    rgb = torch.einsum("chw,cr->hwr", sample, LATENT_RGB)
    array = ((rgb.clamp(-1, 1) + 1.0) * 127.5).numpy().astype(np.uint8)
    return Image.fromarray(array)


class LatentPreview:
    """A preview of the running batch that renders its latents only when asked (most steps nobody asks).

    Args:
        latents: the batch's current latents (kept by reference, never copied per step).
    """

    def __init__(self, latents: torch.Tensor):
        self.latents = latents

    def image(self) -> Image.Image | None:
        return approx_cheap(self.latents)
