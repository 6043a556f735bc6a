"""VAE files in the ldm and diffusers layouts, turned into the loaded ``AutoencoderKL``'s own keys, strictly."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sdapi.engine.demo_models import build_tiny_vae
from sdapi.engine.ldm_layout import vae_to_ldm
from sdapi.engine.vae_file import VaeMismatch, read_state_dict, to_model_layout


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build_tiny_vae()


def same(converted, vae):
    own = vae.state_dict()
    return converted.keys() == own.keys() and all(torch.equal(converted[k], own[k]) for k in own)


def test_a_whole_checkpoint_s_first_stage_model_with_what_a1111_ignores(vae, tmp_path):
    ldm = vae_to_ldm(vae.state_dict(), vae.config)  # first_stage_model.* keys, 1x1 attention convolutions
    torch.save({"state_dict": {**ldm, "loss.logvar": torch.zeros(()), "model_ema.decay": torch.ones(()),
                               "model.diffusion_model.x": torch.zeros(1)}}, tmp_path / "full.ckpt")
    assert same(to_model_layout(read_state_dict(tmp_path / "full.ckpt"), vae, "full.ckpt"), vae)


def test_diffusers_files_with_the_old_attention_names(vae):
    renames = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}
    old = {}
    for key, value in vae.state_dict().items():
        for new, before in renames.items():
            key = key.replace(new, before)
        old[key] = value
    assert same(to_model_layout(old, vae, "old.bin"), vae)


def test_missing_and_unknown_keys_are_named(vae):
    weights = dict(vae.state_dict())
    weights.pop("decoder.conv_out.bias")
    weights["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(VaeMismatch, match="missing: decoder.conv_out.bias; unknown keys: decoder.extra.weight"):
        to_model_layout(weights, vae, "bad.safetensors")


@pytest.mark.parametrize("content", [{"x": SimpleNamespace()}, b"not a pickle"])
def test_unsafe_or_unreadable_pickles_are_refused(tmp_path, content):
    path = tmp_path / "vae.pt"
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    with pytest.raises(VaeMismatch, match="weights_only"):
        read_state_dict(path)
