"""``/sdapi/v1/extra-single-image`` and ``/extra-batch-images`` with the pixel upscalers."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, PngImagePlugin

from tests.conftest import decode_png


def picture(width: int = 64, height: int = 48, text: str | None = None) -> str:
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    array = np.stack([x * 4 % 256, y * 5 % 256, (x + y) * 3 % 256], axis=2).astype(np.uint8)
    meta = PngImagePlugin.PngInfo()
    if text:
        meta.add_text("parameters", text)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", pnginfo=meta)
    return base64.b64encode(buf.getvalue()).decode()


def extras(client, **payload) -> dict:
    r = client.post("/sdapi/v1/extra-single-image", json={"image": picture(), **payload})
    assert r.status_code == 200, r.text
    return r.json()


def test_scale_by_with_each_pixel_upscaler(client):
    for name in ("Lanczos", "Nearest"):
        body = extras(client, upscaling_resize=2.5, upscaler_1=name)
        image = decode_png(body["image"])
        assert image.size == (160, 120)
        assert body["html_info"] == f"<p>Postprocess upscale by: 2.5, Postprocess upscaler: {name}</p>"
        assert image.text == {"postprocessing": f"Postprocess upscale by: 2.5, Postprocess upscaler: {name}"}
    nearest = np.asarray(decode_png(extras(client, upscaling_resize=2, upscaler_1="Nearest")["image"]))
    assert np.array_equal(nearest[::2, ::2], np.asarray(decode_png(picture())))


def test_scale_to_with_and_without_crop(client):
    body = extras(client, resize_mode=1, upscaling_resize_w=100, upscaling_resize_h=100, upscaler_1="Lanczos")
    assert decode_png(body["image"]).size == (100, 100)
    assert body["html_info"] == ("<p>Postprocess upscale to: 100x100, Postprocess crop to: 100x100, "
                                 "Postprocess upscaler: Lanczos</p>")
    uncropped = extras(client, resize_mode=1, upscaling_resize_w=100, upscaling_resize_h=100, upscaling_crop=False,
                       upscaler_1="Lanczos")
    assert decode_png(uncropped["image"]).size == (133, 100)  # covers 100x100 keeping 4:3


def test_second_upscaler_is_blended_in(client):
    first = np.asarray(decode_png(extras(client, upscaler_1="Lanczos")["image"]), dtype=int)
    second = np.asarray(decode_png(extras(client, upscaler_1="Nearest")["image"]), dtype=int)
    body = extras(client, upscaler_1="Lanczos", upscaler_2="Nearest", extras_upscaler_2_visibility=0.5)
    blended = np.asarray(decode_png(body["image"]), dtype=int)
    assert np.abs(blended - (first + second) / 2).max() <= 1
    assert body["html_info"].endswith("Postprocess upscaler: Lanczos, Postprocess upscaler 2: Nearest</p>")


def test_no_upscaler_keeps_the_image_and_its_text_chunks(client):
    r = client.post("/sdapi/v1/extra-single-image", json={"image": picture(text="a cat\nSteps: 2")})
    body = r.json()
    image = decode_png(body["image"])
    assert image.size == (64, 48) and body["html_info"] == "<p></p>"
    assert image.text == {"parameters": "a cat\nSteps: 2", "postprocessing": ""}


def test_batch_images(client):
    r = client.post("/sdapi/v1/extra-batch-images", json={
        "imageList": [{"data": picture(), "name": "a.png"}, {"data": "data:image/png;base64," + picture(32, 32),
                                                              "name": "b.png"}],
        "upscaling_resize": 2, "upscaler_1": "Lanczos"})
    assert r.status_code == 200, r.text
    assert [decode_png(i).size for i in r.json()["images"]] == [(128, 96), (64, 64)]
    assert r.json()["html_info"] == "<p>Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos</p>"


def test_unknown_upscaler_is_a1111s_500(client):
    r = client.post("/sdapi/v1/extra-single-image", json={"image": picture(), "upscaler_1": "R-ESRGAN 4x+"})
    assert (r.status_code, r.json()) == (500, {"error": "AssertionError", "detail": "", "body": "",
                                               "errors": "could not find upscaler named R-ESRGAN 4x+"})


def test_bad_image_and_bad_factor(client):
    r = client.post("/sdapi/v1/extra-single-image", json={"image": "nope", "upscaler_1": "Lanczos"})
    assert (r.status_code, r.json()["detail"]) == (500, "Invalid encoded image")
    r = client.post("/sdapi/v1/extra-single-image", json={"image": picture(), "upscaling_resize": 9})
    assert r.status_code == 422
