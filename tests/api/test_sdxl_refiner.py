"""The SDXL refiner through HTTP on the tiny SDXL base and the tiny refiner (original single-file layouts, random
weights): listed with its A1111 title and hash, taking over an SDXL base's txt2img (with and without the hires fix)
and img2img as later A1111's ``refiner_checkpoint`` does, and serving on its own as the main checkpoint (img2img and
txt2img, as A1111 allows), with its aesthetic-score options reaching its UNet."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.settings import Settings
from tests.api.test_later_fields import infotext, same_pixels
from tests.conftest import txt2img

BASE = {"sd_model_checkpoint": "demo-sdxl"}
ON_REFINER = {"sd_model_checkpoint": "demo-sdxl-refiner"}
REFINER = "demo-sdxl-refiner.safetensors"
JOB = {"prompt": "a photo of a cat", "negative_prompt": "blurry", "width": 64, "height": 48, "steps": 4, "seed": 5,
       "sampler_name": "Euler"}
HIRES = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.6}


@pytest.fixture(scope="module")
def refiner_dir(tmp_path_factory):
    """A data dir with the tiny SDXL base and the tiny refiner, as ``sdapi demo-models DIR --sdxl`` writes them."""
    from sdapi.engine.demo_sdxl import write_demo_sdxl
    from sdapi.engine.demo_sdxl_refiner import write_demo_sdxl_refiner

    root = tmp_path_factory.mktemp("sdxl-refiner-data")
    write_demo_sdxl(root)
    write_demo_sdxl_refiner(root)
    return root


@pytest.fixture(scope="module")
def client(refiner_dir, tmp_path_factory):
    settings = Settings(data_dir=refiner_dir, cache_dir=tmp_path_factory.mktemp("sdxl-refiner-cache"), num_threads=2,
                        sd_checkpoint_cache=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def generate(client, options=BASE, **payload) -> dict:
    return txt2img(client, **{**JOB, **payload, "override_settings": {**options, **payload.get("override_settings", {})}})


def img2img(client, init: str, options=BASE, **payload) -> dict:
    body = {**JOB, "init_images": [init], "denoising_strength": 0.75, **payload, "override_settings": options}
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_refiner_is_listed_with_its_a1111_title_and_hash(client, refiner_dir):
    generate(client, ON_REFINER)  # A1111 shows a file's hash once it has been computed (on load)
    models = {m["model_name"]: m for m in client.get("/sdapi/v1/sd-models").json()}
    sha256 = hashlib.sha256((refiner_dir / "models" / "Stable-diffusion" / REFINER).read_bytes()).hexdigest()
    assert models["demo-sdxl-refiner"]["sha256"] == sha256
    assert models["demo-sdxl-refiner"]["title"] == f"{REFINER} [{sha256[:10]}]"


def test_the_refiner_alone_serves_txt2img_with_its_infotext(client, refiner_dir):
    body = generate(client, ON_REFINER)
    sha256 = hashlib.sha256((refiner_dir / "models" / "Stable-diffusion" / REFINER).read_bytes()).hexdigest()
    assert f"Model hash: {sha256[:10]}, Model: demo-sdxl-refiner" in infotext(body)
    assert not same_pixels(body, generate(client))


def test_the_refiner_takes_over_an_sdxl_base_part_way(client, refiner_dir):
    plain = generate(client)
    alone = generate(client, ON_REFINER)
    assert same_pixels(generate(client, refiner_checkpoint="demo-sdxl-refiner", refiner_switch_at=1.0), plain)
    assert same_pixels(generate(client, refiner_checkpoint="demo-sdxl-refiner", refiner_switch_at=0.0), alone)
    half = generate(client, refiner_checkpoint="demo-sdxl-refiner", refiner_switch_at=0.5)
    assert not same_pixels(half, plain) and not same_pixels(half, alone)
    sha256 = hashlib.sha256((refiner_dir / "models" / "Stable-diffusion" / REFINER).read_bytes()).hexdigest()
    # A1111 names it by its short title: the name without extension.
    assert f"Refiner: demo-sdxl-refiner [{sha256[:10]}], Refiner switch at: 0.5" in infotext(half)


def test_the_refiner_takes_the_hires_pass(client):
    plain = generate(client, **HIRES)
    refined = generate(client, **HIRES, refiner_checkpoint="demo-sdxl-refiner", refiner_switch_at=0.0)
    # From the second pass's first step on it is the refiner: the same as a hires checkpoint.
    assert same_pixels(refined, generate(client, **HIRES, hr_checkpoint_name="demo-sdxl-refiner"))
    assert not same_pixels(refined, plain)
    part = generate(client, **HIRES, refiner_checkpoint="demo-sdxl-refiner", refiner_switch_at=0.5,
                    override_settings={"hires_fix_refiner_pass": "both passes"})
    assert not same_pixels(part, refined) and "Hires refiner: both passes" in infotext(part)


def test_the_refiner_on_img2img_of_a_base_and_on_its_own(client):
    init = generate(client)["images"][0]
    plain = img2img(client, init)
    refined = img2img(client, init, refiner_checkpoint="demo-sdxl-refiner", refiner_switch_at=0.5)
    assert not same_pixels(refined, plain) and "Refiner switch at: 0.5" in infotext(refined)
    alone = img2img(client, init, ON_REFINER)
    assert not same_pixels(alone, plain) and not same_pixels(alone, refined)


def test_the_aesthetic_scores_reach_the_refiner_only(client):
    init = generate(client)["images"][0]
    scores = {"sdxl_refiner_high_aesthetic_score": 9.0, "sdxl_refiner_low_aesthetic_score": 1.0}
    default = img2img(client, init, ON_REFINER)
    assert same_pixels(img2img(client, init, {**ON_REFINER, "sdxl_refiner_high_aesthetic_score": 6.0,
                                              "sdxl_refiner_low_aesthetic_score": 2.5}), default)
    assert not same_pixels(img2img(client, init, {**ON_REFINER, **scores}), default)
    assert same_pixels(img2img(client, init, {**BASE, **scores}), img2img(client, init))
