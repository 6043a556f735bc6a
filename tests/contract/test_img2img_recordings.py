"""Replay the A1111 v1.2.1 img2img and extras recordings (see ``test_recordings`` for the method).

The recordings keep only a summary of each request image (format, size, mode); we send an image of that
format and size. Pixels are not compared (the recorded model is not ours), sizes, PNG text chunks, the echo,
``info`` and infotexts are.
"""

from __future__ import annotations

import base64
import copy
import io
import json

import numpy as np
from PIL import Image

from tests.conftest import load_recording
from tests.contract.comparator import compare_to_recording
from tests.contract.test_recordings import RECORDED_MODELS, noisy_for, selected, substitutions_for


def stand_in_image(summary: dict) -> str:
    """A base64 image with the recorded summary's format, size and mode (a colour gradient)."""
    width, height = summary["_decoded"]["size"]
    x, y = np.meshgrid(np.linspace(0, 255, width), np.linspace(0, 255, height))
    array = np.stack([x, y, 255 - x], axis=2).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array).convert(summary["_decoded"]["mode"]).save(buf, format=summary["_decoded"]["format"])
    return base64.b64encode(buf.getvalue()).decode()


def request_with_images(recorded: dict) -> dict:
    """The recorded request with every summarised image replaced by a stand-in."""
    request = copy.deepcopy(recorded["request"])
    for key, value in request.items():
        if isinstance(value, dict) and "_decoded" in value:
            request[key] = stand_in_image(value)
        elif isinstance(value, list):
            request[key] = [stand_in_image(v) if isinstance(v, dict) and "_decoded" in v else v for v in value]
    return request


def test_img2img_basic_matches_recording(client):
    state = client.app.state.sdapi
    recorded = load_recording("post-img2img-basic.json")
    recorded_hash = json.loads(recorded["response"]["info"])["sd_model_hash"]
    with selected(state, RECORDED_MODELS[recorded_hash][2]):
        r = client.post("/sdapi/v1/img2img", json=request_with_images(recorded))
    assert compare_to_recording(recorded, r.status_code, r.json(), substitutions=substitutions_for(state),
                                noisy=noisy_for(recorded["request"])) == []


def test_img2img_invalid_base64_equals_recording(client):
    recorded = load_recording("error-img2img-invalid-base64.json")
    r = client.post("/sdapi/v1/img2img", json=recorded["request"])
    assert (r.status_code, r.json()) == (recorded["status"], recorded["response"])


def test_extra_single_image_lanczos_matches_recording(client):
    recorded = load_recording("post-extra-single-image-lanczos.json")
    r = client.post("/sdapi/v1/extra-single-image", json=request_with_images(recorded))
    assert compare_to_recording(recorded, r.status_code, r.json(), substitutions={}, noisy=set()) == []


def test_latent_upscale_modes_is_served_although_v121_had_none(client):
    """Deliberate difference: A1111 v1.2.1 answers 404 (recorded); later versions list the latent modes."""
    assert load_recording("get-latent-upscale-modes.json")["status"] == 404
    r = client.get("/sdapi/v1/latent-upscale-modes")
    assert r.status_code == 200
    assert [m["name"] for m in r.json()] == ["Latent", "Latent (antialiased)", "Latent (bicubic)",
                                            "Latent (bicubic antialiased)", "Latent (nearest)",
                                            "Latent (nearest-exact)"]
