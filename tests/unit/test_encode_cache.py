"""A prompt encoder reuses its output for the same prompts only while nothing it depends on changed (tiny CLIP)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sdapi.engine.conditioning import PromptEncoder
from sdapi.engine.demo_models import build_tiny_sd15_pipeline
from sdapi.engine.encode_cache import EncodeCache, weights_state


@pytest.fixture()
def encoder(monkeypatch) -> PromptEncoder:
    pipe = build_tiny_sd15_pipeline(7)
    encoder = PromptEncoder(pipe.tokenizer, pipe.text_encoder, torch.device("cpu"))
    encoder.runs = 0
    encode = encoder._encode_pooled

    def counted(*args, **kwargs):
        encoder.runs += 1
        return encode(*args, **kwargs)

    monkeypatch.setattr(encoder, "_encode_pooled", counted)
    return encoder


def test_the_same_prompts_are_encoded_once_and_give_the_same_tensor(encoder):
    first = encoder.encode(["a cat", "a dog"])
    again = encoder.encode(["a cat", "a dog"])
    assert encoder.runs == 1
    assert torch.equal(first, again)


def test_any_difference_in_the_request_encodes_again(encoder):
    encoder.encode(["a cat"])
    for kwargs in ({"texts": ["a dog"]}, {"texts": ["a cat"], "clip_skip": 2}, {"texts": ["a cat"], "emphasis": False},
                   {"texts": ["a cat"], "backtrack": 5}, {"texts": ["a cat"], "multiplicity": [2]}):
        encoder.encode(**kwargs)
    assert encoder.runs == 6


def test_a_weight_changed_in_place_and_restored_is_encoded_again(encoder):
    plain = encoder.encode(["a cat"])
    weight = encoder.text_encoder.text_model.encoder.layers[0].mlp.fc1.weight
    backup = weight.detach().clone()
    with torch.no_grad():
        weight.add_(0.5)  # a LoRA merged for a job
    merged = encoder.encode(["a cat"])
    with torch.no_grad():
        weight.copy_(backup)  # its exact restore
    restored = encoder.encode(["a cat"])
    assert encoder.runs == 3
    assert not torch.equal(merged, plain)
    assert torch.equal(restored, plain)


def test_nothing_is_reused_while_a_hook_sits_on_the_encoder(encoder):
    layer = encoder.text_encoder.text_model.encoder.layers[0].mlp.fc1
    handle = layer.register_forward_hook(lambda _m, _a, out: out * 2)
    try:
        hooked = [encoder.encode(["a cat"]) for _ in range(2)]
    finally:
        handle.remove()
    assert encoder.runs == 2
    assert torch.equal(hooked[0], hooked[1])
    assert not torch.equal(encoder.encode(["a cat"]), hooked[0])


def test_another_embeddings_database_encodes_again(encoder):
    encoder.encode(["a cat"])
    encoder.embeddings = SimpleNamespace(find_at=lambda ids, start: None)  # finds no name
    encoder.encode(["a cat"])
    encoder.encode(["a cat"])
    assert encoder.runs == 2


def test_callers_get_copies(encoder):
    first = encoder.encode(["a cat"])
    expected = first.clone()
    first.mul_(0)
    assert torch.equal(encoder.encode(["a cat"]), expected)


def test_the_cache_keeps_its_most_recent_entries():
    cache = EncodeCache(size=2)
    for key in ("a", "b", "c"):
        cache.put(key, None, (torch.zeros(1),))
    assert cache.get("a", None) is None
    assert cache.get("b", None) is not None and cache.get("c", None) is not None


def test_weights_state_moves_with_every_in_place_change():
    layer = torch.nn.Linear(2, 2)
    before = weights_state(layer)
    with torch.no_grad():
        layer.weight.mul_(1.0)
    assert weights_state(layer) == before + 1
