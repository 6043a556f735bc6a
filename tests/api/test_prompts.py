"""A1111 prompt syntax end to end through HTTP: emphasis, BREAK, prompt editing, alternation and AND.

The tiny demo model's image is settled mostly by the first steps, so the prompt switched to later is weighted
heavily (``B``) to make its steps visible in the pixels.
"""

from __future__ import annotations

import json

import numpy as np

from tests.conftest import decode_png, txt2img

A = "a photo of a cat"
B = "(a red car on a street at night:4)"


def pixels(client, **payload) -> np.ndarray:
    body = txt2img(client, **{"prompt": A, "seed": 3, "steps": 4, "sampler_name": "Euler", **payload})
    return np.asarray(decode_png(body["images"][0])).astype(int)


def differ(a: np.ndarray, b: np.ndarray) -> bool:
    return not np.array_equal(a, b)


def test_emphasis_weight_changes_the_image_and_weight_one_does_not(client):
    plain = pixels(client)
    assert differ(pixels(client, prompt="a photo of a (cat:1.5)"), plain)
    assert differ(pixels(client, prompt="a photo of a [[[[cat]]]]"), plain)
    assert np.array_equal(pixels(client, prompt="a photo of a (cat:1.0)"), plain)


def test_enable_emphasis_off_reads_the_syntax_as_text(client, state):
    plain = pixels(client)
    off = {"enable_emphasis": False}
    assert differ(pixels(client, prompt="a photo of a (cat:1.0)", override_settings=off), plain)
    assert state.options.get("enable_emphasis") is True


def test_break_changes_the_image(client):
    assert differ(pixels(client, prompt="a photo BREAK of a cat"), pixels(client))


def test_prompt_editing_differs_from_both_prompts(client):
    a, b = pixels(client), pixels(client, prompt=B)
    edited = pixels(client, prompt=f"[{A}:{B}:0.5]")
    assert differ(edited, a) and differ(edited, b)
    # [to:when] and [from::when] run too, and are not the plain prompt.
    assert differ(pixels(client, prompt=f"{A} [{B}:2]"), a)
    assert differ(pixels(client, prompt=f"{A} [{B}::2]"), a)


def test_alternation_differs_from_both_prompts(client):
    a, b = pixels(client), pixels(client, prompt=B)
    alternating = pixels(client, prompt=f"[{A}|{B}]")
    assert differ(alternating, a) and differ(alternating, b)


def test_second_order_schedule_option_changes_heun_editing(client):
    prompt = f"[{A}:{B}:0.5]"
    fixed = pixels(client, prompt=prompt, sampler_name="Heun")
    unfixed = pixels(client, prompt=prompt, sampler_name="Heun",
                     override_settings={"dont_fix_second_order_samplers_schedule": True})
    assert differ(fixed, unfixed)


def test_negative_prompt_editing(client):
    plain = pixels(client, negative_prompt="blurry")
    assert differ(pixels(client, negative_prompt=f"[blurry:{B}:1]"), plain)


def test_and_combines_weighted_sub_prompts(client):
    a, b = pixels(client), pixels(client, prompt=B)
    both = pixels(client, prompt=f"{A} AND {B}")
    assert differ(both, a) and differ(both, b)
    # Weight 0 leaves only the first part; the same part twice at half the CFG scale is the plain prompt
    # (up to the low bits a different UNet batch can change).
    assert np.abs(pixels(client, prompt=f"{A} AND {B} :0") - a).max() <= 1
    assert np.abs(pixels(client, prompt=f"{A} AND {A}", cfg_scale=3.5) - a).max() <= 1
    assert differ(pixels(client, prompt=f"{A} AND {B} :0.3"), both)


def test_and_with_ddim_is_refused_like_a1111(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": f"{A} AND {B}", "sampler_name": "DDIM", "width": 64,
                                                "height": 64, "steps": 2})
    assert r.status_code == 500
    assert r.json() == {"error": "AssertionError", "detail": "", "body": "",
                        "errors": "composition via AND is not supported for DDIM/PLMS samplers"}


def test_a1111_failures_on_malformed_syntax(client):
    base = {"width": 64, "height": 64, "steps": 2}
    r = client.post("/sdapi/v1/txt2img", json={**base, "prompt": "[a cat|]"})
    assert r.status_code == 500 and r.json()["error"] == "VisitError"
    r = client.post("/sdapi/v1/txt2img", json={**base, "prompt": "a (cat:.)"})
    assert r.status_code == 500
    assert r.json()["error"] == "ValueError" and r.json()["errors"] == "could not convert string to float: '.'"


def test_malformed_editing_is_used_literally(client):
    # A space before "]" makes the edit unparsable: the text stays, as square-bracket emphasis (weight 1/1.1).
    literal = pixels(client, prompt="a photo of a [cat:dog:3 ]")
    assert np.array_equal(literal, pixels(client, prompt=f"a photo of a (cat:dog:3 :{1 / 1.1!r})"))
    assert differ(literal, pixels(client, prompt="a photo of a [cat:dog:3]"))


def test_long_prompt_with_short_negative_and_batch(client):
    long_prompt = ", ".join(["a (red:1.2) fox in the [snow:grass:0.5]"] * 12)
    body = txt2img(client, prompt=f"{long_prompt} AND {A}", negative_prompt="blurry", batch_size=2, seed=4,
                   steps=3, sampler_name="Euler a")
    images = [np.asarray(decode_png(image)) for image in body["images"]]
    assert len(images) == 2 and all(image.std() > 0 for image in images)
    assert not np.array_equal(images[0], images[1])


def test_info_and_infotext_keep_the_original_prompt(client):
    prompt = f"a [cat:dog:0.5] (fluffy:1.2) BREAK x AND {A} :0.7"
    negative = "[blurry|ugly], \\(bad\\)"
    body = txt2img(client, prompt=prompt, negative_prompt=negative, seed=8)
    info = json.loads(body["info"])
    assert info["prompt"] == prompt and info["all_prompts"] == [prompt]
    assert info["negative_prompt"] == negative
    assert info["infotexts"][0].startswith(f"{prompt}\nNegative prompt: {negative}\nSteps: 2,")
    assert decode_png(body["images"][0]).info["parameters"] == info["infotexts"][0]
