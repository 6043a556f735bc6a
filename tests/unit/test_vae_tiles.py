"""Large VAE work in tiles on CUDA (SDXL hires targets past what a 24 GB card holds); never on CPU or below the
limit, where the pixels stay exactly A1111's."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from sdapi.engine.demo_models import build_tiny_vae
from sdapi.engine.vae_io import CUDA_TILE_ABOVE_PIXELS, decode_latents, encode_pixels, tile_limit


def tiny_model():
    torch.manual_seed(0)
    return SimpleNamespace(vae=build_tiny_vae().eval(), device=torch.device("cpu"))


def test_tiles_only_on_cuda():
    assert tile_limit(torch.device("cpu")) is None
    assert tile_limit(torch.device("cuda")) == CUDA_TILE_ABOVE_PIXELS == 1536 * 1536


def test_below_the_limit_decoding_is_untouched_and_above_it_goes_in_tiles():
    model = tiny_model()
    # The tiny VAE's tiles are 64 pixels (its sample size): a 160x128 image takes several, blended.
    latents = torch.randn(1, 4, 16, 20, generator=torch.Generator().manual_seed(1))
    whole = np.asarray(decode_latents(model, latents, tile_above=None)[0], dtype=int)
    assert (np.asarray(decode_latents(model, latents)[0], dtype=int) == whole).all()  # CPU: never tiled
    assert (np.asarray(decode_latents(model, latents, tile_above=160 * 128)[0], dtype=int) == whole).all()
    tiled = np.asarray(decode_latents(model, latents, tile_above=160 * 128 - 1)[0], dtype=int)
    assert tiled.shape == whole.shape and (tiled != whole).any()


def test_encoding_follows_the_same_rule():
    model = tiny_model()
    pixels = torch.rand(1, 3, 128, 160, generator=torch.Generator().manual_seed(2)) * 2 - 1
    whole = encode_pixels(model, pixels, tile_above=None)
    assert torch.equal(encode_pixels(model, pixels), whole)
    tiled = encode_pixels(model, pixels, tile_above=0)
    assert tiled.shape == whole.shape and not torch.equal(tiled, whole)
