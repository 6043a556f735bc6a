"""``POST /sdapi/v1/interrogate``: ``deepdanbooru`` backed by the WD14 tagger, ``clip`` by a local BLIP folder."""

from __future__ import annotations

import base64
import io

import pytest

from tests.api.dataset_fixtures import (built_blip, built_tagger, no_caption_models, tiny_blip,  # noqa: F401
                                        tiny_tagger)
from tests.unit.dataset_helpers import BLIP_VOCAB, solid


def b64(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


RED = b64(solid((255, 0, 0)))


@pytest.fixture()
def deepbooru_options(client, state):
    keys = ("deepbooru_use_spaces", "deepbooru_sort_alpha", "deepbooru_escape", "interrogate_deepbooru_score_threshold")
    before = {key: state.options.get(key) for key in keys}
    yield
    client.post("/sdapi/v1/options", json=before)


def test_deepdanbooru_tags_follow_a1111s_options(client, tiny_tagger, deepbooru_options):
    r = client.post("/sdapi/v1/interrogate", json={"image": RED, "model": "deepdanbooru"})
    assert r.status_code == 200
    assert r.json() == {"caption": "ganyu_\\(genshin_impact\\), long_hair, solo"}
    client.post("/sdapi/v1/options", json={"deepbooru_use_spaces": True, "deepbooru_sort_alpha": False,
                                           "deepbooru_escape": False, "interrogate_deepbooru_score_threshold": 0.35})
    r = client.post("/sdapi/v1/interrogate", json={"image": "data:image/png;base64," + RED, "model": "deepdanbooru"})
    assert r.json() == {"caption": "solo, long hair, ganyu (genshin impact), blue eyes, ^_^"}


def test_clip_is_a_blip_caption(client, tiny_blip):
    r = client.post("/sdapi/v1/interrogate", json={"image": RED})  # model defaults to clip
    assert r.status_code == 200
    words = r.json()["caption"].split()
    assert words and set(words) <= set(BLIP_VOCAB)
    again = client.post("/sdapi/v1/interrogate", json={"image": RED, "model": "clip"}).json()["caption"]
    assert again == r.json()["caption"]  # greedy decoding: deterministic


def test_without_models_the_answer_says_so(client, no_caption_models):
    r = client.post("/sdapi/v1/interrogate", json={"image": RED, "model": "deepdanbooru"})
    assert r.status_code == 422
    assert r.json()["error"] == "HTTPException" and "No WD14 tagger is installed" in r.json()["detail"]
    r = client.post("/sdapi/v1/interrogate", json={"image": RED, "model": "clip"})
    assert r.status_code == 422 and "No BLIP captioning model is installed" in r.json()["detail"]


def test_unknown_model_and_bad_image_as_a1111(client):
    r = client.post("/sdapi/v1/interrogate", json={"image": RED, "model": "wd14"})
    assert r.status_code == 404
    assert r.json() == {"error": "HTTPException", "detail": "Model not found", "body": "", "errors": ""}
    r = client.post("/sdapi/v1/interrogate", json={"image": "not base64!", "model": "clip"})
    assert r.status_code == 500 and r.json()["detail"] == "Invalid encoded image"
