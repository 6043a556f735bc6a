"""Ancestral noise as A1111 v1.2.1 draws it: pre-drawn per seed for batches and ENSD, then the global stream."""

from __future__ import annotations

import pytest
import torch

from sdapi.engine.sampling.noise import initial_noise, noise_device, seed_noise_shape
from sdapi.engine.sampling.noise import SamplerNoise, batch_step_noise

SHAPE = (4, 8, 8)


def a1111_single_run(seed: int, draws: int) -> list[torch.Tensor]:
    """What A1111 gives one seed: ``manual_seed``, the latent, then ``randn_like`` on the global generator."""
    torch.manual_seed(seed)
    torch.randn(SHAPE)
    return [torch.randn((1, *SHAPE))[0] for _ in range(draws)]


def test_one_seed_continues_its_stream_after_the_initial_latent():
    _, generators = initial_noise([1234], [0], 0.0, SHAPE)
    noise = batch_step_noise([1234], generators, steps=8, shape=SHAPE)
    like = torch.empty(1, *SHAPE)
    expected = a1111_single_run(1234, 10)
    assert all(torch.equal(noise(like)[0], expected[j]) for j in range(10))


def test_batch_images_get_the_noise_of_single_runs_for_as_many_draws_as_steps():
    seeds = [1234, 1235]
    _, generators = initial_noise(seeds, [0, 1], 0.0, SHAPE)
    noise = batch_step_noise(seeds, generators, steps=3, shape=SHAPE)
    like = torch.empty(2, *SHAPE)
    draws = [noise(like) for _ in range(4)]
    for i, seed in enumerate(seeds):
        single = a1111_single_run(seed, 3)
        assert all(torch.equal(draws[j][i], single[j]) for j in range(3))
    # Past the pre-drawn ones A1111 draws the whole batch from the global generator: the last seed's stream.
    torch.manual_seed(1235)
    torch.randn(SHAPE)
    [torch.randn(SHAPE) for _ in range(3)]
    assert torch.equal(draws[3], torch.randn((2, *SHAPE)))


def test_without_batch_seeds_the_batch_shares_the_last_seed_stream():
    seeds = [5, 6]
    _, generators = initial_noise(seeds, [0, 1], 0.0, SHAPE)
    noise = batch_step_noise(seeds, generators, steps=3, shape=SHAPE, batch_seeds=False)
    torch.manual_seed(6)
    torch.randn(SHAPE)
    assert torch.equal(noise(torch.empty(2, *SHAPE)), torch.randn((2, *SHAPE)))


def test_eta_noise_seed_delta_draws_step_noise_from_seed_plus_delta():
    _, generators = initial_noise([100], [0], 0.0, SHAPE)
    noise = batch_step_noise([100], generators, steps=2, shape=SHAPE, delta=31337)
    torch.manual_seed(100 + 31337)
    expected = [torch.randn(SHAPE) for _ in range(2)]
    like = torch.empty(1, *SHAPE)
    assert torch.equal(noise(like)[0], expected[0]) and torch.equal(noise(like)[0], expected[1])


def test_pre_drawn_noise_of_another_shape_is_skipped_as_a1111_does():
    # Seed resize: A1111 pre-draws at the small shape, which never fits the latent, so it draws afresh each time.
    small = seed_noise_shape(SHAPE, (32, 32))
    assert small == (4, 4, 4)
    gens = [torch.Generator().manual_seed(9), torch.Generator().manual_seed(10)]
    noise = SamplerNoise(gens, count=2, shape=small, predraw=True)
    like = torch.empty(2, *SHAPE)
    first = noise(like)
    reference = torch.Generator().manual_seed(10)
    [torch.randn(small, generator=reference) for _ in range(2)]
    assert torch.equal(first, torch.randn((2, *SHAPE), generator=reference))


def test_a_loop_that_never_asks_leaves_the_generators_alone():
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    SamplerNoise(gens, count=5, shape=SHAPE, predraw=True)
    fresh = torch.Generator().manual_seed(1)
    assert torch.equal(torch.randn(SHAPE, generator=gens[0]), torch.randn(SHAPE, generator=fresh))


@pytest.mark.parametrize("device, source, expected", [
    ("cpu", "GPU", "cpu"), ("cpu", "CPU", "cpu"), ("cuda", "GPU", "cuda"), ("cuda:1", "GPU", "cuda:1"),
    ("cuda", "CPU", "cpu"), ("mps", "GPU", "cpu"),
])
def test_noise_is_drawn_where_a1111_draws_it(device, source, expected):
    assert noise_device(device, source) == torch.device(expected)


def test_initial_noise_defaults_to_the_cpu_generator():
    noise, generators = initial_noise([7], [0], 0.0, SHAPE)
    assert noise.device.type == "cpu" and generators[0].device.type == "cpu"
