"""The requests of A1111's own API test suites (v1.2.1 ``test/basic_features``, v1.10.1 ``test/test_*.py``), sent
through HTTP: every one must answer 200, as A1111's suites assert. Written here from what those tests send (their
payloads are facts; their code stays in A1111); ``tools/run_a1111_tests.py`` runs the suites themselves against a
live server when an A1111 checkout is at hand.

A1111's test images are replaced by images made here of the same kind (a 64x64-ish picture, a black and white mask).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (96, 80, 3), dtype=np.uint8))


def mask() -> Image.Image:
    image = Image.new("RGB", (80, 96), "black")
    ImageDraw.Draw(image).ellipse((20, 24, 60, 72), fill="white")
    return image


TXT2IMG = {
    "batch_size": 1, "cfg_scale": 7, "denoising_strength": 0, "enable_hr": False, "eta": 0, "firstphase_height": 0,
    "firstphase_width": 0, "height": 64, "n_iter": 1, "negative_prompt": "", "prompt": "example prompt",
    "restore_faces": False, "s_churn": 0, "s_noise": 1, "s_tmax": 0, "s_tmin": 0, "sampler_index": "Euler a",
    "seed": -1, "seed_resize_from_h": -1, "seed_resize_from_w": -1, "steps": 3, "styles": [], "subseed": -1,
    "subseed_strength": 0, "tiling": False, "width": 64,
}

TXT2IMG_VARIANTS = [
    {},
    {"negative_prompt": "example negative prompt"},
    {"prompt": "((emphasis)), (emphasis1:1.1), [to:1], [from::2], [from:to:0.3], [alt|alt1]"},
    {"height": 128},
    {"enable_hr": True},
    {"tiling": True},
    {"restore_faces": True},
    {"sampler_index": "PLMS"},
    {"sampler_index": "DDIM"},
    {"sampler_index": "UniPC"},
    {"n_iter": 2},
    {"batch_size": 2},
]


@pytest.mark.parametrize("variant", TXT2IMG_VARIANTS, ids=lambda v: ",".join(v) or "simple")
def test_txt2img_requests_of_a1111s_suites(client, variant):
    assert client.post("/sdapi/v1/txt2img", json={**TXT2IMG, **variant}).status_code == 200


def img2img_request() -> dict:
    body = {key: value for key, value in TXT2IMG.items() if key not in ("enable_hr", "firstphase_height",
                                                                        "firstphase_width")}
    return {**body, "denoising_strength": 0.75, "include_init_images": False, "init_images": [data_url(picture())],
            "inpaint_full_res": False, "inpaint_full_res_padding": 0, "inpainting_fill": 0,
            "inpainting_mask_invert": False, "mask": None, "mask_blur": 4, "override_settings": {}, "resize_mode": 0}


IMG2IMG_VARIANTS = [
    {},
    {"mask": "MASK"},
    {"mask": "MASK", "inpainting_mask_invert": True},
    {"script_name": "sd upscale", "script_args": ["", 8, "Lanczos", 2.0]},
]


@pytest.mark.parametrize("variant", IMG2IMG_VARIANTS, ids=["simple", "masked", "inverted mask", "sd upscale"])
def test_img2img_requests_of_a1111s_suites(client, variant):
    body = {**img2img_request(), **variant}
    if body["mask"] == "MASK":
        body["mask"] = data_url(mask())
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body", [
    {"resize_mode": 0, "show_extras_results": True, "gfpgan_visibility": 0, "codeformer_visibility": 0,
     "codeformer_weight": 0, "upscaling_resize": 2, "upscaling_resize_w": 128, "upscaling_resize_h": 128,
     "upscaling_crop": True, "upscaler_1": "Lanczos", "upscaler_2": "None", "extras_upscaler_2_visibility": 0},
    {},
    {"model": "clip"},
], ids=["upscaling", "image only", "interrogate model field"])
def test_extras_requests_of_a1111s_suites(client, body):
    assert client.post("/sdapi/v1/extra-single-image", json={**body, "image": data_url(picture())}).status_code == 200


@pytest.mark.parametrize("path", ["options", "cmd-flags", "samplers", "upscalers", "sd-models", "hypernetworks",
                                  "face-restorers", "realesrgan-models", "prompt-styles", "embeddings"])
def test_listings_of_a1111s_suites(client, path):
    assert client.get(f"/sdapi/v1/{path}").status_code == 200


def test_options_write_of_a1111s_suites(client):
    before = client.get("/sdapi/v1/options").json()["send_seed"]
    assert client.post("/sdapi/v1/options", json={"send_seed": not before}).status_code == 200
    assert client.get("/sdapi/v1/options").json()["send_seed"] == (not before)
    client.post("/sdapi/v1/options", json={"send_seed": before})
