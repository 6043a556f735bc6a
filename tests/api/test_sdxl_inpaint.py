"""SDXL inpainting checkpoints through HTTP, on a tiny random SDXL file with a 9-channel UNet (original single-file
layout, written here): listed and loaded, img2img inpainting with A1111's inpainting conditioning (mask and
masked-image latent after the latent channels), and txt2img with its all-repaint conditioning and A1111 v1.10's
``is_using_inpainting_conditioning`` for SDXL models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from sdapi.app import create_app
from sdapi.settings import Settings
from tests.api.test_model_files import b64, gradient
from tests.conftest import decode_png

INPAINT = "demo-sdxl-inpaint.safetensors"
OPTIONS = {"sd_model_checkpoint": "demo-sdxl-inpaint"}
JOB = {"prompt": "a photo of a cat", "width": 64, "height": 64, "steps": 4, "seed": 7, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def inpaint_dir(tmp_path_factory):
    """A data dir with a tiny SDXL inpainting checkpoint (the tiny SDXL topology, 9 input channels)."""
    from sdapi.engine.demo_sdxl import write_demo_sdxl_checkpoint

    root = tmp_path_factory.mktemp("sdxl-inpaint-data")
    write_demo_sdxl_checkpoint(root / "models" / "Stable-diffusion" / INPAINT, seed=5, in_channels=9)
    return root


@pytest.fixture(scope="module")
def client(inpaint_dir, tmp_path_factory):
    settings = Settings(data_dir=inpaint_dir, cache_dir=tmp_path_factory.mktemp("sdxl-inpaint-cache"), num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def post(client, route: str, **payload) -> dict:
    r = client.post(f"/sdapi/v1/{route}", json={**JOB, **payload, "override_settings": {
        **OPTIONS, **payload.get("override_settings", {})}})
    assert r.status_code == 200, r.text
    return r.json()


def pixels(body: dict) -> np.ndarray:
    return np.asarray(decode_png(body["images"][0])).astype(int)


def square_mask() -> Image.Image:
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    return mask


def test_the_sdxl_inpainting_file_is_detected_listed_and_loaded(client, inpaint_dir):
    from sdapi.engine import model_type as mt
    from sdapi.engine.checkpoint_loader import read_checkpoint_header

    path = inpaint_dir / "models" / "Stable-diffusion" / INPAINT
    assert mt.detect_model_type(read_checkpoint_header(path).shapes) == mt.SDXL_INPAINT
    assert "demo-sdxl-inpaint" in {m["model_name"] for m in client.get("/sdapi/v1/sd-models").json()}
    state = client.app.state.sdapi
    model = state.engine.model(path)
    assert model.sdxl and model.inpainting and not model.sdxl_refiner
    assert type(model.pipe).__name__ == "StableDiffusionXLPipeline" and model.unet.config.in_channels == 9


def test_inpainting_sees_the_mask_and_keeps_the_rest(client):
    init = gradient()
    masked = post(client, "img2img", init_images=[b64(init)], mask=b64(square_mask()), denoising_strength=0.8,
                  inpainting_fill=1, inpaint_full_res=False, mask_blur=0)
    info = json.loads(masked["info"])
    assert info["is_using_inpainting_conditioning"] is True
    assert "Conditional mask weight: 1.0" in info["infotexts"][0]
    whole = post(client, "img2img", init_images=[b64(init)], denoising_strength=0.8)
    inside, outside = (slice(20, 44), slice(20, 44)), (slice(0, 12), slice(0, 64))
    # The UNet's extra channels differ (masked-image latent, mask), so the repainted area differs too.
    assert np.abs(pixels(masked)[inside] - pixels(whole)[inside]).mean() > 1
    assert np.array_equal(pixels(masked)[outside], np.asarray(init).astype(int)[outside])


def test_the_conditional_mask_weight_blends_the_masked_image(client):
    payload = {"init_images": [b64(gradient())], "mask": b64(square_mask()), "denoising_strength": 0.8,
               "inpainting_fill": 1, "mask_blur": 0}
    full = post(client, "img2img", **payload)
    half = post(client, "img2img", **payload, override_settings={"inpainting_mask_weight": 0.5})
    assert not np.array_equal(pixels(full), pixels(half))
    assert "Conditional mask weight: 0.5" in json.loads(half["info"])["infotexts"][0]


def test_the_conditioning_is_the_mask_then_the_masked_image_latent(client, inpaint_dir):
    from sdapi.engine.image_cond import img2img_image_cond, txt2img_image_cond
    from sdapi.engine.vae_io import encode_pixels, images_to_pixels

    model = client.app.state.sdapi.engine.model(inpaint_dir / "models" / "Stable-diffusion" / INPAINT)
    source = images_to_pixels([gradient()])
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))
    cond = img2img_image_cond(model, source, encode_pixels(model, source), mask)
    assert cond.shape == (1, 5, 8, 8)
    assert torch.equal(cond[0, 0, :, :4], torch.zeros(8, 4)) and torch.equal(cond[0, 0, :, 4:], torch.ones(8, 4))
    blacked = source.clone()
    blacked[..., 32:] = 0
    assert torch.allclose(cond[:, 1:], encode_pixels(model, blacked), atol=1e-6)
    full = txt2img_image_cond(model, 2, 64, 48)
    assert full.shape == (2, 5, 6, 8) and torch.equal(full[:, 0], torch.ones(2, 6, 8))
    assert torch.allclose(full[:1, 1:], encode_pixels(model, torch.zeros(1, 3, 48, 64)), atol=1e-6)


def test_txt2img_on_sdxl_inpainting_has_a1111_v1_10s_flag(client):
    body = post(client, "txt2img")
    assert np.asarray(decode_png(body["images"][0])).std() > 0
    info = json.loads(body["info"])
    # A1111 v1.10's txt2img asks the ldm conditioning key, which SDXL models report as crossattn.
    assert info["is_using_inpainting_conditioning"] is False
    assert "Conditional mask weight" not in info["infotexts"][0]
    hires = {"enable_hr": True, "hr_scale": 1.5, "denoising_strength": 0.6, "steps": 2}
    latent = json.loads(post(client, "txt2img", **hires, hr_upscaler="Latent")["info"])
    pixel = json.loads(post(client, "txt2img", **hires, hr_upscaler="Lanczos")["info"])
    # A pixel upscaler's pass builds the conditioning the img2img way, which sets the flag for SDXL inpainting.
    assert latent["is_using_inpainting_conditioning"] is False and pixel["is_using_inpainting_conditioning"] is True
    assert "Conditional mask weight: 1.0" in pixel["infotexts"][0]
