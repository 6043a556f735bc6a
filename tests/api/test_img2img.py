"""``/sdapi/v1/img2img``: denoising strength, masks and inpainting fill, resize modes, echo and errors."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import decode_png

W = H = 64


def gradient(width: int = W, height: int = H, phase: int = 0) -> Image.Image:
    """A deterministic RGB test picture: colour ramps plus a checkerboard."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    checker = ((x // 8 + y // 8 + phase) % 2) * 60
    array = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), 120 + checker], axis=2)
    return Image.fromarray(array.clip(0, 255).astype(np.uint8))


def b64(image: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def right_half_mask(width: int = W, height: int = H) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (width // 2, 0, width, height))
    return mask


def img2img(client, init: Image.Image | None = None, **payload) -> dict:
    body = {"prompt": "a painting of a cat", "init_images": [b64(init or gradient())], "width": W, "height": H,
            "steps": 4, "seed": 7, **payload}
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def pixels(body: dict, index: int = 0) -> np.ndarray:
    return np.asarray(decode_png(body["images"][index]).convert("RGB"), dtype=int)


@pytest.fixture()
def vae_round_trip(state):
    """The current model's VAE encode -> decode of an image (the closest any img2img result can get)."""
    from sdapi.engine.vae_io import decode_latents
    from sdapi.engine.vae_io import encode_pixels, images_to_pixels

    def round_trip(image: Image.Image) -> np.ndarray:
        model = state.engine.model(state.selected_checkpoint().filename)
        return np.asarray(decode_latents(model, encode_pixels(model, images_to_pixels([image])))[0], dtype=int)

    return round_trip


def test_denoising_zero_is_closest_to_the_init_image(client, vae_round_trip):
    # The demo VAE's latents are tiny (std ~0.06), so even sigma_min's noise shows; test_model_files checks
    # "denoising 0 gives back the init image" on a checkpoint with unit-scale latents.
    reference = vae_round_trip(gradient())
    distances = [np.abs(pixels(img2img(client, denoising_strength=d)) - reference).mean() for d in (0, 0.5, 1.0)]
    assert distances[0] < 0.8 * min(distances[1:])


def test_denoising_one_ignores_the_init_image(client):
    a = pixels(img2img(client, gradient(), denoising_strength=1.0))
    b = pixels(img2img(client, gradient(phase=1).transpose(Image.Transpose.FLIP_LEFT_RIGHT), denoising_strength=1.0))
    a0 = pixels(img2img(client, gradient(), denoising_strength=0))
    b0 = pixels(img2img(client, gradient(phase=1).transpose(Image.Transpose.FLIP_LEFT_RIGHT), denoising_strength=0))
    assert np.abs(a - b).mean() < np.abs(a0 - b0).mean() / 4


def test_info_echo_and_infotext(client):
    body = img2img(client, denoising_strength=0.6, initial_noise_multiplier=0.9)
    info = json.loads(body["info"])
    assert info["denoising_strength"] == 0.6 and info["is_using_inpainting_conditioning"] is False
    assert info["extra_generation_params"] == {"Noise multiplier": 0.9}
    assert info["infotexts"][0].endswith("Denoising strength: 0.6, Version: v1.2.1, Noise multiplier: 0.9")
    assert body["parameters"]["init_images"] is None and body["parameters"]["mask"] is None
    echoed = img2img(client, include_init_images=True, mask=b64(right_half_mask()))["parameters"]
    assert echoed["init_images"] and echoed["mask"] and echoed["include_init_images"] is True


@pytest.mark.parametrize("full_res", [False, True])
def test_mask_confines_changes_to_the_masked_area(client, full_res):
    init = gradient()
    body = img2img(client, init, mask=b64(right_half_mask()), mask_blur=4, inpaint_full_res=full_res,
                   inpainting_fill=1, denoising_strength=0.9)
    out, original = pixels(body), np.asarray(init, dtype=int)
    margin = 3 * 4  # the Gaussian blur's reach
    assert np.array_equal(out[:, :W // 2 - margin], original[:, :W // 2 - margin])
    assert np.abs(out[:, W // 2 + margin:] - original[:, W // 2 + margin:]).mean() > 5


def test_inverted_mask_keeps_the_other_half(client):
    init = gradient()
    body = img2img(client, init, mask=b64(right_half_mask()), mask_blur=0, inpainting_mask_invert=1,
                   inpaint_full_res=False, denoising_strength=0.9)
    out, original = pixels(body), np.asarray(init, dtype=int)
    assert np.array_equal(out[:, W // 2:], original[:, W // 2:])
    assert np.abs(out[:, :W // 2] - original[:, :W // 2]).mean() > 5


def test_every_inpainting_fill_runs_and_differs(client):
    outs = [pixels(img2img(client, mask=b64(right_half_mask()), inpainting_fill=fill, inpaint_full_res=False,
                           denoising_strength=0.5)) for fill in range(4)]
    right = [o[:, W // 2 + 8:] for o in outs]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(right[i] - right[j]).mean() > 0.5, (i, j)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_every_resize_mode_gives_the_requested_size(client, mode):
    body = img2img(client, gradient(128, 64), width=64, height=128, resize_mode=mode, denoising_strength=0.3)
    assert decode_png(body["images"][0]).size == (64, 128)


def test_crop_and_fill_resize_modes_differ(client):
    crop, fill = (pixels(img2img(client, gradient(128, 64), width=64, height=128, resize_mode=m,
                                 denoising_strength=0)) for m in (1, 2))
    assert np.abs(crop - fill).mean() > 2


def test_one_image_serves_the_batch_and_several_set_it(client):
    assert len(img2img(client, batch_size=2)["images"]) == 2
    body = {"prompt": "x", "init_images": [b64(gradient()), b64(gradient(phase=1))], "width": W, "height": H,
            "steps": 2, "batch_size": 4}
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200 and len(r.json()["images"]) == 2
    r = client.post("/sdapi/v1/img2img", json={**body, "batch_size": 1})
    assert r.status_code == 500
    assert r.json()["errors"] == "bad number of images passed: 2; expecting 1 or less"


def test_data_url_and_jpeg_init_images_are_accepted(client):
    body = img2img(client, denoising_strength=0.2, init_images=["data:image/jpeg;base64," + b64(gradient(), "JPEG")])
    assert decode_png(body["images"][0]).size == (W, H)


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M Karras", "Heun", "DPM2 a", "DPM++ SDE", "DDIM", "PLMS",
                                     "DPM++ 2S a", "DPM fast", "DPM adaptive"])
def test_samplers_run_img2img_with_a_mask(client, sampler):
    body = img2img(client, mask=b64(right_half_mask()), sampler_name=sampler, denoising_strength=0.6)
    assert decode_png(body["images"][0]).size == (W, H)


def test_missing_init_images_is_a1111s_404(client):
    r = client.post("/sdapi/v1/img2img", json={"prompt": "x"})
    assert (r.status_code, r.json()) == (404, {"error": "HTTPException", "detail": "Init image not found",
                                               "body": "", "errors": ""})


def test_undecodable_mask_is_a1111s_500(client):
    r = client.post("/sdapi/v1/img2img", json={"init_images": [b64(gradient())], "mask": "not an image"})
    assert (r.status_code, r.json()["detail"]) == (500, "Invalid encoded image")
