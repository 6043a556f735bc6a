"""ControlNet units on an SDXL checkpoint: a tiny random SDXL ControlNet (built from the tiny SDXL UNet's config,
written in the original ``control_model.`` layout) guides the tiny SDXL model over HTTP."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from sdapi.app import create_app
from sdapi.settings import Settings
from tests.api.test_controlnet import b64, legacy_hash, pixels, unit
from tests.conftest import txt2img

SDXL = "demo-sdxl.safetensors"


@pytest.fixture(scope="module")
def sdxl_control(tmp_path_factory):
    """A client over a data dir with the tiny SDXL checkpoint and an SDXL ControlNet; the ControlNet's name."""
    from safetensors.torch import save_file

    from sdapi.engine.controlnet_file import demo_controlnet, write_demo_controlnet
    from sdapi.engine.demo_sdxl import build_tiny_sdxl_pipeline, write_demo_sdxl

    root = tmp_path_factory.mktemp("sdxl-controlnet")
    write_demo_sdxl(root)
    config = build_tiny_sdxl_pipeline(0).unet.config
    path = write_demo_controlnet(root / "models" / "ControlNet" / "sdxl-control.safetensors", config, seed=1)
    # The same ControlNet in diffusers' layout, as most SDXL ControlNets are published.
    save_file({k: v.contiguous() for k, v in demo_controlnet(config, seed=1).state_dict().items()},
              str(root / "models" / "ControlNet" / "sdxl-control-diffusers.safetensors"))
    settings = Settings(data_dir=root, cache_dir=tmp_path_factory.mktemp("sdxl-controlnet-cache"), num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, f"sdxl-control [{legacy_hash(path)}]"


def test_both_sdxl_controlnet_layouts_guide_alike(sdxl_control):
    client, model = sdxl_control
    diffusers_name = next(name for name in client.get("/controlnet/model_list").json()["model_list"]
                          if name.startswith("sdxl-control-diffusers"))
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).rectangle([16, 16, 48, 40], fill="black")
    drawing = b64(image)
    original = generate(client, [unit(model, drawing)])
    converted = generate(client, [unit(diffusers_name, drawing)])
    assert (pixels(original) == pixels(converted)).all()


def generate(client, units=None, **payload) -> dict:
    extra = {"alwayson_scripts": {"controlnet": {"args": units}}} if units is not None else {}
    return txt2img(client, seed=7, steps=3, override_settings={"sd_model_checkpoint": SDXL}, **extra, **payload)


def test_an_sdxl_controlnet_guides_the_sdxl_model(sdxl_control):
    client, model = sdxl_control
    assert model in client.get("/controlnet/model_list").json()["model_list"]
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).ellipse([12, 12, 52, 52], fill="black")
    drawing = b64(image)
    plain = generate(client)
    guided = generate(client, [unit(model, drawing)])
    assert np.abs(pixels(guided).astype(int) - pixels(plain).astype(int)).max() > 0
    assert "ControlNet 0: " in guided["info"]
    silent = generate(client, [unit(model, drawing, weight=0)])
    assert (pixels(silent) == pixels(plain)).all()
    hires = generate(client, [unit(model, drawing)], enable_hr=True, hr_scale=1.5, denoising_strength=0.5,
                     hr_upscaler="Latent")
    assert pixels(hires).shape[:2] == (96, 96)
