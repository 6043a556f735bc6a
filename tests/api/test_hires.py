"""Hires fix through ``/sdapi/v1/txt2img``: output sizes, info and infotext keys, every upscaler."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import decode_png, txt2img

HIRES = {"enable_hr": True, "denoising_strength": 0.5, "seed": 11}
LATENT_MODES = ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                "Latent (nearest)", "Latent (nearest-exact)"]


def hires(client, **payload) -> dict:
    """A 64x64, 2-step txt2img with the hires fix on (``payload`` overrides)."""
    return txt2img(client, **{**HIRES, **payload})


def _sizes_and_info(body: dict):
    return [decode_png(b).size for b in body["images"]], json.loads(body["info"])


def test_hr_scale_doubles_the_size_and_reports_the_first_pass(client):
    body = hires(client, hr_scale=2, hr_upscaler="Latent", batch_size=2)
    sizes, info = _sizes_and_info(body)
    assert sizes == [(128, 128), (128, 128)]
    assert (info["width"], info["height"]) == (64, 64)  # A1111 reports the first pass
    assert info["extra_generation_params"] == {"Hires upscale": 2.0, "Hires upscaler": "Latent"}
    assert info["denoising_strength"] == 0.5
    text = info["infotexts"][0]
    assert "Size: 64x64" in text and "Denoising strength: 0.5" in text
    assert text.endswith("Version: v1.2.1, Hires upscale: 2.0, Hires upscaler: Latent")
    assert decode_png(body["images"][0]).text["parameters"] == text


def test_hires_second_pass_changes_the_image(client):
    plain = decode_png(hires(client, hr_scale=2, hr_upscaler="Latent", denoising_strength=0)["images"][0])
    refined = decode_png(hires(client, hr_scale=2, hr_upscaler="Latent")["images"][0])
    assert plain.size == refined.size == (128, 128)
    assert np.abs(np.asarray(plain, dtype=int) - np.asarray(refined, dtype=int)).mean() > 1


def test_hr_resize_one_side_keeps_the_aspect_ratio(client):
    sizes, info = _sizes_and_info(hires(client, width=64, height=128, hr_resize_x=128))
    assert sizes == [(128, 256)]
    assert info["extra_generation_params"] == {"Hires resize": "128x0"}
    assert "Hires resize: 128x0" in info["infotexts"][0] and "Hires upscale" not in info["infotexts"][0]


def test_hr_resize_both_sides_cover_then_crop(client):
    # 64x128 covering 128x128 is 128x256; the latent centre is cropped to 128x128.
    sizes, info = _sizes_and_info(hires(client, width=64, height=128, hr_resize_x=128, hr_resize_y=128,
                                          hr_second_pass_steps=3, hr_upscaler="Latent (nearest)"))
    assert sizes == [(128, 128)]
    assert info["extra_generation_params"] == {"Hires resize": "128x128", "Hires steps": 3,
                                               "Hires upscaler": "Latent (nearest)"}
    assert "Hires resize: 128x128, Hires steps: 3, Hires upscaler: Latent (nearest)" in info["infotexts"][0]


def test_hires_to_the_same_size_turns_itself_off(client):
    sizes, info = _sizes_and_info(hires(client, hr_scale=1))
    assert sizes == [(64, 64)]
    assert info["denoising_strength"] is None and info["extra_generation_params"] == {}
    assert "Denoising strength" not in info["infotexts"][0] and "Hires" not in info["infotexts"][0]


def test_legacy_firstphase_size_is_the_first_pass(client):
    sizes, info = _sizes_and_info(hires(client, width=256, height=256, firstphase_width=64,
                                          firstphase_height=64, hr_scale=2))
    assert sizes == [(128, 128)] and (info["width"], info["height"]) == (64, 64)


@pytest.mark.parametrize("upscaler", LATENT_MODES + ["Lanczos", "Nearest", "None"])
def test_every_latent_mode_and_pixel_upscaler_runs(client, upscaler):
    sizes, info = _sizes_and_info(hires(client, hr_scale=2, hr_upscaler=upscaler))
    assert sizes == [(128, 128)]
    assert info["extra_generation_params"]["Hires upscaler"] == upscaler


def test_pixel_and_latent_upscalers_give_different_images(client):
    images = {u: np.asarray(decode_png(hires(client, hr_scale=2, hr_upscaler=u)["images"][0]), dtype=int)
              for u in ("Latent", "Lanczos", "Nearest")}
    assert np.abs(images["Latent"] - images["Lanczos"]).mean() > 1
    assert np.abs(images["Lanczos"] - images["Nearest"]).mean() > 0.5


def test_plms_second_pass_runs_as_ddim(client):
    sizes, info = _sizes_and_info(hires(client, hr_scale=2, sampler_name="PLMS", steps=3))
    assert sizes == [(128, 128)] and info["sampler_name"] == "PLMS"


def test_unknown_hr_upscaler_is_a_500_as_in_a1111(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2,
                                               "enable_hr": True, "hr_upscaler": "Bogus 9x"})
    assert r.status_code == 500
    assert r.json() == {"error": "AssertionError", "detail": "", "body": "",
                        "errors": "could not find upscaler named Bogus 9x"}


def test_hires_target_over_the_pixel_budget_is_refused_early(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2,
                                               "enable_hr": True, "hr_resize_x": 65536, "hr_resize_y": 65536})
    assert r.status_code == 422 and r.json()["error"] == "InvalidRequest"
    assert "hires fix target" in r.json()["errors"]


def test_hires_counts_two_jobs_per_batch(client, state):
    hires(client, hr_scale=2, n_iter=2)
    assert state.control.job_no == 4


@pytest.mark.parametrize("sampler", ["Euler a", "Heun", "DPM2", "DPM++ SDE Karras", "DPM++ 2S a", "DPM fast", "DDIM",
                                     "UniPC"])
def test_second_pass_runs_with_each_kind_of_sampler(client, sampler):
    sizes, info = _sizes_and_info(hires(client, hr_scale=2, sampler_name=sampler, steps=3))
    assert sizes == [(128, 128)] and info["sampler_name"] == sampler


def test_one_legacy_firstphase_side_alone_is_refused_up_front(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "a", "width": 64, "height": 64, "steps": 2,
                                               "firstphase_height": 64})
    assert r.status_code == 422 and r.json()["error"] == "InvalidRequest"
    assert r.json()["errors"].startswith("firstphase_width makes the first pass 0x64")
