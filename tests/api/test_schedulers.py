"""Later A1111's ``scheduler`` field and ``GET /sdapi/v1/schedulers`` through HTTP: a schedule type changes the
image and says so in the infotext, v1.2.1 names keep their exact images, what cannot apply is a warning."""

from __future__ import annotations

import json

import numpy as np

from tests.conftest import decode_png, txt2img


def pixels(body: dict) -> np.ndarray:
    return np.asarray(decode_png(body["images"][0])).astype(int)


def test_schedulers_lists_a1111_v1_10s_schedule_types(client):
    r = client.get("/sdapi/v1/schedulers")
    assert r.status_code == 200
    items = r.json()
    assert [item["label"] for item in items][:4] == ["Automatic", "Uniform", "Karras", "Exponential"]
    assert set(items[0]) == {"name", "label", "aliases", "default_rho", "need_inner_model"}
    # webuiapi's util_get_scheduler_names() reads the names.
    assert "sgm_uniform" in [item["name"] for item in items]


def test_a_schedule_type_changes_the_image_and_is_in_the_infotext(client):
    plain = txt2img(client, sampler_name="Euler", steps=4, seed=5)
    exponential = txt2img(client, sampler_name="Euler", scheduler="Exponential", steps=4, seed=5)
    # The demo checkpoint's random UNet barely reacts to the schedule: 0.69 levels on average, 5 at most (measured).
    assert np.abs(pixels(plain) - pixels(exponential)).max() >= 2
    infotext = json.loads(exponential["info"])["infotexts"][0]
    assert "Sampler: Euler, Schedule type: Exponential, CFG scale" in infotext
    assert "Schedule type" not in json.loads(plain["info"])["infotexts"][0]
    assert "scheduler" not in exponential["parameters"]  # v1.2.1's echo
    # The same schedule named at the end of the sampler name, as later A1111 reads it.
    assert txt2img(client, sampler_name="Euler Exponential", steps=4, seed=5)["images"] == exponential["images"]


def test_karras_on_a_v1_2_1_sampler_is_its_karras_row(client):
    row = txt2img(client, sampler_name="DPM++ 2M Karras", steps=4, seed=6)
    split = txt2img(client, sampler_name="DPM++ 2M", scheduler="Karras", steps=4, seed=6)
    assert split["images"] == row["images"]
    assert json.loads(split["info"])["sampler_name"] == "DPM++ 2M Karras"


def test_automatic_is_the_samplers_own_schedule(client):
    plain = txt2img(client, sampler_name="Euler a", steps=3, seed=2)
    assert txt2img(client, sampler_name="Euler a", scheduler="automatic", steps=3, seed=2)["images"] == plain["images"]
    assert txt2img(client, sampler_name="Euler a", scheduler="Uniform", steps=3, seed=2)["images"] == plain["images"]


def test_what_cannot_apply_is_a_warning_and_the_plain_image(client):
    plain = txt2img(client, sampler_name="DDIM", steps=3, seed=2)
    karras = txt2img(client, sampler_name="DDIM", scheduler="Karras", steps=3, seed=2)
    assert karras["images"] == plain["images"]
    assert any("does not apply to DDIM" in w for w in json.loads(karras["info"])["warnings"])
    unknown = txt2img(client, sampler_name="Euler", scheduler="Sigmoid", steps=3, seed=2)
    assert unknown["images"] == txt2img(client, sampler_name="Euler", steps=3, seed=2)["images"]
    assert any("Sigmoid" in w for w in json.loads(unknown["info"])["warnings"])


def test_img2img_and_hires_use_the_schedule_type(client):
    base = {"sampler_name": "Euler", "steps": 4, "seed": 3, "enable_hr": True, "hr_scale": 1.5,
            "hr_upscaler": "Latent", "denoising_strength": 0.6}
    plain = txt2img(client, **base)
    typed = txt2img(client, **base, scheduler="Beta", hr_scheduler="Use same scheduler")
    assert np.abs(pixels(plain) - pixels(typed)).max() >= 2
    assert "warnings" not in json.loads(typed["info"])
    other = txt2img(client, **base, scheduler="Beta", hr_scheduler="Karras")
    assert other["images"] != typed["images"]
    assert "warnings" not in json.loads(other["info"])
    text = json.loads(other["info"])["infotexts"][0]
    assert "Schedule type: Beta," in text and "Hires schedule type: Karras, Hires upscale: 1.5" in text
    init = plain["images"][0]
    body = {"init_images": [init], "prompt": "a cat", "width": 64, "height": 64, "steps": 4, "seed": 3,
            "sampler_name": "Euler", "denoising_strength": 0.7}
    a = client.post("/sdapi/v1/img2img", json=body).json()
    b = client.post("/sdapi/v1/img2img", json={**body, "scheduler": "Beta"}).json()
    assert np.abs(pixels(a) - pixels(b)).max() >= 2
    assert "Schedule type: Beta" in json.loads(b["info"])["infotexts"][0]
