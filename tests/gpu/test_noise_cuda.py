"""CUDA noise as A1111 draws it by default (``randn_source: GPU``): on the device, with the device's generator.

A GPU-made A1111 image is reproduced only with these numbers; the CPU fixtures use the CPU generator. Skipped where
there is no CUDA.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.engine.sampling.noise import initial_noise, noise_device
from sdapi.engine.sampling.noise import batch_step_noise
from sdapi.settings import Settings
from tests.conftest import decode_png

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SHAPE = (4, 8, 8)


def test_seeded_noise_is_the_cuda_generators():
    device = noise_device("cuda", "GPU")
    noise, generators = initial_noise([1234], [0], 0.0, SHAPE, device=device)
    step = batch_step_noise([1234], generators, steps=4, shape=SHAPE)
    # A1111: devices.randn(seed, shape) = torch.manual_seed(seed); torch.randn(shape, device=cuda), then the
    # sampler's randn_like continues the global CUDA generator.
    torch.manual_seed(1234)
    expected = torch.randn(SHAPE, device="cuda")
    following = torch.randn((1, *SHAPE), device="cuda")
    assert noise.device.type == "cuda" and torch.equal(noise[0], expected)
    assert torch.equal(step(torch.empty(1, *SHAPE, device="cuda")), following)
    torch.manual_seed(1234)
    assert not torch.equal(noise[0].cpu(), torch.randn(SHAPE))


def test_batch_pre_draws_on_the_device():
    seeds = [7, 8]
    _, generators = initial_noise(seeds, [0, 1], 0.0, SHAPE, device=noise_device("cuda"))
    step = batch_step_noise(seeds, generators, steps=2, shape=SHAPE)
    first = step(torch.empty(2, *SHAPE, device="cuda"))
    torch.manual_seed(8)
    torch.randn(SHAPE, device="cuda")
    assert torch.equal(first[1], torch.randn(SHAPE, device="cuda"))


@pytest.fixture(scope="module")
def cuda_client(data_dir, tmp_path_factory):
    settings = Settings(data_dir=data_dir, cache_dir=tmp_path_factory.mktemp("cuda-noise"), device="auto")
    with TestClient(create_app(settings)) as client:
        yield client


def generate(client, **payload) -> dict:
    body = {"prompt": "a cat", "width": 64, "height": 64, "steps": 4, "seed": 3, **payload}
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("sampler", ["DPM++ 2S a", "DPM fast", "DPM adaptive", "Euler a"])
def test_own_and_diffusers_samplers_run_on_cuda_with_gpu_noise(cuda_client, sampler):
    gpu = generate(cuda_client, sampler_name=sampler, batch_size=2)
    cpu = generate(cuda_client, sampler_name=sampler, batch_size=2, override_settings={"randn_source": "CPU"})
    a, b = (np.asarray(decode_png(x["images"][0])).astype(int) for x in (gpu, cpu))
    assert np.abs(a - b).mean() > 5  # other generator, other noise, other image
    assert "RNG: CPU" in json.loads(cpu["info"])["infotexts"][0]
    assert "RNG" not in json.loads(gpu["info"])["infotexts"][0]
