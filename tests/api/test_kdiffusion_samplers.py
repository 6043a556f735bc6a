"""Our own k-diffusion samplers and A1111's seeded-noise options, end to end through HTTP (demo checkpoint)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import decode_png, txt2img

OWN_LOOPS = ["DPM++ 2S a", "DPM++ 2S a Karras", "DPM fast", "DPM adaptive"]


def pixels(body: dict, index: int = 0) -> np.ndarray:
    return np.asarray(decode_png(body["images"][index])).astype(int)


# Not DPM adaptive: its step-size controller measures the error over the whole batch, so a batch takes other steps
# than single runs (in A1111 too).
@pytest.mark.parametrize("sampler", OWN_LOOPS[:3])
def test_batch_images_equal_single_runs_with_seed_plus_i(client, sampler):
    batch = txt2img(client, sampler_name=sampler, steps=4, seed=40, batch_size=2)
    single = txt2img(client, sampler_name=sampler, steps=4, seed=41)
    assert json.loads(batch["info"])["all_seeds"] == [40, 41]
    # CPU matmul blocking depends on the batch size: ±1 level, as in A1111 itself.
    assert np.abs(pixels(batch, 1) - pixels(single)).max() <= 1
    assert np.abs(pixels(batch, 0) - pixels(batch, 1)).mean() > 5


@pytest.mark.parametrize("sampler", ["DPM++ 2S a", "DPM fast"])
def test_the_ancestral_noise_is_seeded(client, sampler):
    a = txt2img(client, sampler_name=sampler, steps=4, seed=3)
    assert a["images"] == txt2img(client, sampler_name=sampler, steps=4, seed=3)["images"]
    assert np.abs(pixels(a) - pixels(txt2img(client, sampler_name=sampler, steps=4, seed=4))).mean() > 5


def test_eta_noise_seed_delta_changes_ancestral_samplers_only(client):
    ensd = {"override_settings": {"eta_noise_seed_delta": 31337}}
    plain = txt2img(client, sampler_name="DPM++ 2S a", steps=4, seed=8)
    shifted = txt2img(client, sampler_name="DPM++ 2S a", steps=4, seed=8, **ensd)
    assert np.abs(pixels(plain) - pixels(shifted)).mean() > 1
    assert "ENSD: 31337" in json.loads(shifted["info"])["infotexts"][0]
    euler = txt2img(client, sampler_name="Euler", steps=4, seed=8)
    assert np.array_equal(pixels(euler), pixels(txt2img(client, sampler_name="Euler", steps=4, seed=8, **ensd)))


def test_without_batch_seeds_a_batch_no_longer_matches_single_runs(client):
    off = {"override_settings": {"enable_batch_seeds": False}}
    batch = txt2img(client, sampler_name="DPM++ 2S a", steps=4, seed=50, batch_size=2, **off)
    single = txt2img(client, sampler_name="DPM++ 2S a", steps=4, seed=51)
    assert np.abs(pixels(batch, 1) - pixels(single)).max() > 1


def test_cpu_randn_source_on_a_cpu_server_changes_nothing(client):
    plain = txt2img(client, sampler_name="DPM fast", steps=4, seed=9)
    cpu = txt2img(client, sampler_name="DPM fast", steps=4, seed=9, override_settings={"randn_source": "CPU"})
    assert np.array_equal(pixels(plain), pixels(cpu))
    assert "RNG: CPU" in json.loads(cpu["info"])["infotexts"][0]
