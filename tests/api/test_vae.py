"""VAE selection through HTTP: ``sd_vae`` (``Automatic``, ``None``, a file in ``models/VAE``), ``sd_vae_as_default``
with a ``<checkpoint>.vae.safetensors`` beside the checkpoint, ``override_settings`` for one request, ``/sd-vae`` and
``/refresh-vae`` (later A1111), the ``VAE hash``/``VAE`` infotext, and that a switch swaps only the VAE: the
checkpoint is not read again.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdapi.engine.demo_models import build_tiny_vae
from sdapi.engine.demo_vae import nudged_vae_state_dict, write_demo_vae
from sdapi.engine.ldm_layout import write_safetensors
from sdapi.files import sha256_of_file
from tests.conftest import decode_png, txt2img

MODEL = {"sd_model_checkpoint": "demo-sd15.safetensors"}


def generate(client, **payload) -> dict:
    overrides = {**MODEL, **payload.pop("override_settings", {})}
    return txt2img(client, prompt="a cat", seed=31, steps=2, override_settings=overrides, **payload)


def pixels(body: dict) -> np.ndarray:
    return np.asarray(decode_png(body["images"][0])).astype(int)


def infotext(body: dict) -> str:
    return json.loads(body["info"])["infotexts"][0]


@pytest.fixture(scope="module")
def own(client):
    """The image with the checkpoint's own VAE, before any VAE file exists."""
    return pixels(generate(client))


@pytest.fixture(scope="module")
def vae_files(client, own):
    """``models/VAE/demo-vae.safetensors`` (ldm layout), the same weights in diffusers' layout, and a VAE of other
    widths."""
    state = client.app.state.sdapi
    folder = state.settings.vae_models_dir
    paths = {"ldm": write_demo_vae(state.settings.data_dir),
             "diffusers": write_safetensors(nudged_vae_state_dict(layout="diffusers"),
                                            folder / "demo-vae-diffusers.safetensors")}
    wide = build_tiny_vae()
    wide.decoder.conv_out = type(wide.decoder.conv_out)(8, 3, 5, padding=2)  # a 5x5 last convolution
    paths["other"] = write_safetensors(wide.state_dict(), folder / "other-shape.vae.pt.safetensors")
    assert client.post("/sdapi/v1/refresh-vae").json() is None
    yield paths
    for path in paths.values():
        path.unlink()
    client.post("/sdapi/v1/options", json={"sd_vae": "Automatic", "sd_vae_as_default": True})
    client.post("/sdapi/v1/refresh-vae")


@pytest.fixture()
def loads(client):
    """Asserts the test read no checkpoint file again."""
    engine = client.app.state.sdapi.engine
    generate(client)  # the demo checkpoint is loaded before counting
    before = engine.checkpoint_loads
    yield
    assert engine.checkpoint_loads == before


def test_sd_vae_lists_the_files(client, vae_files):
    items = client.get("/sdapi/v1/sd-vae").json()
    assert [item["model_name"] for item in items] == ["demo-vae-diffusers.safetensors", "demo-vae.safetensors",
                                                      "other-shape.vae.pt.safetensors"]
    assert items[1]["filename"] == str(vae_files["ldm"].resolve())


def test_switching_changes_pixels_and_none_gives_the_original_back(client, vae_files, own, loads):
    client.post("/sdapi/v1/options", json={"sd_vae": "demo-vae.safetensors"})
    body = generate(client)
    assert not np.array_equal(pixels(body), own)
    assert f"VAE hash: {sha256_of_file(vae_files['ldm'])[:10]}, VAE: demo-vae.safetensors, " in infotext(body)
    client.post("/sdapi/v1/options", json={"sd_vae": "None"})
    body = generate(client)
    assert np.array_equal(pixels(body), own) and "VAE" not in infotext(body)


def test_both_file_layouts_give_the_same_pixels(client, vae_files, loads):
    ldm = generate(client, override_settings={"sd_vae": "demo-vae.safetensors"})
    diffusers = generate(client, override_settings={"sd_vae": "demo-vae-diffusers.safetensors"})
    assert np.array_equal(pixels(ldm), pixels(diffusers))


def test_an_override_holds_for_its_request_only(client, vae_files, own, loads):
    client.post("/sdapi/v1/options", json={"sd_vae": "Automatic"})
    assert not np.array_equal(pixels(generate(client, override_settings={"sd_vae": "demo-vae.safetensors"})), own)
    assert client.get("/sdapi/v1/options").json()["sd_vae"] == "Automatic"
    assert np.array_equal(pixels(generate(client)), own)


def test_a_vae_beside_the_checkpoint_follows_a1111s_rule(client, vae_files, own, loads):
    state = client.app.state.sdapi
    near = state.catalog.find("demo-sd15.safetensors").filename.with_suffix(".vae.safetensors")
    near.write_bytes(vae_files["ldm"].read_bytes())
    try:
        client.post("/sdapi/v1/options", json={"sd_vae": "Automatic", "sd_vae_as_default": False})
        automatic = generate(client)
        assert "VAE: demo-sd15.vae.safetensors" in infotext(automatic) and not np.array_equal(pixels(automatic), own)
        assert np.array_equal(pixels(generate(client, override_settings={"sd_vae": "None"})), own)
        # sd_vae_as_default: the file beside the checkpoint wins even over "None" (A1111 v1.2.1's resolve_vae).
        body = generate(client, override_settings={"sd_vae": "None", "sd_vae_as_default": True})
        assert np.array_equal(pixels(body), pixels(automatic))
    finally:
        near.unlink()
        client.post("/sdapi/v1/options", json={"sd_vae": "Automatic", "sd_vae_as_default": True})
    assert state.catalog.find("demo-sd15.vae.safetensors") is None  # never listed as a checkpoint


def test_a_vae_that_does_not_fit_is_refused_and_changes_nothing(client, vae_files, own, loads):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "seed": 31, "steps": 2, "width": 64, "height": 64,
                                               "override_settings": {**MODEL,
                                                                     "sd_vae": "other-shape.vae.pt.safetensors"}})
    assert r.status_code == 422 and "does not fit this checkpoint's VAE" in r.json()["errors"]
    assert "decoder.conv_out.weight" in r.json()["errors"]
    assert np.array_equal(pixels(generate(client)), own)


def test_an_unknown_name_is_refused_before_anything_runs(client, vae_files):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "a", "override_settings": {"sd_vae": "nope.safetensors"}})
    assert r.status_code == 422 and "sd_vae" in r.json()["errors"]
    r = client.post("/sdapi/v1/options", json={"sd_vae": "nope.safetensors"})
    assert r.status_code == 422 and client.get("/sdapi/v1/options").json()["sd_vae"] != "nope.safetensors"
