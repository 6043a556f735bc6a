"""``/sdapi/v1/options``: read, write, persist, switch checkpoints; the Open WebUI and SillyTavern sequences."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.settings import Settings
from tests.conftest import decode_png, txt2img


@pytest.fixture()
def restore_options(state):
    saved = state.options.snapshot()
    checkpoint = state.selected_checkpoint()
    yield
    for key, value in saved.items():
        state.options.set(key, value)
    state.activate(checkpoint)
    state.options.save()


def test_post_single_key_applies_and_persists(client, state, settings, restore_options):
    assert client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2}).json() is None
    assert client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 2.0
    saved = json.loads(settings.config_file.read_text())
    assert saved["CLIP_stop_at_last_layers"] == 2
    body = txt2img(client, seed=3)
    assert "Clip skip: 2" in json.loads(body["info"])["infotexts"][0]


def test_samples_format_changes_the_image_format(client, restore_options):
    client.post("/sdapi/v1/options", json={"samples_format": "jpg"})
    image = decode_png(txt2img(client, seed=3)["images"][0])
    assert image.format == "JPEG"


@pytest.mark.parametrize("how", ["title", "filename", "model_name", "hash"])
def test_sd_model_checkpoint_by_title_filename_or_hash(client, state, how, restore_options):
    other = state.catalog.find("demo-sd15-b.safetensors")
    state.catalog.ensure_hashed(other)
    state.activate(state.catalog.find("demo-sd15.safetensors"))
    name = {"title": other.title, "filename": "demo-sd15-b.safetensors", "model_name": other.model_name,
            "hash": other.shorthash}[how]
    assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": name}).status_code == 200
    options = client.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == other.title
    assert options["sd_checkpoint_hash"] == other.sha256
    assert json.loads(txt2img(client)["info"])["sd_model_hash"] == other.shorthash


def test_open_webui_sequence_posts_the_whole_dict_back(client, state, restore_options):
    """Open WebUI: GET options, change the model, POST everything back, then txt2img."""
    state.activate(state.catalog.find("demo-sd15.safetensors"))
    options = client.get("/sdapi/v1/options").json()
    other = state.catalog.find("demo-sd15-b.safetensors")
    options["sd_model_checkpoint"] = other.title
    r = client.post("/sdapi/v1/options", json=options)
    assert r.status_code == 200, r.text
    after = client.get("/sdapi/v1/options").json()
    assert after["sd_model_checkpoint"] == other.title
    # sd_checkpoint_hash is the server's: the stale value posted back did not overwrite it.
    assert after["sd_checkpoint_hash"] == other.sha256
    body = txt2img(client, prompt="a lighthouse", steps=2)
    assert json.loads(body["info"])["sd_model_hash"] == other.shorthash


def test_sillytavern_sequence_with_unknown_body_keys(client, restore_options):
    """SillyTavern sends keys A1111 ignores (``save_images``, ``restore_faces``, its own ``do_not_save_*``...)."""
    body = txt2img(client, prompt="a cat", negative_prompt="blurry", sampler_name="Euler a", cfg_scale=7,
                   seed=-1, save_images=False, do_not_save_samples=True, do_not_save_grid=True,
                   override_settings={"CLIP_stop_at_last_layers": 1}, override_settings_restore_afterwards=True,
                   some_future_key={"nested": True})
    assert len(body["images"]) == 1


def test_unknown_key_changes_nothing(client, state, restore_options):
    before = state.options.snapshot()
    r = client.post("/sdapi/v1/options", json={"jpeg_quality": 50, "no_such_option_key": 1})
    assert r.status_code == 500 and r.json()["error"] == "KeyError"
    assert state.options.snapshot() == before


def test_value_of_the_wrong_type_is_refused_and_changes_nothing(client, state, restore_options):
    before = state.options.snapshot()
    r = client.post("/sdapi/v1/options", json={"jpeg_quality": 50, "CLIP_stop_at_last_layers": "two"})
    assert r.status_code == 422
    assert set(r.json()) == {"error", "detail", "body", "errors"}
    assert "CLIP_stop_at_last_layers" in r.json()["errors"]
    assert state.options.snapshot() == before


def test_lax_values_are_coerced_like_a1111(client, restore_options):
    client.post("/sdapi/v1/options", json={"send_seed": "false", "jpeg_quality": "90"})
    options = client.get("/sdapi/v1/options").json()
    assert options["send_seed"] is False and options["jpeg_quality"] == 90.0


def test_current_checkpoint_survives_a_restart(settings, tmp_path):
    data_dir = tmp_path / "data"
    for sub in ("models/Stable-diffusion",):
        (data_dir / sub).mkdir(parents=True)
    for f in (settings.models_dir).glob("*.safetensors"):
        (data_dir / "models/Stable-diffusion" / f.name).symlink_to(f)
    fresh = Settings(data_dir=data_dir, cache_dir=settings.cache_dir, num_threads=2)
    with TestClient(create_app(fresh), raise_server_exceptions=False) as c:
        titles = [m["title"] for m in c.get("/sdapi/v1/sd-models").json()]
        current = c.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
        other = next(t for t in titles if t != current)
        assert c.post("/sdapi/v1/options", json={"sd_model_checkpoint": other}).status_code == 200
    with TestClient(create_app(fresh), raise_server_exceptions=False) as c:
        # The title gains its hash once the file has been hashed; the file is the same.
        assert c.get("/sdapi/v1/options").json()["sd_model_checkpoint"].split(" [")[0] == other.split(" [")[0]
