"""Replay the v1.2.1 recordings of the server surface around generation: options, progress, interrupt/skip,
png-info and the read-only listings (the comparator's rules: same status, same JSON shape and types, equal
deterministic values)."""

from __future__ import annotations

import pytest

from tests.conftest import load_recording
from tests.contract.comparator import compare_to_recording
from tests.contract.test_recordings import RECORDED_MODELS, _send, substitutions_for


def _replay(client, name: str, noisy=frozenset(), substitutions=None) -> list[str]:
    recorded = load_recording(name)
    r = _send(client, recorded)
    return compare_to_recording(recorded, r.status_code, r.json(), substitutions=substitutions or {},
                                noisy=set(noisy))


@pytest.mark.parametrize("name", [
    "post-interrupt-idle.json",
    "post-skip-idle.json",
    "get-embeddings.json",
    "get-prompt-styles.json",  # no styles.csv in the data dir
    "get-hypernetworks.json",
    "error-png-info-invalid-base64.json",
    "post-options-unknown-checkpoint.json",
])
def test_equals_recording(client, name):
    assert _replay(client, name) == []


def test_interrupt_and_skip_when_idle_leave_the_next_job_alone(client):
    client.post("/sdapi/v1/interrupt")
    client.post("/sdapi/v1/skip")
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "a", "width": 64, "height": 64, "steps": 2, "n_iter": 2})
    assert r.status_code == 200 and len(r.json()["images"]) == 2


@pytest.mark.parametrize("name", ["get-progress-idle.json", "get-progress-idle-after-generation.json"])
def test_idle_progress_has_recorded_shape(client, name):
    recorded = load_recording(name)
    r = client.get(recorded["path"])
    assert r.status_code == 200
    noisy = {f"state.{k}" for k in ("job_timestamp", "job_no", "sampling_steps", "sampling_step", "interrupted",
                                    "skipped")}
    assert compare_to_recording(recorded, r.status_code, r.json(), substitutions={}, noisy=noisy) == []
    assert r.json()["state"]["job_count"] == 0 and r.json()["progress"] == 0.0


@pytest.mark.parametrize("name", ["post-png-info.json", "post-png-info-no-metadata.json"])
def test_png_info_equals_recording(client, name):
    # The recorded request images are truncated in the fixture: rebuild a PNG with the recorded text chunks.
    import base64
    import io

    from PIL import Image, PngImagePlugin

    recorded = load_recording(name)
    decoded = recorded["request"]["image"]["_decoded"]
    meta = PngImagePlugin.PngInfo()
    for key, value in decoded["png_text"].items():
        meta.add_text(key, value)
    buf = io.BytesIO()
    Image.new(decoded["mode"], tuple(decoded["size"])).save(buf, format="PNG", pnginfo=meta)
    r = client.post("/sdapi/v1/png-info", json={"image": base64.b64encode(buf.getvalue()).decode()})
    # Compared whole: the comparator would read ``info`` as txt2img's JSON string.
    assert (r.status_code, r.json()) == (recorded["status"], recorded["response"])


def test_options_have_every_recorded_key_with_its_json_type(client, state):
    recorded = load_recording("get-options.json")
    subs = substitutions_for(state)
    demo = state.catalog.find(RECORDED_MODELS["ae61658884"][2])
    state.activate(demo)
    r = client.get("/sdapi/v1/options")
    # Values that describe the recording machine or its loaded model are compared by type only.
    noisy = {"sd_model_checkpoint", "sd_checkpoint_hash"}
    # Options of later A1111 versions that sdapi honours (SDXL's, the TI and VAE infotext switches) come on top of
    # v1.2.1's, with their defaults.
    later = {"sdxl_crop_top": 0.0, "sdxl_crop_left": 0.0, "sdxl_clip_l_skip": False,
             "textual_inversion_add_hashes_to_infotext": True, "add_vae_name_to_info": True,
             "add_vae_hash_to_info": True, "hires_fix_refiner_pass": "second pass",
             "sdxl_refiner_low_aesthetic_score": 2.5, "sdxl_refiner_high_aesthetic_score": 6.0,
             "refiner_switch_by_sample_steps": False,
             # sd-webui-controlnet's options (A1111 lists them when the extension is installed).
             "control_net_unit_count": 3.0, "control_net_model_cache_size": 2.0, "control_net_no_detectmap": False}
    body = r.json()
    assert {key: body.pop(key) for key in later} == later
    assert compare_to_recording(recorded, r.status_code, body, substitutions=subs, noisy=noisy) == []
    assert r.json()["sd_model_checkpoint"] == demo.title
    assert r.json()["CLIP_stop_at_last_layers"] == 1.0 and isinstance(r.json()["jpeg_quality"], float)


@pytest.mark.parametrize("name, after", [
    ("post-options-switch-checkpoint.json", "get-options-after-switch.json"),
    ("post-options-unknown-checkpoint.json", "get-options-after-unknown-checkpoint.json"),
])
def test_options_checkpoint_switch_like_recording(client, state, name, after):
    recorded, recorded_after = load_recording(name), load_recording(after)
    subs = substitutions_for(state)
    state.activate(state.catalog.find("demo-sd15.safetensors"))
    wanted = recorded["request"]["sd_model_checkpoint"]
    for short, (model_name, _, demo_file) in RECORDED_MODELS.items():
        if wanted.startswith(model_name + "."):
            wanted = demo_file
    if name == "post-options-unknown-checkpoint.json":
        state.activate(state.catalog.find("demo-sd15-b.safetensors"))
    r = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": wanted})
    assert compare_to_recording(recorded, r.status_code, r.json(), substitutions=subs, noisy=set()) == []
    r = client.get("/sdapi/v1/options")
    recorded_hash = recorded_after["response"]["sd_model_checkpoint"].rsplit("[", 1)[1].rstrip("]")
    assert r.json()["sd_model_checkpoint"] == state.catalog.find(RECORDED_MODELS[recorded_hash][2]).title
    state.activate(state.catalog.find("demo-sd15.safetensors"))


def test_cmd_flags_have_every_recorded_key(client):
    recorded = load_recording("get-cmd-flags.json")
    body = client.get("/sdapi/v1/cmd-flags").json()
    assert set(body) == set(recorded["response"])


def test_memory_has_recorded_shape(client):
    recorded = load_recording("get-memory.json")
    body = client.get("/sdapi/v1/memory").json()
    assert set(body) == {"ram", "cuda"}
    assert set(body["ram"]) == set(recorded["response"]["ram"])
    assert isinstance(body["ram"]["used"], int) and isinstance(body["ram"]["total"], float)
    assert body["ram"]["free"] + body["ram"]["used"] == pytest.approx(body["ram"]["total"])


@pytest.mark.parametrize("name", ["get-upscalers.json", "get-face-restorers.json", "get-realesrgan-models.json",
                                  "get-scripts.json"])
def test_listings_have_recorded_item_shape(client, name):
    """Deliberate difference: we list only what this server can run (README), so contents differ; each item we
    do list has the recorded keys and JSON types."""
    recorded = load_recording(name)
    body = client.get(recorded["path"]).json()
    if isinstance(body, dict):
        assert set(body) == set(recorded["response"])
        return
    sample = recorded["response"][0]
    for item in body:
        assert set(item) == set(sample)
    if name == "get-upscalers.json":
        assert [u["name"] for u in body] == [u["name"] for u in recorded["response"][:3]]
        assert body == recorded["response"][:2] + [recorded["response"][2]]
