"""Live previews: A1111's "Approx cheap" latent → RGB map, SD 1.x/2.x coefficients and SDXL's own."""

from __future__ import annotations

import numpy as np
import torch

from sdapi.engine.preview import LATENT_RGB, SDXL_LATENT_RGB, LatentPreview, approx_cheap


def test_each_latent_channel_maps_through_its_row():
    for table, sdxl in ((LATENT_RGB, False), (SDXL_LATENT_RGB, True)):
        for channel in range(4):
            latents = torch.zeros(2, 4, 3, 5)
            latents[0, channel] = 1.0
            image = np.asarray(approx_cheap(latents, sdxl))
            assert image.shape == (3, 5, 3)
            expected = ((table[channel].clamp(-1, 1) + 1.0) * 127.5).numpy().astype(np.uint8)
            assert (image == expected).all()


def test_sdxl_latents_preview_differently_and_odd_shapes_give_none():
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert LatentPreview(latents).image().tobytes() != LatentPreview(latents, sdxl=True).image().tobytes()
    assert approx_cheap(torch.zeros(1, 9, 8, 8)) is None and approx_cheap(None) is None
