"""``/sdapi/v1/png-info`` on our own images: the infotext round-trips to the request's parameters."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from sdapi.infotext import parse_generation_parameters
from tests.conftest import txt2img


@pytest.fixture()
def restore_format(state):
    before = state.options.get("samples_format")
    yield
    state.options.set("samples_format", before)


def test_our_infotext_parses_back_to_the_request(client, state):
    request = dict(prompt="a red fox, (snow:1.2)\nsecond line", negative_prompt="blurry, lowres", seed=1234,
                   steps=3, cfg_scale=6.5, width=64, height=72, sampler_name="DPM++ 2M Karras", subseed=77,
                   subseed_strength=0.25)
    body = txt2img(client, **request)
    r = client.post("/sdapi/v1/png-info", json={"image": "data:image/png;base64," + body["images"][0]})
    assert r.status_code == 200
    info = r.json()["info"]
    assert info == json.loads(body["info"])["infotexts"][0]
    assert r.json()["items"] == {"parameters": info}
    parsed = parse_generation_parameters(info)
    checkpoint = state.selected_checkpoint()
    assert parsed["Prompt"] == request["prompt"]
    assert parsed["Negative prompt"] == request["negative_prompt"]
    assert parsed["Steps"] == "3" and parsed["Sampler"] == "DPM++ 2M Karras"
    assert float(parsed["CFG scale"]) == 6.5 and parsed["Seed"] == "1234"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("64", "72")
    assert parsed["Variation seed"] == "77" and float(parsed["Variation seed strength"]) == 0.25
    assert parsed["Model hash"] == checkpoint.shorthash and parsed["Model"] == checkpoint.model_name
    assert parsed["Clip skip"] == "1"


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_jpeg_and_webp_keep_the_infotext_in_exif(client, state, fmt, restore_format):
    state.options.set("samples_format", fmt)
    body = txt2img(client, prompt="a, comma", seed=9)
    r = client.post("/sdapi/v1/png-info", json={"image": body["images"][0]})
    expected = json.loads(body["info"])["infotexts"][0]
    assert r.json()["info"] == expected
    assert r.json()["items"]["exif comment"] == expected


def test_image_without_metadata_and_blank_image(client):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    r = client.post("/sdapi/v1/png-info", json={"image": base64.b64encode(buf.getvalue()).decode()})
    assert r.json() == {"info": "", "items": {"parameters": ""}}
    # A1111 v1.2.1 answers a blank image with a 500 (its response model lacks ``items``); we answer it empty.
    assert client.post("/sdapi/v1/png-info", json={"image": "  "}).json() == {"info": "", "items": {}}


def test_parse_generation_parameters_follows_a1111_rules():
    text = 'a\nb\nNegative prompt: c\nd\nSteps: 20, Sampler: Euler a, Size: 512x768, Lora hashes: "x: 1, y: 2", ENSD: 31337'
    parsed = parse_generation_parameters(text)
    assert parsed["Prompt"] == "a\nb" and parsed["Negative prompt"] == "c\nd"
    assert parsed["Size-1"] == "512" and parsed["Size-2"] == "768"
    assert parsed["Lora hashes"] == "x: 1, y: 2"  # quotes stripped, not unescaped (v1.2.1)
    assert parsed["Clip skip"] == "1" and parsed["Hires resize-1"] == 0
    # A last line with fewer than three pairs is prompt text.
    assert parse_generation_parameters("a cat\nSteps: 20, Seed: 1")["Prompt"] == "a cat\nSteps: 20, Seed: 1"
