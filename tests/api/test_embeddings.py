"""Textual-inversion embeddings through HTTP: ``/sdapi/v1/embeddings``, ``/refresh-embeddings`` (later A1111), names
in prompts and negative prompts, emphasis on them, their places in the 75-token chunks, and ``TI hashes``.

The files go into the session's ``embeddings/`` folder for this module only. Images are compared by decoded pixels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdapi.engine.demo_embedding import write_demo_embedding
from sdapi.files import sha256_of_file
from sdapi.infotext import parse_generation_parameters
from tests.conftest import decode_png, txt2img
from tests.unit.embedding_helpers import seeded, write_a1111_pt, write_diffusers_bin, write_kohya, write_png_text

MODEL = {"sd_model_checkpoint": "demo-sd15.safetensors"}
FILLER = "cat"  # one token per word, no commas: the chunk arithmetic is plain


def image(client, prompt: str, **payload) -> np.ndarray:
    return np.asarray(decode_png(generate(client, prompt, **payload)["images"][0])).astype(int)


def generate(client, prompt: str, **payload) -> dict:
    return txt2img(client, **{"prompt": prompt, "seed": 21, "steps": 2, "override_settings": MODEL, **payload})


@pytest.fixture(scope="module")
def plain(client):
    """Images made before any embedding file exists."""
    client.post("/sdapi/v1/refresh-embeddings")
    return {prompt: image(client, prompt) for prompt in ("a cat", "a cat demo-embedding")}


@pytest.fixture(scope="module")
def embeddings(client, plain):
    """The demo embedding (2 vectors) and one file of each other layout; a 768-wide one that the demo model skips."""
    state = client.app.state.sdapi
    folder = state.settings.embeddings_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "more").mkdir(exist_ok=True)
    paths = [
        write_demo_embedding(state.settings.data_dir),
        write_a1111_pt(folder / "a1111-style.pt", seeded(3, 32, 1)),
        write_diffusers_bin(folder / "more" / "concept.bin", seeded(1, 32, 2)[0]),
        write_png_text(folder / "card.png", seeded(1, 32, 3), "png-style"),
        write_kohya(folder / "sd1-real-width.safetensors", seeded(1, 768, 4)),
    ]
    assert client.post("/sdapi/v1/refresh-embeddings").json() is None
    yield paths
    for path in paths:
        path.unlink()
    (folder / "more").rmdir()
    client.post("/sdapi/v1/refresh-embeddings")


def test_listing_has_each_file_and_skips_what_does_not_fit(client, embeddings):
    body = client.get("/sdapi/v1/embeddings").json()
    assert list(body["loaded"]) == ["a1111-style", "concept", "demo-embedding", "png-style"]
    assert body["loaded"]["a1111-style"] == {"step": 500, "sd_checkpoint": "abcdef1234",
                                             "sd_checkpoint_name": "demo-sd15", "shape": 32, "vectors": 3}
    assert body["loaded"]["demo-embedding"] == {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                                                "shape": 32, "vectors": 2}
    assert body["skipped"] == {"sd1-real-width": {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                                                  "shape": 768, "vectors": 1}}


def test_a_name_changes_the_image_and_without_it_nothing_changes(client, embeddings, plain):
    assert np.array_equal(image(client, "a cat"), plain["a cat"])  # files present, names absent: bit-identical
    with_name = image(client, "a cat demo-embedding")
    assert not np.array_equal(with_name, plain["a cat demo-embedding"])  # the name's own tokens gave this one
    for name in ("a1111-style", "concept", "png-style"):
        assert not np.array_equal(image(client, f"a cat {name}"), with_name)


def test_emphasis_weighs_the_embedding_like_any_token(client, embeddings):
    base = image(client, "a cat demo-embedding")
    assert np.array_equal(image(client, "a cat (demo-embedding:1.0)"), base)
    assert not np.array_equal(image(client, "a cat (demo-embedding:1.4)"), base)


def test_a_negative_prompt_uses_embeddings_and_ti_hashes_name_them(client, embeddings):
    body = generate(client, "a cat a1111-style", negative_prompt="demo-embedding")
    infotext = json.loads(body["info"])["infotexts"][0]
    demo, style = embeddings[0], embeddings[1]
    expected = f"a1111-style: {sha256_of_file(style)[:12]}, demo-embedding: {sha256_of_file(demo)[:12]}"
    assert infotext.endswith(f'TI hashes: "{expected}"')
    assert parse_generation_parameters(infotext)["TI hashes"] == expected
    png_info = client.post("/sdapi/v1/png-info", json={"image": body["images"][0]}).json()
    assert f'TI hashes: "{expected}"' in png_info["info"]
    plain_negative = image(client, "a cat a1111-style", negative_prompt="")
    assert not np.array_equal(np.asarray(decode_png(body["images"][0])).astype(int), plain_negative)


def test_ti_hashes_follow_their_option(client, embeddings):
    body = generate(client, "a cat demo-embedding", override_settings={
        **MODEL, "textual_inversion_add_hashes_to_infotext": False})
    assert "TI hashes" not in json.loads(body["info"])["infotexts"][0]


@pytest.mark.parametrize("before, same", [(74, True), (73, False)])
def test_an_embedding_crossing_the_chunk_end_moves_to_the_next_chunk(client, embeddings, before, same):
    """2 vectors after 74 tokens would end at place 76 of 75: A1111 starts a new chunk for them, which is what
    ``BREAK`` does; after 73 tokens they fit, and ``BREAK`` makes a different conditioning."""
    words = " ".join([FILLER] * before)
    moved = image(client, f"{words} demo-embedding")
    assert np.array_equal(moved, image(client, f"{words} BREAK demo-embedding")) is same


def test_refresh_sees_a_new_file(client, embeddings):
    folder = client.app.state.sdapi.settings.embeddings_path
    path = write_kohya(folder / "late.safetensors", seeded(1, 32, 9))
    try:
        assert "late" not in client.get("/sdapi/v1/embeddings").json()["loaded"]
        client.post("/sdapi/v1/refresh-embeddings")
        assert client.get("/sdapi/v1/embeddings").json()["loaded"]["late"]["vectors"] == 1
    finally:
        path.unlink()
        client.post("/sdapi/v1/refresh-embeddings")
