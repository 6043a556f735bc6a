"""Replay A1111 v1.2.1's LoRA recordings: the response contract, and pixel parity of LoRA images.

* ``post-txt2img-lora.json`` (api-only mode, where v1.2.1 strips the tag but applies nothing) and
  ``webui-mode/post-txt2img-lora.json`` (the same request with the LoRA applied): everything but pixels must match
  once the recorded model and LoRA are substituted with the demo ones. sdapi applies the LoRA in both cases
  (README "Deliberate differences") and adds later A1111's ``Lora hashes`` field, which v1.2.1 does not write: that
  field is checked here, then removed before the comparison.
* ``a1111-parity`` cases ``*-lora`` (real A1111 v1.2.1 images of a tiny checkpoint with a kohya LoRA applied):
  our images must be within ±1 level per channel.
"""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sdapi.app import create_app
from sdapi.settings import Settings
from tests.conftest import SHARED, decode_png, load_recording
from tests.contract.comparator import compare_to_recording
from tests.contract.test_recordings import RECORDED_MODELS, noisy_for, selected, substitutions_for

RECORDED_LORA, DEMO_LORA = "test-lora", "demo-lora"
LATER_A1111_FIELDS = frozenset({"infotext:Lora hashes"})  # v1.3+: sdapi writes it, v1.2.1 did not
PARITY = SHARED / "fixtures" / "a1111-parity"


def _without_lora_hashes(body: dict) -> tuple[dict, str]:
    """Our body with ``Lora hashes`` taken out of ``info.extra_generation_params``, and its value."""
    body = copy.deepcopy(body)
    info = json.loads(body["info"])
    value = info["extra_generation_params"].pop("Lora hashes")
    body["info"] = json.dumps(info)
    return body, value


@pytest.mark.parametrize("name", ["post-txt2img-lora.json", "webui-mode/post-txt2img-lora.json"])
def test_txt2img_lora_matches_recording(client, name):
    state = client.app.state.sdapi
    recorded = load_recording(name)
    recorded_hash = json.loads(recorded["response"]["info"])["sd_model_hash"]
    subs = {**substitutions_for(state), RECORDED_LORA: DEMO_LORA}
    request = {**recorded["request"], "prompt": recorded["request"]["prompt"].replace(RECORDED_LORA, DEMO_LORA)}
    with selected(state, RECORDED_MODELS[recorded_hash][2]):
        r = client.post("/sdapi/v1/txt2img", json=request)
    body, hashes = _without_lora_hashes(r.json())
    expected = f"{DEMO_LORA}: {state.loras.shorthash(state.loras.find(DEMO_LORA))}"
    assert hashes == expected
    infotext = json.loads(body["info"])["infotexts"][0]
    assert infotext.endswith(f', Lora hashes: "{expected}"')
    assert decode_png(body["images"][0]).text["parameters"] == infotext
    assert compare_to_recording(recorded, r.status_code, body, substitutions=subs, noisy=noisy_for(request),
                                not_implemented=LATER_A1111_FIELDS) == []


# -- pixel parity against real A1111 images ----------------------------------------------------------------


@pytest.fixture(scope="module")
def parity_client(tmp_path_factory):
    """A server over the parity checkpoint and its LoRA (linked from the shared fixtures, not copied)."""
    if not (PARITY / "tiny-sd15.safetensors").is_file():
        pytest.skip("A1111 parity fixtures not available")
    root = tmp_path_factory.mktemp("parity-data")
    for source, target in ((PARITY / "tiny-sd15.safetensors", root / "models/Stable-diffusion/tiny-sd15.safetensors"),
                           (PARITY / "tiny-lora.safetensors", root / "models/Lora/tiny-lora.safetensors")):
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(source, target)
    settings = Settings(data_dir=root, cache_dir=tmp_path_factory.mktemp("parity-cache"), num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _rgb(b64: str) -> np.ndarray:
    return np.asarray(decode_png(b64).convert("RGB")).astype(int)


@pytest.mark.parametrize("case, without_lora", [
    ("euler-a-lora", "txt2img-sampler-euler-a"),
    ("dpmpp-2m-karras-lora", "txt2img-sampler-dpmpp-2m-karras"),
])
def test_lora_image_matches_a1111_pixels(parity_client, case, without_lora):
    recorded = json.loads((PARITY / "cases" / f"{case}.json").read_text(encoding="utf-8"))
    r = parity_client.post(recorded["path"], json=recorded["request"])
    assert r.status_code == 200
    ours, theirs = _rgb(r.json()["images"][0]), _rgb(recorded["response"]["images"][0])
    assert np.abs(ours - theirs).max() <= 1
    base = json.loads((PARITY / "cases" / f"{without_lora}.json").read_text(encoding="utf-8"))
    assert np.abs(ours - _rgb(base["response"]["images"][0])).mean() > 10  # the LoRA's effect is reproduced
    ours_info, their_info = json.loads(r.json()["info"]), json.loads(recorded["response"]["info"])
    assert ours_info["infotexts"][0].startswith(their_info["infotexts"][0] + ", Lora hashes: \"tiny-lora: ")
