"""Seeds and initial noise drawn as A1111 draws them on CPU."""

from __future__ import annotations

import torch

from sdapi.engine.sampling.noise import initial_noise
from sdapi.seeds import image_seeds, resolve_seed


def test_resolve_seed():
    assert resolve_seed(5) == 5 and resolve_seed(5.0) == 5
    for value in (-1, None, ""):
        assert 0 <= resolve_seed(value) < 4294967294


def test_image_seeds_plus_i_unless_variation():
    assert image_seeds(10, 50, 0, 3) == ([10, 11, 12], [50, 51, 52])
    assert image_seeds(10, 50, 0.5, 3) == ([10, 10, 10], [50, 51, 52])


def test_initial_noise_is_torch_manual_seed_randn_and_the_stream_continues():
    noise, gens = initial_noise([1234, 1235], [0, 1], 0.0, (4, 8, 8))
    torch.manual_seed(1234)
    expected = torch.randn((4, 8, 8))
    step_noise = torch.randn((4, 8, 8))
    assert torch.equal(noise[0], expected)
    torch.manual_seed(1235)
    assert torch.equal(noise[1], torch.randn((4, 8, 8)))
    # Ancestral step noise continues each image's own stream, right after its initial latent.
    assert torch.equal(torch.randn((1, 4, 8, 8), generator=gens[0])[0], step_noise)


def test_variation_mixes_toward_the_subseed_noise():
    plain, _ = initial_noise([7], [99], 0.0, (4, 8, 8))
    full, _ = initial_noise([7], [99], 1.0, (4, 8, 8))
    half, _ = initial_noise([7], [99], 0.3, (4, 8, 8))
    torch.manual_seed(99)
    assert torch.allclose(full[0], torch.randn((4, 8, 8)), atol=1e-5)
    assert not torch.equal(half, plain) and not torch.equal(half, full)


def test_seed_resize_pastes_the_small_noise_in_the_middle():
    noise, _ = initial_noise([3], [0], 0.0, (4, 8, 8), seed_resize_from=(32, 32))
    torch.manual_seed(3)
    small = torch.randn((4, 4, 4))
    assert torch.equal(noise[0, :, 2:6, 2:6], small)
    torch.manual_seed(3)
    full = torch.randn((4, 8, 8))
    assert torch.equal(noise[0, :, 0, :], full[:, 0, :])
