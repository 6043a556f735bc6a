"""Replay real AUTOMATIC1111 v1.2.1 recordings against our app and compare the answers.

The recordings (``tests/fixtures/a1111-v1.2.1``, byte-for-byte copies of the shared set; see its
``PROVENANCE.md``) were made against two random-weight checkpoints; we serve two tiny demo checkpoints
instead, so the recorded model names and hashes are substituted with ours (:data:`RECORDED_MODELS`) and the
recorded model is selected before each replay. What is compared, and what is noisy, is documented in
:mod:`tests.contract.comparator`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import RECORDINGS, decode_png, load_recording
from tests.contract.comparator import (
    ALWAYS_NOISY,
    NOISY_IF_RANDOM_SEED,
    NOISY_IF_RANDOM_SUBSEED,
    compare_to_recording,
)

# Recorded checkpoint (by short hash) → (its A1111 model name, its full sha256, the demo checkpoint standing in).
RECORDED_MODELS = {
    "ae61658884": ("random-sd15", "ae616588843fd0b18136581129e5b00f63be88f36de1d873dc54cb48aab0c056",
                   "demo-sd15.safetensors"),
    "0eb1d773de": ("random-sd15_b", "0eb1d773dee1836cffb7d2436ffef0645bd6774d093d168d4d93822c2f41c6cf",
                   "demo-sd15-b.safetensors"),
}

# Top-level txt2img recordings with status 200 that sdapi serves exactly today.
SERVED_TXT2IMG = [
    "post-txt2img-minimal-64px.json",  # seed -1: seeds are noisy
    "post-txt2img-sampler-name-field.json",
    "error-txt2img-missing-prompt.json",  # 200: prompt defaults to ""
    "error-txt2img-unknown-checkpoint-override.json",  # 200: unknown override checkpoint silently dropped
    "post-txt2img-after-switch.json",  # made after POST /options switched to random-sd15_b
    "post-txt2img-long-for-progress.json",  # 30 steps, batch 2, on random-sd15_b (after the switch)
    "webui-mode/post-txt2img-no-lora-same-seed.json",  # the LoRA recording's request without the tag
]

# Hires fix (enable_hr, x2 "Latent", 4 images): compared on everything, image sizes included.
SERVED_TXT2IMG_HIRES = [
    "post-txt2img-seed-payload-fixed-seed.json",
    "post-txt2img-seed-payload-seed-minus1.json",
]

# Top-level txt2img 200 recordings not replayed yet, and why (every one must be listed here or above).
# Top-level txt2img recordings replayed by another test file.
REPLAYED_ELSEWHERE = {"post-txt2img-lora.json": "tests/contract/test_lora_recordings.py"}

# Selectable scripts (X/Y/Z plot): the grid only, one infotext for it and one per cell, every cell on one seed.
SERVED_TXT2IMG_SCRIPTS = ["post-txt2img-xyz-prompt-sr.json"]

NOT_SERVED_YET: dict[str, str] = {}


@contextmanager
def selected(state, demo_file: str):
    """Make ``demo_file`` the current checkpoint (loaded and hashed), as A1111's was when it recorded.

    Stands in for the recorded ``POST /options {"sd_model_checkpoint": ...}`` (tested on its own in
    ``test_surface_recordings``), without persisting the choice to ``config.json``.
    """
    previous = state.options.get("sd_model_checkpoint")
    info = state.activate(state.catalog.find(demo_file))
    try:
        yield info
    finally:
        state.options.set("sd_model_checkpoint", previous)


def substitutions_for(state) -> dict[str, str]:
    """Every recorded model's short hash, full hash and model name → the demo checkpoint's (hashing it)."""
    subs = {}
    for short, (model_name, sha256, demo_file) in RECORDED_MODELS.items():
        info = state.catalog.find(demo_file)
        state.catalog.ensure_hashed(info)
        subs.update({short: info.shorthash, sha256: info.sha256, model_name: info.model_name})
    return subs


def noisy_for(request: dict) -> set[str]:
    """The comparator's noisy fields for this request (see ``comparator.NOISY_REASONS``)."""
    noisy = set(ALWAYS_NOISY)
    if request.get("seed", -1) == -1:
        noisy |= NOISY_IF_RANDOM_SEED
    if request.get("subseed", -1) == -1:
        noisy |= NOISY_IF_RANDOM_SUBSEED
    return noisy


def our_request(recorded_request: dict, state) -> dict:
    """The recorded request with a recorded checkpoint title in ``override_settings`` replaced by ours."""
    request = copy.deepcopy(recorded_request)
    overrides = request.get("override_settings") or {}
    wanted = overrides.get("sd_model_checkpoint")
    for short, (_, _, demo_file) in RECORDED_MODELS.items():
        if isinstance(wanted, str) and wanted.endswith(f" [{short}]"):
            overrides["sd_model_checkpoint"] = state.catalog.find(demo_file).title
    return request


def replay_txt2img(client, state, name: str, not_implemented=frozenset()) -> list[str]:
    recorded = load_recording(name)
    assert recorded["method"] == "POST" and recorded["path"] == "/sdapi/v1/txt2img"
    recorded_hash = json.loads(recorded["response"]["info"])["sd_model_hash"]
    subs = substitutions_for(state)
    with selected(state, RECORDED_MODELS[recorded_hash][2]):
        request = our_request(recorded["request"], state)
        r = client.post("/sdapi/v1/txt2img", json=request)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    diffs = compare_to_recording(recorded, r.status_code, body, substitutions=subs,
                                 noisy=noisy_for(recorded["request"]), not_implemented=not_implemented)
    return diffs or _noisy_values_consistent(body)


def _noisy_values_consistent(body: dict) -> list[str]:
    """Masked values still have to agree with each other: seed+i per image, infotexts = PNG texts."""
    info = json.loads(body["info"])
    diffs = []
    if info["all_seeds"] != [info["seed"] + i for i in range(len(info["all_seeds"]))]:
        diffs.append(f"info.all_seeds {info['all_seeds']} is not seed+i for seed {info['seed']}")
    if info["all_subseeds"] != [info["subseed"] + i for i in range(len(info["all_subseeds"]))]:
        diffs.append(f"info.all_subseeds {info['all_subseeds']} is not subseed+i for subseed {info['subseed']}")
    for i, (text, seed) in enumerate(zip(info["infotexts"], info["all_seeds"])):
        if f", Seed: {seed}, " not in text:
            diffs.append(f"info.infotexts[{i}] does not name seed {seed}")
    for i, image in enumerate(body["images"]):
        if decode_png(image).text.get("parameters") != info["infotexts"][i]:
            diffs.append(f"images[{i}] PNG parameters differ from info.infotexts")
    return diffs


# -- txt2img ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVED_TXT2IMG)
def test_txt2img_matches_recording(client, name):
    state = client.app.state.sdapi
    assert replay_txt2img(client, state, name) == []


@pytest.mark.parametrize("name", SERVED_TXT2IMG_HIRES)
def test_txt2img_seed_payload_with_hires_matches_recording(client, name):
    # Echo, info (first-pass width/height, Hires keys in extra_generation_params), infotexts (incl. "Clip skip: 2"
    # from override_settings, "Hires upscale", "Hires upscaler"), seeds, and the 128x128 hires image size.
    state = client.app.state.sdapi
    assert replay_txt2img(client, state, name) == []


@pytest.mark.parametrize("name", SERVED_TXT2IMG_SCRIPTS)
def test_txt2img_script_matches_recording(client, name):
    # One image (the legend grid, no parameters chunk, A1111's size), the echo with script_args, and info: cell
    # prompts and seeds, the grid's infotext (cell 0's plus the Script/X/Y fields) then every cell's, byte for byte.
    state = client.app.state.sdapi
    recorded = load_recording(name)
    recorded_hash = json.loads(recorded["response"]["info"])["sd_model_hash"]
    subs = substitutions_for(state)
    with selected(state, RECORDED_MODELS[recorded_hash][2]):
        r = client.post("/sdapi/v1/txt2img", json=our_request(recorded["request"], state))
    body = r.json()
    assert compare_to_recording(recorded, r.status_code, body, substitutions=subs,
                                noisy=noisy_for(recorded["request"])) == []
    info = json.loads(body["info"])
    w, h = info["width"], info["height"]
    grid = decode_png(body["images"][0])
    # 2x2 cells, a label column of 3/4 cell width, a label row as high as the 5 px font's tallest label + 2 * 2 px
    assert grid.size == (2 * w + w * 3 // 4, 2 * h + 5 + 2 * 2) and not grid.text


def test_every_top_level_txt2img_200_recording_is_classified():
    """A new recording must be replayed above or listed in NOT_SERVED_YET with a reason."""
    replayed = set(SERVED_TXT2IMG) | set(SERVED_TXT2IMG_HIRES) | set(SERVED_TXT2IMG_SCRIPTS) | set(REPLAYED_ELSEWHERE)
    unclassified = []
    for path in sorted(RECORDINGS.glob("*.json")):
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if recorded.get("path") == "/sdapi/v1/txt2img" and recorded.get("status") == 200:
            if path.name not in replayed and path.name not in NOT_SERVED_YET:
                unclassified.append(path.name)
    assert unclassified == []
    assert not replayed & set(NOT_SERVED_YET)


def test_fixed_seed_infotexts_and_info_string_are_byte_identical(client):
    """With a fixed seed nothing is masked in the infotexts: only the model name/hash are substituted. The raw
    ``info`` string (key order, separators) equals A1111's json.dumps output once the noisy values are ours."""
    state = client.app.state.sdapi
    recorded = load_recording("post-txt2img-sampler-name-field.json")
    with selected(state, "demo-sd15.safetensors") as info:
        body = client.post("/sdapi/v1/txt2img", json=recorded["request"]).json()

    def substituted(text: str) -> str:
        return text.replace("ae61658884", info.shorthash).replace("random-sd15", info.model_name)

    ours = json.loads(body["info"])
    recorded_info = json.loads(recorded["response"]["info"])
    assert ours["infotexts"] == [substituted(t) for t in recorded_info["infotexts"]]
    expected = substituted(recorded["response"]["info"])
    for key in ("subseed", "all_subseeds", "job_timestamp"):  # noisy: comparator.NOISY_REASONS
        expected = expected.replace(f'"{key}": {json.dumps(recorded_info[key])}', f'"{key}": {json.dumps(ours[key])}')
    assert body["info"] == expected


# -- listings -----------------------------------------------------------------------------------------------


def test_samplers_equal_recording(client):
    recorded = load_recording("get-samplers.json")
    r = client.get("/sdapi/v1/samplers")
    assert r.status_code == recorded["status"] == 200
    assert r.json() == recorded["response"]
    assert compare_to_recording(recorded, r.status_code, r.json(), substitutions={}, noisy=set()) == []


SD_MODEL_RECORDINGS = ["get-sd-models.json", "get-sd-models-hashed.json"]


def _allowed_types() -> dict[str, set[type]]:
    """Per key, the JSON types A1111 used in either sd-models recording (``hash`` is null before hashing)."""
    allowed: dict[str, set[type]] = {}
    for name in SD_MODEL_RECORDINGS:
        for item in load_recording(name)["response"]:
            for key, value in item.items():
                allowed.setdefault(key, set()).add(type(value))
    return allowed


@pytest.mark.parametrize("name", SD_MODEL_RECORDINGS)
def test_sd_models_items_have_recorded_keys_and_types(client, name):
    recorded = load_recording(name)
    r = client.get("/sdapi/v1/sd-models")
    assert r.status_code == recorded["status"] == 200
    items = r.json()
    assert isinstance(items, list) and items
    allowed = _allowed_types()
    recorded_keys = {frozenset(item) for item in recorded["response"]}
    assert len(recorded_keys) == 1
    for item in items:
        assert frozenset(item) in recorded_keys
        for key, value in item.items():
            assert type(value) in allowed[key], (key, value)


@pytest.mark.parametrize("demo_file", ["demo-sd15.safetensors", "demo-sd15-b.safetensors"])
def test_sd_models_title_and_hash_once_loaded(client, demo_file):
    """A loaded checkpoint is hashed: ``title`` is ``name [hash]``, ``hash`` is ``sha256[:10]``."""
    state = client.app.state.sdapi
    with selected(state, demo_file):
        items = client.get("/sdapi/v1/sd-models").json()
    (item,) = [i for i in items if Path(i["filename"]).name == demo_file]
    assert item["sha256"] == hashlib.sha256(Path(item["filename"]).read_bytes()).hexdigest()
    assert item["hash"] == item["sha256"][:10]
    assert item["title"] == f"{demo_file} [{item['hash']}]"
    assert re.fullmatch(r".+ \[[0-9a-f]{10}\]", item["title"])
    assert item["model_name"] == demo_file.rsplit(".", 1)[0]


def test_sd_models_hashed_equals_recording_after_substitution(client):
    """Both loaded once: every value equals A1111's after name/hash substitution (filename: shape only)."""
    state = client.app.state.sdapi
    subs = substitutions_for(state)  # hashes both, as loading both did in A1111
    recorded = load_recording("get-sd-models-hashed.json")
    r = client.get("/sdapi/v1/sd-models")
    order = [subs[item["model_name"]] for item in recorded["response"]]  # list order is not the contract here
    body = sorted(r.json(), key=lambda item: order.index(item["model_name"]))
    assert compare_to_recording(recorded, r.status_code, body, substitutions=subs, noisy=set()) == []


def test_sd_models_at_first_start_equals_recording(data_dir, fresh_data_dir, tmp_path):
    """First start with config.json selecting one model: only that one is hashed (title without [hash] else)."""
    from fastapi.testclient import TestClient

    from sdapi.app import create_app
    from sdapi.settings import Settings

    root = fresh_data_dir(data_dir)
    (root / "config.json").write_text(json.dumps({"sd_model_checkpoint": "demo-sd15.safetensors"}))
    settings = Settings(data_dir=root, cache_dir=tmp_path / "cache", num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        r = c.get("/sdapi/v1/sd-models")
        state = c.app.state.sdapi
        loaded = state.catalog.find("demo-sd15.safetensors")
        subs = {"ae61658884": loaded.shorthash, RECORDED_MODELS["ae61658884"][1]: loaded.sha256,
                "random-sd15_b": "demo-sd15-b", "random-sd15": "demo-sd15"}
    recorded = load_recording("get-sd-models.json")
    order = [subs[item["model_name"]] for item in recorded["response"]]
    body = sorted(r.json(), key=lambda item: order.index(item["model_name"]))
    assert compare_to_recording(recorded, r.status_code, body, substitutions=subs, noisy=set()) == []


def test_refresh_checkpoints_returns_null(client):
    recorded = load_recording("post-refresh-checkpoints.json")
    r = client.post("/sdapi/v1/refresh-checkpoints")
    assert r.status_code == recorded["status"] == 200
    assert r.json() is None and recorded["response"] is None
    assert compare_to_recording(recorded, r.status_code, r.json(), substitutions={}, noisy=set()) == []


# -- errors -------------------------------------------------------------------------------------------------


def _send(client, recorded: dict):
    """Send a recorded request as recorded: JSON bodies as JSON, raw-string bodies byte for byte."""
    request = recorded["request"]
    if request is None:
        return client.request(recorded["method"], recorded["path"])
    if isinstance(request, str):
        return client.request(recorded["method"], recorded["path"], content=request.encode("utf-8"),
                              headers={"content-type": "application/json"})
    return client.request(recorded["method"], recorded["path"], json=request)


@pytest.mark.parametrize("name", [
    "error-txt2img-unknown-sampler.json",
    "error-txt2img-bad-script-name.json",
    "error-txt2img-invalid-json.json",
    "error-txt2img-empty-body.json",
    "error-missing-endpoint.json",
    "error-get-on-post-endpoint.json",
])
def test_error_equals_recording(client, name):
    recorded = load_recording(name)
    r = _send(client, recorded)
    assert (r.status_code, r.json()) == (recorded["status"], recorded["response"])
    assert compare_to_recording(recorded, r.status_code, r.json(), substitutions={}, noisy=set()) == []


@pytest.mark.parametrize("name, field", [
    ("error-txt2img-width-negative.json", "width"),
    ("error-txt2img-width-huge.json", "width 65536 exceeds"),
])
def test_impossible_size_is_refused_early(client, name, field):
    """Deliberate difference (README 'Deliberate differences from A1111'): A1111 answers these with a 500
    from torch (after ~29 s for 65536²); sdapi refuses them with 422 ``InvalidRequest`` before allocating
    anything, in A1111's error envelope."""
    recorded = load_recording(name)
    assert recorded["status"] == 500
    r = _send(client, recorded)
    body = r.json()
    assert r.status_code == 422
    assert set(body) == set(recorded["response"]) == {"error", "detail", "body", "errors"}
    assert body["error"] == "InvalidRequest"
    assert body["detail"] == "" and body["body"] == ""
    assert isinstance(body["errors"], str) and body["errors"].startswith(field)


def test_options_unknown_key(client):
    recorded = load_recording("error-options-unknown-key.json")
    r = _send(client, recorded)
    assert (r.status_code, r.json()) == (recorded["status"], recorded["response"])


# -- the comparator itself (synthetic data, no generation) --------------------------------------------------

_TEXT = ("a cat\nSteps: 2, Seed: 5, Size: 8x8, Model hash: ae61658884, Model: random-sd15, "
         "Seed resize from: -1x-1, Hires upscale: 2.0")


def _png_b64(text: str | None, size=(8, 8)) -> str:
    import base64
    import io

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    if text is not None:
        meta.add_text("parameters", text)
    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, format="PNG", pnginfo=meta)
    return base64.b64encode(buf.getvalue()).decode()


def _synthetic(text=_TEXT, **info_changes):
    recorded = {"status": 200, "response": {
        "images": [{"_b64_truncated": "", "_b64_length": 0, "_decoded": {
            "format": "PNG", "size": [8, 8], "mode": "RGB", "bytes": 0, "png_text": {"parameters": _TEXT}}}],
        "parameters": {"cfg_scale": 7.0, "denoising_strength": 0, "seed": -1},
        "items": [{"filename": "/home/user/sd/models/random-sd15.safetensors"}],
        "info": json.dumps({"seed": 5, "all_seeds": [5], "infotexts": [_TEXT], "job_timestamp": "20261124131149"}),
    }}
    ours_text = text.replace("ae61658884", "0123456789").replace("random-sd15", "demo-sd15")
    info = {"seed": 5, "all_seeds": [5], "infotexts": [ours_text], "job_timestamp": "20270101000000", **info_changes}
    ours = {"images": [_png_b64(ours_text)], "parameters": {"cfg_scale": 7.0, "denoising_strength": 0, "seed": -1},
            "items": [{"filename": "/srv/data/models/Stable-diffusion/demo-sd15.safetensors"}],
            "info": json.dumps(info)}
    return recorded, ours


_SUBS = {"ae61658884": "0123456789", "random-sd15": "demo-sd15"}


def test_comparator_accepts_a_match_after_substitution_and_masking():
    recorded, ours = _synthetic(seed=6, all_seeds=[6], infotexts=[_TEXT.replace("Seed: 5", "Seed: 6").replace(
        "ae61658884", "0123456789").replace("random-sd15", "demo-sd15")])
    assert compare_to_recording(recorded, 200, ours, substitutions=_SUBS, noisy=set(ALWAYS_NOISY)) != []
    assert compare_to_recording(recorded, 200, ours, substitutions=_SUBS,
                                noisy=set(ALWAYS_NOISY | NOISY_IF_RANDOM_SEED)) == []


def test_comparator_reports_each_kind_of_difference():
    recorded, ours = _synthetic()
    noisy = set(ALWAYS_NOISY | NOISY_IF_RANDOM_SEED)
    assert compare_to_recording(recorded, 200, ours, substitutions=_SUBS, noisy=noisy) == []
    assert compare_to_recording(recorded, 200, ours, substitutions={}, noisy=noisy) != []  # model name/hash
    assert compare_to_recording(recorded, 500, ours, substitutions=_SUBS, noisy=noisy) == [
        "status: ours 500, A1111 200"]

    def diffs_after(change):
        _, mutated = _synthetic()
        change(mutated)
        return compare_to_recording(recorded, 200, mutated, substitutions=_SUBS, noisy=noisy)

    assert diffs_after(lambda b: b["parameters"].update(cfg_scale=7))[0].startswith("parameters.cfg_scale: type")
    assert diffs_after(lambda b: b["parameters"].update(denoising_strength=0.0))
    assert diffs_after(lambda b: b["parameters"].pop("seed"))
    assert diffs_after(lambda b: b["parameters"].update(extra=True))
    assert diffs_after(lambda b: b.update(images=["data:image/png;base64," + b["images"][0]]))
    assert diffs_after(lambda b: b.update(images=[_png_b64(None)]))
    assert diffs_after(lambda b: b["items"][0].update(filename="/srv/other.safetensors"))
    assert diffs_after(lambda b: b["items"][0].update(filename="demo-sd15.safetensors"))  # not absolute
    # "Seed" is masked, "Seed resize from" is not: keys are exact.
    other = _TEXT.replace("from: -1x-1", "from: 8x8").replace("ae61658884", "0123456789").replace(
        "random-sd15", "demo-sd15")
    assert diffs_after(lambda b: b.update(images=[_png_b64(other)]))
    assert diffs_after(lambda b: b.update(info=json.dumps({**json.loads(b["info"]), "infotexts": [other]})))


def test_comparator_skips_only_the_named_not_implemented_fields():
    without_hires = _TEXT.replace(", Hires upscale: 2.0", "")
    recorded, ours = _synthetic(text=without_hires)
    ours["images"] = [_png_b64(without_hires.replace("ae61658884", "0123456789").replace("random-sd15", "demo-sd15"),
                               size=(4, 4))]
    noisy = set(ALWAYS_NOISY)
    assert len(compare_to_recording(recorded, 200, ours, substitutions=_SUBS, noisy=noisy)) == 3
    assert compare_to_recording(recorded, 200, ours, substitutions=_SUBS, noisy=noisy,
                                not_implemented={"images[*].size", "infotext:Hires upscale"}) == []
