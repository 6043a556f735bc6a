"""``tiling``: circular padding in the UNet and VAE for the job only (A1111's ``apply_circular``)."""

from __future__ import annotations

import json

import numpy as np
import torch

from sdapi.engine.circular import circular_padding
from tests.conftest import decode_png, txt2img


def _pixels(body: dict) -> np.ndarray:
    return np.asarray(decode_png(body["images"][0]).convert("RGB"), dtype=int)


def test_tiling_changes_the_image_and_the_next_job_is_untouched(client):
    plain = txt2img(client, seed=21, width=128, height=128, sampler_name="Euler")
    tiled = txt2img(client, seed=21, width=128, height=128, sampler_name="Euler", tiling=True)
    again = txt2img(client, seed=21, width=128, height=128, sampler_name="Euler")
    assert not np.array_equal(_pixels(plain), _pixels(tiled))
    assert plain["images"] == again["images"]
    assert json.loads(tiled["info"])["infotexts"][0] == json.loads(plain["info"])["infotexts"][0]


def test_circular_unet_is_equivariant_to_circular_shifts(state):
    """What seamless tiling means: with circular padding, shifting the input around the torus shifts the output by
    the same amount (by whole cells of the UNet's total downsampling); with zero padding it does not."""
    unet = state.engine.model(state.selected_checkpoint().filename).unet
    cell = 2 ** (len(unet.config.block_out_channels) - 1)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, unet.config.in_channels, 8 * cell, 8 * cell, generator=generator)
    text = torch.randn(1, 77, unet.config.cross_attention_dim, generator=generator)
    shift = 3 * cell

    def run(latent):
        with torch.no_grad():
            return unet(latent, 500, encoder_hidden_states=text).sample

    with circular_padding([unet], True):
        rolled_output = run(torch.roll(x, shift, dims=3))
        output_rolled = torch.roll(run(x), shift, dims=3)
    assert torch.allclose(rolled_output, output_rolled, atol=1e-4)
    assert not torch.allclose(run(torch.roll(x, shift, dims=3)), torch.roll(run(x), shift, dims=3), atol=1e-4)
    assert all(m.padding_mode == "zeros" for m in unet.modules() if isinstance(m, torch.nn.Conv2d))
