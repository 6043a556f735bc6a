"""txt2img end to end through HTTP on the demo checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdapi.engine.sampling.registry import SAMPLERS
from tests.conftest import decode_png, txt2img


@pytest.mark.parametrize("sampler", [s.name for s in SAMPLERS])
def test_every_sampler_returns_a_png_with_its_infotext(client, sampler):
    body = txt2img(client, sampler_name=sampler, steps=3, seed=5)
    image = decode_png(body["images"][0])
    assert image.format == "PNG" and image.size == (64, 64) and image.mode == "RGB"
    info = json.loads(body["info"])
    assert info["sampler_name"] == sampler
    assert f"Sampler: {sampler}," in image.info["parameters"]
    assert image.info["parameters"] == info["infotexts"][0]
    pixels = np.asarray(image)
    assert pixels.std() > 0  # not a blank image


def test_fixed_seed_gives_identical_bytes(client):
    a = txt2img(client, seed=1234, sampler_name="Euler a")
    b = txt2img(client, seed=1234, sampler_name="Euler a")
    assert a["images"] == b["images"]
    c = txt2img(client, seed=1235, sampler_name="Euler a")
    assert c["images"] != a["images"]


def test_seed_plus_i_per_image_and_batch_matches_single_runs(client):
    body = txt2img(client, seed=100, batch_size=2, n_iter=2, sampler_name="Euler a")
    info = json.loads(body["info"])
    assert info["all_seeds"] == [100, 101, 102, 103]
    assert len(body["images"]) == 4 and len(info["infotexts"]) == 4
    assert info["all_subseeds"] == [info["subseed"] + i for i in range(4)]
    assert [t.split("Seed: ")[1].split(",")[0] for t in info["infotexts"]] == ["100", "101", "102", "103"]
    single = txt2img(client, seed=101, sampler_name="Euler a")
    batch_img = np.asarray(decode_png(body["images"][1])).astype(int)
    single_img = np.asarray(decode_png(single["images"][0])).astype(int)
    # CPU matmul blocking depends on the batch size: ±1 level, as in A1111 itself.
    assert np.abs(batch_img - single_img).max() <= 1


def test_seed_minus_one_is_resolved_in_info(client):
    body = txt2img(client, seed=-1)
    info = json.loads(body["info"])
    assert isinstance(info["seed"], int) and 0 <= info["seed"] < 4294967294
    assert body["parameters"]["seed"] == -1
    assert f"Seed: {info['seed']}," in info["infotexts"][0]


def test_variation_seed_changes_image_and_infotext(client):
    base = txt2img(client, seed=7)
    varied = txt2img(client, seed=7, subseed=99, subseed_strength=0.3, batch_size=2)
    info = json.loads(varied["info"])
    assert info["all_seeds"] == [7, 7]  # variation keeps every image on the seed
    assert info["all_subseeds"] == [99, 100]
    assert "Variation seed: 99, Variation seed strength: 0.3" in info["infotexts"][0]
    assert varied["images"][0] != base["images"][0]


def test_seed_resize_from_is_accepted_and_reported(client):
    body = txt2img(client, seed=3, seed_resize_from_w=32, seed_resize_from_h=48)
    assert "Seed resize from: 32x48" in json.loads(body["info"])["infotexts"][0]


def test_negative_prompt_changes_image_and_infotext(client):
    a = txt2img(client, seed=11)
    b = txt2img(client, seed=11, negative_prompt="blurry, ugly")
    assert a["images"] != b["images"]
    assert "\nNegative prompt: blurry, ugly\n" in json.loads(b["info"])["infotexts"][0]


def test_long_prompt_uses_several_chunks(client):
    long_prompt = ", ".join(["a red fox in the snow"] * 20)
    body = txt2img(client, prompt=long_prompt, seed=2)
    assert json.loads(body["info"])["prompt"] == long_prompt


def test_clip_skip_override_changes_image_and_is_restored(client, state):
    a = txt2img(client, seed=21)
    b = txt2img(client, seed=21, override_settings={"CLIP_stop_at_last_layers": 2})
    info = json.loads(b["info"])
    assert info["clip_skip"] == 2 and ", Clip skip: 2," in info["infotexts"][0]
    assert a["images"] != b["images"]
    assert state.options.get("CLIP_stop_at_last_layers") == 1


def test_override_checkpoint_by_title_filename_and_hash(client, state):
    current = state.options.get("sd_model_checkpoint")
    other_file = "demo-sd15.safetensors" if current.startswith("demo-sd15-b") else "demo-sd15-b.safetensors"
    default = txt2img(client, seed=5)
    by_filename = txt2img(client, seed=5, override_settings={"sd_model_checkpoint": other_file})
    other = next(m for m in client.get("/sdapi/v1/sd-models").json() if m["title"].startswith(other_file))
    assert other["hash"] is not None  # hashed when it was loaded, as A1111
    by_title = txt2img(client, seed=5, override_settings={"sd_model_checkpoint": other["title"]})
    by_hash = txt2img(client, seed=5, override_settings={"sd_model_checkpoint": other["hash"]})
    by_name = txt2img(client, seed=5, override_settings={"sd_model_checkpoint": other["model_name"]})
    assert by_filename["images"] == by_title["images"] == by_hash["images"] == by_name["images"]
    assert by_hash["images"] != default["images"]
    info = json.loads(by_hash["info"])
    assert info["sd_model_hash"] == other["hash"]
    assert f"Model hash: {other['hash']}, Model: {other['model_name']}," in info["infotexts"][0]
    assert state.options.get("sd_model_checkpoint") == current  # restored afterwards


def test_override_without_restore_switches_the_model(client, state):
    before = state.options.get("sd_model_checkpoint")
    other_file = "demo-sd15.safetensors" if before.startswith("demo-sd15-b") else "demo-sd15-b.safetensors"
    txt2img(client, override_settings={"sd_model_checkpoint": other_file}, override_settings_restore_afterwards=False)
    try:
        assert state.options.get("sd_model_checkpoint").startswith(other_file + " [")
    finally:
        txt2img(client, override_settings={"sd_model_checkpoint": before}, override_settings_restore_afterwards=False)
    assert state.options.get("sd_model_checkpoint") == before


def test_unknown_checkpoint_override_is_ignored_like_a1111(client):
    body = txt2img(client, seed=1, override_settings={"sd_model_checkpoint": "does-not-exist.safetensors"})
    assert len(body["images"]) == 1


def test_unknown_option_in_override_is_a_500_key_error(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 1,
                                                "override_settings": {"no_such_option_key": 1}})
    assert r.status_code == 500
    assert r.json() == {"error": "KeyError", "detail": "", "body": "", "errors": "'no_such_option_key'"}


def test_send_images_false_returns_no_images(client):
    body = txt2img(client, send_images=False, seed=1)
    assert body["images"] == [] and len(json.loads(body["info"])["infotexts"]) == 1


def test_save_images_with_several_images_prepends_a_grid(client):
    body = txt2img(client, save_images=True, batch_size=2, seed=1)
    info = json.loads(body["info"])
    assert len(body["images"]) == 3 and info["index_of_first_image"] == 1
    assert decode_png(body["images"][0]).size == (128, 64)


def test_parameters_echo_the_request_with_defaults(client):
    body = txt2img(client, steps="3", cfg_scale=5, seed=4.0)
    params = body["parameters"]
    assert params["steps"] == 3 and params["cfg_scale"] == 5.0 and params["seed"] == 4
    assert params["sampler_index"] == "Euler" and params["sampler_name"] is None
    assert "Steps: 3, Sampler: Euler, CFG scale: 5.0, Seed: 4," in json.loads(body["info"])["infotexts"][0]


def test_jpeg_samples_format_carries_infotext_in_exif(client, state):
    state.options.set("samples_format", "jpg")
    try:
        body = txt2img(client, seed=1)
    finally:
        state.options.set("samples_format", "png")
    image = decode_png(body["images"][0])
    assert image.format == "JPEG"
    comment = image.getexif().get_ifd(0x8769).get(0x9286) or image.getexif().get(0x9286)
    assert comment is not None and b"Steps: 2" in comment.replace(b"\x00", b"")


@pytest.mark.parametrize(
    "payload, status, body",
    [
        ({"sampler_index": "NoSuchSampler"}, 404,
         {"error": "HTTPException", "detail": "Sampler not found", "body": "", "errors": ""}),
        ({"sampler_name": "euler a"}, 404,
         {"error": "HTTPException", "detail": "Sampler not found", "body": "", "errors": ""}),
        ({"sampler_index": "k_euler_a"}, 404,
         {"error": "HTTPException", "detail": "Sampler not found", "body": "", "errors": ""}),
        ({"script_name": "no such script"}, 422,
         {"error": "HTTPException", "detail": "Script 'no such script' not found", "body": "", "errors": ""}),
        ({"alwayson_scripts": {"adetailer": {"args": []}}}, 422,
         {"error": "HTTPException", "detail": "always on script adetailer not found", "body": "", "errors": ""}),
    ],
)
def test_a1111_errors(client, payload, status, body):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 1, **payload})
    assert r.status_code == status and r.json() == body


@pytest.mark.parametrize("payload, field", [
    ({"width": -64}, "width"), ({"width": 65}, "width"), ({"height": 0}, "height"),
    ({"width": 65536, "height": 64}, "width"),
    ({"width": 8192, "height": 8192, "batch_size": 2}, "width*height"), ({"steps": 0}, "steps"), ({"batch_size": 0}, "batch_size"),
])
def test_impossible_sizes_are_refused_before_generation(client, payload, field):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 1, **payload})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "InvalidRequest" and field in body["errors"]
    assert set(body) == {"error", "detail", "body", "errors"}


def test_server_keeps_serving_after_errors(client):
    for payload in ({"width": 65}, {"sampler_index": "x"}, {"override_settings": {"nope": 1}}):
        client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 1, **payload})
    assert len(txt2img(client, seed=1)["images"]) == 1


def test_null_cfg_scale_is_refused_up_front(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "a", "width": 64, "height": 64, "steps": 2,
                                               "cfg_scale": None})
    assert r.status_code == 422
    assert r.json() == {"error": "InvalidRequest", "detail": "", "body": "",
                        "errors": "cfg_scale must be a number, got None"}


@pytest.mark.parametrize("sampler, field, value, infotext", [
    ("Euler a", "eta", 0.5, "Eta: 0.5"),
    ("DDIM", "eta", 0.5, "Eta DDIM: 0.5"),
    ("Euler", "s_churn", 1.0, None),
])
def test_sampler_parameters_change_the_image_as_a1111(client, sampler, field, value, infotext):
    base = {"sampler_name": sampler, "seed": 3, "steps": 4}
    plain = txt2img(client, **base)
    changed = txt2img(client, **base, **{field: value})
    assert changed["images"] != plain["images"]
    text = json.loads(changed["info"])["infotexts"][0]
    if infotext is not None:
        assert infotext in text
    assert "Eta" not in json.loads(plain["info"])["infotexts"][0]


def test_default_sampler_parameters_change_nothing(client):
    base = {"sampler_name": "Euler a", "seed": 3, "steps": 4}
    defaults = {"eta": 1.0, "s_churn": 0.0, "s_noise": 1.0, "s_tmin": 0.0, "s_min_uncond": 0.0}
    assert txt2img(client, **base, **defaults)["images"] == txt2img(client, **base)["images"]
