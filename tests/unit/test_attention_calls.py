"""Attention layers called without diffusers' per-call signature check compute exactly what diffusers' call does."""

from __future__ import annotations

import torch

from sdapi.engine.attention_calls import call_processors_directly
from sdapi.engine.demo_models import build_tiny_sd15_pipeline


def test_the_unet_output_is_bit_identical_and_every_attention_layer_changed():
    pipe = build_tiny_sd15_pipeline(3)
    x, t, context = torch.randn(2, 4, 8, 8), torch.tensor([10.0, 500.0]), torch.randn(2, 77, 32)
    with torch.no_grad():
        before = pipe.unet(x, t, encoder_hidden_states=context).sample
        changed = call_processors_directly(pipe.unet, pipe.vae)
        after = pipe.unet(x, t, encoder_hidden_states=context).sample
    attention = [m for m in pipe.unet.modules() if type(m).__name__ == "Attention"]
    assert changed >= len(attention) > 0
    assert torch.equal(before, after)


def test_extra_keyword_arguments_still_go_through_diffusers_own_forward(monkeypatch):
    pipe = build_tiny_sd15_pipeline(3)
    call_processors_directly(pipe.unet)
    layer = next(m for m in pipe.unet.modules() if type(m).__name__ == "Attention")
    seen = []
    original = type(layer).forward

    def spy(self, *args, **kwargs):
        seen.append(sorted(kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(layer), "forward", spy)
    hidden = torch.randn(1, 4, layer.to_q.in_features)
    with torch.no_grad():
        plain = layer(hidden)
        with_extra = layer(hidden, unused_by_the_processor=1)
    assert seen == [["unused_by_the_processor"]]
    assert torch.equal(plain, with_extra)
