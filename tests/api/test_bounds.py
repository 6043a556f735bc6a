"""What one request may ask for: bounded work, checked values, overrides checked like POST /options, warnings for
what was not applied, and answers that never show the server's paths (issue-14 probes, each once a 500, a hang or
silent damage)."""

from __future__ import annotations

import json

import pytest

from sdapi.errors import without_server_paths
from tests.conftest import txt2img

SMALL = {"prompt": "a photo of a cat", "width": 64, "height": 64, "steps": 2}


def post(client, path: str, body) -> tuple[int, dict]:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    return r.status_code, r.json()


def refused(client, payload: dict, field: str, path: str = "/sdapi/v1/txt2img") -> dict:
    status, body = post(client, path, {**SMALL, **payload})
    assert status == 422, body
    assert body["error"] == "InvalidRequest" and field in body["errors"], body
    return body


@pytest.mark.parametrize("payload, field", [
    ({"width": 100000, "height": 64}, "width"),
    ({"height": 16384}, "height"),
    ({"steps": 5000}, "steps"),
    ({"batch_size": 50, "n_iter": 100}, "batch_size * n_iter"),
    ({"prompt": "a" * 600_000}, "prompt"),
    ({"negative_prompt": "b" * 40_000}, "negative_prompt"),
    ({"seed": 10 ** 30}, "seed"),
    ({"seed": -10 ** 30}, "seed"),
    ({"subseed": 10 ** 30}, "subseed"),
    ({"enable_hr": True, "hr_scale": -2}, "hr_scale"),
    ({"enable_hr": True, "hr_resize_x": -64}, "hr_resize_x"),
    ({"enable_hr": True, "hr_scale": 200}, "hires fix target"),
    ({"enable_hr": True, "hr_second_pass_steps": 5000}, "hr_second_pass_steps"),
    ({"prompt": "(" * 5000 + "cat"}, "prompt"),
    ({"prompt": "a cat <lora:demo-lora:Infinity>"}, "<lora:demo-lora:Infinity>"),
    ({"prompt": "a cat <lora:demo-lora:nan>"}, "<lora:demo-lora:nan>"),
    ({"eta": float("inf")}, "eta"),
])
def test_txt2img_requests_past_the_bounds_are_refused_naming_the_field(client, payload, field):
    refused(client, payload, field)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_cfg_scale_is_refused(client, literal):
    status, body = post(client, "/sdapi/v1/txt2img", json.dumps(SMALL)[:-1] + f', "cfg_scale": {literal}}}')
    assert status == 422 and "cfg_scale" in body["errors"]


def test_a_lone_surrogate_in_the_prompt_is_refused(client):
    status, body = post(client, "/sdapi/v1/txt2img", json.dumps(SMALL)[:-1] + ', "prompt": "a \\ud800 cat"}')
    assert status == 422 and "prompt" in body["errors"] and "surrogate" in body["errors"]


def test_img2img_negative_padding_is_refused(client):
    image = txt2img(client)["images"][0]
    refused(client, {"init_images": [image], "inpaint_full_res_padding": -100}, "inpaint_full_res_padding",
            path="/sdapi/v1/img2img")


@pytest.mark.parametrize("payload", [
    {"resize_mode": 1, "upscaling_resize_w": 20000, "upscaling_resize_h": 20000},
    {"resize_mode": 1, "upscaling_resize_w": 100000, "upscaling_resize_h": 64},
])
def test_extras_results_past_the_bounds_are_refused(client, payload):
    # (upscaling_resize is bounded to 1..8 by A1111's own schema; a target size is not.)
    image = txt2img(client)["images"][0]
    body = {"image": image, "upscaler_1": "Lanczos", **payload}
    status, answer = post(client, "/sdapi/v1/extra-single-image", body)
    assert status == 422 and "upscal" in answer["errors"] and "limit" in answer["errors"], answer
    batch = {"imageList": [{"data": image, "name": "a.png"}], "upscaler_1": "Lanczos", **payload}
    status, answer = post(client, "/sdapi/v1/extra-batch-images", batch)
    assert status == 422 and "upscal" in answer["errors"], answer


@pytest.mark.parametrize("override, key", [
    ({"enable_batch_seeds": "maybe"}, "enable_batch_seeds"),
    ({"samples_format": "exe"}, "samples_format"),
    ({"CLIP_stop_at_last_layers": "lots"}, "CLIP_stop_at_last_layers"),
])
def test_overrides_are_checked_like_posted_options_and_change_nothing(client, state, settings, override, key):
    before = client.get("/sdapi/v1/options").json()
    status, body = post(client, "/sdapi/v1/txt2img", {**SMALL, "override_settings": override,
                                                      "override_settings_restore_afterwards": False})
    assert status == 422 and key in body["errors"]
    assert client.get("/sdapi/v1/options").json() == before  # GET still answers, nothing applied
    assert len(txt2img(client)["images"]) == 1


def test_a_bad_value_saved_by_an_older_server_does_not_survive_a_restart(tmp_path):
    from sdapi.options import Options

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"enable_batch_seeds": "maybe", "samples_format": "exe", "CLIP_stop_at_last_layers": 2}))
    options = Options(config)
    assert options.get("enable_batch_seeds") is True and options.get("samples_format") == "png"
    assert options.get("CLIP_stop_at_last_layers") == 2


def test_what_was_not_applied_is_listed_in_info_warnings(client):
    body = txt2img(client, prompt="a cat <lora:no-such-lora:1> <lora:demo-lora:abc>",
                   override_settings={"sd_model_checkpoint": "misspelled.safetensors"})
    warnings = json.loads(body["info"])["warnings"]
    assert any("misspelled.safetensors" in w and "current model" in w for w in warnings)
    assert any("Couldn't find Lora with name no-such-lora" in w for w in warnings)
    assert any("<lora:demo-lora:abc>" in w for w in warnings)
    assert "warnings" not in json.loads(txt2img(client)["info"])  # A1111's info when everything applied


def test_error_texts_never_show_server_paths():
    text = ("[Errno 2] No such file or directory: '/srv/sdapi/data/models/Stable-diffusion/x.safetensors'; "
            'File "/srv/sdapi/sdapi/engine/local.py", line 120, in generate')
    cleaned = without_server_paths(text)
    assert "/srv" not in cleaned and "line 120" not in cleaned and "x.safetensors" in cleaned
    assert without_server_paths("see https://errors.pydantic.dev/2.14/v/int_parsing") == \
        "see https://errors.pydantic.dev/2.14/v/int_parsing"


def test_a_long_prompt_stops_encoding_when_the_job_is_interrupted(client, state, monkeypatch):
    from sdapi.engine.conditioning import PromptEncoder

    calls = []
    real = PromptEncoder._encode_chunk

    def counting(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            state.control.interrupt()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PromptEncoder, "_encode_chunk", counting)
    body = txt2img(client, prompt=", ".join(["a red fox"] * 400))  # about 40 chunks of 75 tokens
    assert len(calls) == 2 and body["images"] == []
