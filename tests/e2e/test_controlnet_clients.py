"""webuiapi's ControlNet helpers against a real server: ``ControlNetUnit`` in txt2img/img2img,
``controlnet_model_list()``, ``controlnet_module_list()``, ``controlnet_version()``, ``controlnet_detect()``."""

from __future__ import annotations

from urllib.parse import urlparse

import numpy as np
import pytest
import webuiapi
from PIL import Image, ImageDraw

from sdapi.app import create_app
from sdapi.files import legacy_hash
from tests.live_server import serve_in_thread


@pytest.fixture(scope="module")
def api(client, data_dir):
    from sdapi.engine.demo_files import write_demo_controlnet_file

    write_demo_controlnet_file(data_dir)
    with serve_in_thread(create_app(state=client.app.state.sdapi, load_model=False)) as url:
        parsed = urlparse(url)
        yield webuiapi.WebUIApi(host=parsed.hostname, port=parsed.port, sampler="Euler a", steps=2)


def drawing() -> Image.Image:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).ellipse([12, 12, 52, 52], outline="black", width=3)
    return image


def test_listings(api, data_dir):
    from sdapi.engine.demo_files import DEMO_CONTROLNET

    name = f"demo-control [{legacy_hash(data_dir / DEMO_CONTROLNET)}]"
    assert name in api.controlnet_model_list()
    assert "canny" in api.controlnet_module_list()
    assert api.controlnet_version() == 3


def test_control_net_unit_in_txt2img_and_img2img(api, data_dir):
    unit = webuiapi.ControlNetUnit(image=drawing(), module="canny", model="demo-control", threshold_a=100,
                                   threshold_b=200)
    plain = api.txt2img(prompt="a cat", width=64, height=64, seed=5)
    result = api.txt2img(prompt="a cat", width=64, height=64, seed=5, controlnet_units=[unit])
    assert len(result.images) == 2
    assert not np.array_equal(np.asarray(plain.image), np.asarray(result.image))
    # The infotext names the model as the unit did, and a threshold the client sent as a float (the extension).
    assert 'ControlNet 0: "Module: canny, Model: demo-control, Weight: 1.0' in result.info["infotexts"][0]
    assert "Threshold A: 100.0, Threshold B: 200.0" in result.info["infotexts"][0]
    # webuiapi sends "" for a unit without image: img2img then uses the init image.
    out = api.img2img(images=[drawing()], prompt="a cat", width=64, height=64, seed=5, denoising_strength=0.5,
                      controlnet_units=[webuiapi.ControlNetUnit(module="invert", model="demo-control")])
    assert len(out.images) == 2


def test_controlnet_detect(api):
    # webuiapi sends the images as "controlnet_images" (the extension's earlier name).
    result = api.controlnet_detect([drawing()], module="canny", processor_res=64, threshold_a=100, threshold_b=200)
    assert result.info == "Success" and len(result.images) == 1
    edges = np.asarray(result.images[0])
    assert edges.max() == 255 and edges.min() == 0
