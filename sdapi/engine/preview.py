"""Live previews: a cheap latent → RGB approximation, no VAE and no extra model.

A fixed linear map from the four latent channels to RGB (A1111's "Approx cheap" coefficients, one set for SD 1.x/2.x
latents and one for SDXL's) gives a blurry but recognisable picture at 1/8 resolution in microseconds, so
``/progress`` can afford it mid-job.
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
SDXL_LATENT_RGB = torch.tensor([
    [0.3448, 0.4168, 0.4395],
    [-0.1953, -0.0290, 0.0250],
    [0.1074, 0.0886, -0.0163],
    [-0.3730, -0.2499, -0.2088],
])


def approx_cheap(latents: torch.Tensor, sdxl: bool = False) -> Image.Image | None:
    """Preview of the first image of a batch of latents ``(B, 4, H/8, W/8)`` (SDXL's coefficients for ``sdxl``);
    ``None`` for anything else."""
    coefficients = SDXL_LATENT_RGB if sdxl else LATENT_RGB
    if latents is None or latents.ndim != 4 or latents.shape[1] != coefficients.shape[0]:
        return None
    sample = latents[0].detach().to("cpu", torch.float32)
    rgb = torch.einsum("chw,cr->hwr", sample, coefficients)
    array = ((rgb.clamp(-1, 1) + 1.0) * 127.5).numpy().astype(np.uint8)
    return Image.fromarray(array)


class LatentPreview:
    """A preview of the running batch that renders its latents only when asked (most steps nobody asks).

    Args:
        latents: the batch's current latents (kept by reference, never copied per step).
        sdxl: they are SDXL latents.
    """

    def __init__(self, latents: torch.Tensor, sdxl: bool = False):
        self.latents = latents
        self.sdxl = sdxl

    def image(self) -> Image.Image | None:
        return approx_cheap(self.latents, self.sdxl)
