"""Later A1111 request fields (v1.4 to v1.10) on the v1.2.1 routes: the hires pass's own sampler, prompts and
checkpoint, the refiner, ``firstpass_image``, ``disable_extra_networks``; each through HTTP on the demo checkpoints
(every request names ``demo-sd15`` as its checkpoint; ``demo-sd15-b`` is the other one)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import decode_png, txt2img as generate

MAIN = {"sd_model_checkpoint": "demo-sd15"}
HIRES = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.6, "steps": 3,
         "seed": 11, "sampler_name": "Euler"}


def txt2img(client, **payload) -> dict:
    """``tests.conftest.txt2img`` on ``demo-sd15`` unless the payload names a checkpoint."""
    return generate(client, **{"override_settings": MAIN, **payload})


def post(client, **body) -> dict:
    """A txt2img with exactly these fields (no defaults added: an infotext fills only unset fields)."""
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def same_pixels(a: dict, b: dict) -> bool:
    return all(np.array_equal(np.asarray(decode_png(x)), np.asarray(decode_png(y)))
               for x, y in zip(a["images"], b["images"], strict=True))


def infotext(body: dict) -> str:
    return json.loads(body["info"])["infotexts"][0]


def png_b64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_hr_sampler_name_runs_the_second_pass_with_that_sampler(client):
    plain = txt2img(client, **HIRES)
    for same in ("", "Use same sampler", "Euler"):
        body = txt2img(client, **HIRES, hr_sampler_name=same)
        assert same_pixels(body, plain), same
    other = txt2img(client, **HIRES, hr_sampler_name="DPM++ 2M")
    assert not same_pixels(other, plain)
    assert "Hires sampler: DPM++ 2M" in infotext(other) and "Hires sampler" not in infotext(plain)
    # The first pass is the same: without the hires fix the two requests are one image.
    assert same_pixels(txt2img(client, **{**HIRES, "enable_hr": False}, hr_sampler_name="DPM++ 2M"),
                       txt2img(client, **{**HIRES, "enable_hr": False}))


def test_unknown_hr_sampler_name_is_a1111s_500(client):
    r = client.post("/sdapi/v1/txt2img", json={**HIRES, "width": 64, "height": 64, "hr_sampler_name": "Nope"})
    assert r.status_code == 500
    assert r.json()["error"] == "AssertionError" and "bad sampler name: Nope" in r.json()["errors"]


def test_hr_prompt_conditions_only_the_second_pass(client):
    plain = txt2img(client, **HIRES)
    same = txt2img(client, **HIRES, hr_prompt="a photo of a cat")
    assert same_pixels(same, plain) and "Hires prompt" not in infotext(same)
    other = txt2img(client, **HIRES, hr_prompt="a red circle, blue background", hr_negative_prompt="green")
    assert not same_pixels(other, plain)
    text = infotext(other)
    assert 'Hires prompt: "a red circle, blue background"' in text and "Hires negative prompt: green" in text


def test_hr_checkpoint_name_runs_the_second_pass_on_that_checkpoint(client, state):
    plain = txt2img(client, **HIRES)
    own = txt2img(client, **HIRES, hr_checkpoint_name="demo-sd15")
    assert same_pixels(own, plain)
    other = txt2img(client, **HIRES, hr_checkpoint_name="demo-sd15-b")
    assert not same_pixels(other, plain)
    b = state.catalog.closest("demo-sd15-b")
    assert f"Hires checkpoint: demo-sd15-b [{b.shorthash}]" in infotext(other)
    assert json.loads(other["info"])["sd_model_hash"] == json.loads(plain["info"])["sd_model_hash"]


def test_unknown_hr_or_refiner_checkpoint_is_a1111s_500(client):
    for field in ("hr_checkpoint_name", "refiner_checkpoint"):
        r = client.post("/sdapi/v1/txt2img", json={**HIRES, "width": 64, "height": 64, field: "missing-model"})
        assert r.status_code == 500, field
        assert r.json()["errors"] == "Could not find checkpoint with name missing-model"


def test_refiner_switching_at_the_start_is_the_refiner_alone(client):
    base = {"steps": 4, "seed": 5, "sampler_name": "Euler a"}
    on_b = generate(client, **base, override_settings={"sd_model_checkpoint": "demo-sd15-b"})
    refined = txt2img(client, **base, refiner_checkpoint="demo-sd15-b", refiner_switch_at=0.0)
    assert same_pixels(refined, on_b)
    assert "Refiner: demo-sd15-b [" in infotext(refined) and "Refiner switch at: 0.0" in infotext(refined)


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M", "DDIM"])
def test_refiner_takes_over_part_way(client, sampler):
    base = {"steps": 6, "seed": 5, "sampler_name": sampler}
    plain = txt2img(client, **base)
    never = txt2img(client, **base, refiner_checkpoint="demo-sd15-b", refiner_switch_at=1.0)
    assert same_pixels(never, plain) and "Refiner" not in infotext(never)
    on_b = generate(client, **base, override_settings={"sd_model_checkpoint": "demo-sd15-b"})
    half = txt2img(client, **base, refiner_checkpoint="demo-sd15-b", refiner_switch_at=0.5)
    assert not same_pixels(half, plain) and not same_pixels(half, on_b)
    assert "Refiner switch at: 0.5" in infotext(half)


def test_refiner_with_hires_fix_takes_the_second_pass_by_default(client):
    plain = txt2img(client, **HIRES)
    refined = txt2img(client, **HIRES, refiner_checkpoint="demo-sd15-b", refiner_switch_at=0.0)
    # The second pass from its first step on is the refiner: the same as a hires checkpoint.
    assert same_pixels(refined, txt2img(client, **HIRES, hr_checkpoint_name="demo-sd15-b"))
    assert not same_pixels(refined, plain) and "Hires refiner" not in infotext(refined)
    both = txt2img(client, **HIRES, refiner_checkpoint="demo-sd15-b", refiner_switch_at=0.0,
                   override_settings={**MAIN, "hires_fix_refiner_pass": "both passes"})
    assert not same_pixels(both, refined) and "Hires refiner: both passes" in infotext(both)


def test_refiner_on_img2img(client):
    init = txt2img(client, seed=3)["images"][0]
    body = {"init_images": [init], "prompt": "a cat", "width": 64, "height": 64, "steps": 6, "seed": 3,
            "denoising_strength": 0.8, "override_settings": MAIN}
    plain = client.post("/sdapi/v1/img2img", json=body).json()
    refined = client.post("/sdapi/v1/img2img", json={**body, "refiner_checkpoint": "demo-sd15-b",
                                                     "refiner_switch_at": 0.5}).json()
    assert not same_pixels(refined, plain) and "Refiner switch at: 0.5" in infotext(refined)


def test_firstpass_image_replaces_the_first_pass(client):
    pixel_hires = {**HIRES, "hr_upscaler": "Lanczos"}
    first = txt2img(client, **{**pixel_hires, "enable_hr": False})
    hires = txt2img(client, **pixel_hires)
    given = txt2img(client, **pixel_hires, firstpass_image=first["images"][0])
    # A1111's first pass goes through 8-bit pixels before a pixel upscaler: the same image as sending it.
    assert same_pixels(given, hires)
    other = png_b64(decode_png(first["images"][0]).transpose(0))
    assert not same_pixels(txt2img(client, **pixel_hires, firstpass_image=other), hires)
    latent = txt2img(client, **HIRES, firstpass_image=other)
    assert decode_png(latent["images"][0]).size == (96, 96)


def test_firstpass_image_without_hires_is_ignored_and_a_bad_one_is_a_500(client):
    plain = txt2img(client, seed=4)
    assert same_pixels(txt2img(client, seed=4, firstpass_image="not an image"), plain)
    r = client.post("/sdapi/v1/txt2img", json={**HIRES, "width": 64, "height": 64, "firstpass_image": "nope"})
    assert (r.status_code, r.json()["detail"]) == (500, "Invalid encoded image")


def test_disable_extra_networks_leaves_the_tags_out_unapplied(client):
    plain = txt2img(client, prompt="a cat", seed=6)
    with_lora = txt2img(client, prompt="a cat <lora:demo-lora:1>", seed=6)
    assert not same_pixels(with_lora, plain)
    disabled = txt2img(client, prompt="a cat <lora:demo-lora:1>", seed=6, disable_extra_networks=True)
    assert same_pixels(disabled, plain)
    assert "Lora hashes" not in infotext(disabled) and "Lora hashes" in infotext(with_lora)


def test_later_fields_are_not_echoed_and_comments_are_accepted(client):
    body = txt2img(client, seed=7, comments={"note": "x"}, hr_prompt="dog", refiner_switch_at=0.3)
    assert not {"comments", "hr_prompt", "refiner_switch_at"} & set(body["parameters"])


def test_infotext_fills_what_the_request_leaves_unset(client):
    made = txt2img(client, prompt="a red circle", negative_prompt="blue", steps=3, seed=21, cfg_scale=5,
                   sampler_name="DPM++ 2M Karras", width=64, height=48)
    text = infotext(made)
    again = post(client, prompt="", infotext=text, override_settings=MAIN)
    # ``prompt`` was sent (empty), so the infotext's does not replace it; everything else comes from the text.
    assert json.loads(again["info"])["prompt"] == ""
    params = again["parameters"]
    assert (params["steps"], params["seed"], params["cfg_scale"], params["width"], params["height"]) == \
        (3, 21, 5.0, 64, 48)
    assert params["sampler_name"] == "DPM++ 2M Karras" and params["negative_prompt"] == "blue"
    same = post(client, infotext=text, override_settings=MAIN)
    # The pasted ``Denoising strength`` was sent, so it echoes as a float (as in A1111).
    assert same_pixels(same, made) and infotext(same) == text.replace("strength: 0,", "strength: 0.0,")


def test_infotext_turns_on_the_hires_fix_and_sets_options(client):
    hires = txt2img(client, **HIRES, hr_sampler_name="DPM++ 2M")
    text = infotext(hires)
    again = post(client, infotext=text, override_settings=MAIN)
    assert again["parameters"]["enable_hr"] is True and same_pixels(again, hires)
    skipped = post(client, infotext=text.replace("Seed: 11,", "Seed: 11, Clip skip: 2,"), override_settings=MAIN)
    assert "Clip skip: 2" in infotext(skipped) and not same_pixels(skipped, hires)
    # An option the request overrides itself stays the request's.
    kept = post(client, infotext=text.replace("Seed: 11,", "Seed: 11, Clip skip: 2,"),
                override_settings={**MAIN, "CLIP_stop_at_last_layers": 1})
    assert same_pixels(kept, hires)


def test_infotext_on_img2img_fills_only_the_script_fields(client):
    init = txt2img(client, seed=3)["images"][0]
    text = "a dog\nSteps: 3, Sampler: Euler, CFG scale: 9, Seed: 77, Size: 64x64"
    body = {"init_images": [init], "prompt": "a cat", "denoising_strength": 0.5, "infotext": text,
            "override_settings": MAIN}
    r = client.post("/sdapi/v1/img2img", json=body).json()
    params = r["parameters"]
    assert (params["steps"], params["seed"], params["sampler_name"]) == (3, 77, "Euler")
    assert params["cfg_scale"] == 7.0 and params["prompt"] == "a cat" and params["width"] == 512


def img2img(client, **body) -> dict:
    r = client.post("/sdapi/v1/img2img", json={"prompt": "a cat", "width": 64, "height": 64, "steps": 3, "seed": 8,
                                               "denoising_strength": 0.6, "override_settings": MAIN, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_img2img_color_correction_pulls_the_result_towards_the_init_colours(client):
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    plain = img2img(client, init_images=[png_b64(init)])
    corrected = img2img(client, init_images=[png_b64(init)],
                        override_settings={**MAIN, "img2img_color_correction": True})
    red = lambda body: np.asarray(decode_png(body["images"][0]), dtype=float)  # noqa: E731
    target = np.array([200, 40, 40])
    assert np.abs(red(corrected).mean((0, 1)) - target).sum() < np.abs(red(plain).mean((0, 1)) - target).sum()


def test_return_mask_and_composite_follow_each_inpainted_image(client):
    init = png_b64(Image.new("RGB", (64, 64), (90, 90, 200)))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    body = {"init_images": [init], "mask": png_b64(mask), "batch_size": 2, "mask_blur": 0}
    plain = img2img(client, **body)
    both = img2img(client, **body, override_settings={**MAIN, "return_mask": True, "return_mask_composite": True})
    assert len(plain["images"]) == 2 and len(both["images"]) == 6
    assert both["images"][0] == plain["images"][0] and both["images"][3] == plain["images"][1]
    returned_mask = np.asarray(decode_png(both["images"][1]))
    assert returned_mask.shape == (64, 64, 3) and returned_mask[32, 32].tolist() == [255, 255, 255]
    composite = decode_png(both["images"][2])
    assert composite.mode == "RGBA" and composite.getpixel((0, 0))[3] == 0 and composite.getpixel((32, 32))[3] == 255
    assert len(json.loads(both["info"])["infotexts"]) == 2
    # Without a mask there is nothing to return.
    assert len(img2img(client, init_images=[init], override_settings={**MAIN, "return_mask": True})["images"]) == 1


def test_mask_round_off_keeps_a_soft_latent_mask(client):
    init = png_b64(Image.new("RGB", (64, 64), (90, 90, 200)))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (20, 20, 44, 44))
    body = {"init_images": [init], "mask": png_b64(mask), "mask_blur": 8}
    rounded = img2img(client, **body)
    assert same_pixels(img2img(client, **body, mask_round=True), rounded)
    assert not same_pixels(img2img(client, **body, mask_round=False), rounded)
