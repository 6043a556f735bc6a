"""The trainer's torch parts on the tiny demo model: LoRA modules, long captions, Min-SNR, Lion, checkpointing."""

from __future__ import annotations

import pytest
import torch

from sdapi.engine.demo_models import build_tiny_sd15_pipeline
from sdapi.engine.training.lion import Lion
from sdapi.engine.training.network import TrainableLora
from sdapi.engine.training.noise import make_noise, min_snr_weights
from sdapi.engine.training.text import CaptionEncoder, chunk_ids
from sdapi.engine.training.plan import NetworkSpec


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_sd15_pipeline(0)


def test_lora_starts_as_a_no_op_and_exports_kohya_tensors(pipe):
    network = TrainableLora(pipe.unet, pipe.text_encoder, NetworkSpec(dim=4, alpha=8))
    ids = torch.tensor([[49406, 320, 2368, 49407] + [49407] * 73])
    before = pipe.text_encoder(ids).last_hidden_state
    network.attach()
    network.attach()  # idempotent: one hook per target
    assert torch.equal(pipe.text_encoder(ids).last_hidden_state, before)  # up starts at zero
    with torch.no_grad():
        for lora in network.loras():
            lora.lora_up.weight.normal_()
    changed = pipe.text_encoder(ids).last_hidden_state
    network.detach()
    assert not torch.allclose(changed, before) and torch.equal(pipe.text_encoder(ids).last_hidden_state, before)
    tensors = network.kohya_state_dict(torch.float16)
    assert len(tensors) == 3 * len(network.loras()) and all(t.dtype == torch.float16 for t in tensors.values())
    assert float(tensors["lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha"]) == 8.0
    fresh = TrainableLora(pipe.unet, pipe.text_encoder, NetworkSpec(dim=4, alpha=8))
    assert fresh.load_kohya({k: v.float() for k, v in tensors.items()}) == len(network.loras())


def test_long_captions_are_chunked_like_kohya(pipe):
    ids = torch.arange(1000, 1227)
    ids[0], ids[-1] = 49406, 49407
    chunks = chunk_ids(ids, pad_id=49407, eos_id=49407)
    assert chunks.shape == (3, 77) and torch.all(chunks[:, 0] == 49406) and torch.all(chunks[:, -1] == 49407)
    assert torch.equal(chunks[1, 1:-1], ids[76:151])
    encoder = CaptionEncoder(pipe.tokenizer, pipe.text_encoder, clip_skip=2, max_token_length=225,
                             device=torch.device("cpu"))
    states = encoder.encode(["a cat, " * 60, "short"])
    assert states.shape[:2] == (2, 227)
    short = CaptionEncoder(pipe.tokenizer, pipe.text_encoder, None, None, torch.device("cpu")).encode(["short"])
    assert short.shape[1] == 77


def test_min_snr_weights_and_noise_offset():
    alphas = torch.linspace(0.99, 0.01, 1000)
    t = torch.tensor([0, 500, 999])
    snr = alphas[t] / (1 - alphas[t])
    assert torch.allclose(min_snr_weights(alphas, t, 5.0, False), torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert torch.allclose(min_snr_weights(alphas, t, 5.0, True), torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))
    latents = torch.zeros(2, 4, 8, 8)
    plain = make_noise(latents, torch.Generator().manual_seed(1), None, None, 0.3)
    offset = make_noise(latents, torch.Generator().manual_seed(1), 0.5, None, 0.3)
    shift = offset - plain
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift)) and shift.abs().sum() > 0
    pyramid = make_noise(latents, torch.Generator().manual_seed(1), None, 4, 0.3)
    assert pyramid.std().item() == pytest.approx(1.0, abs=1e-4)


def test_lion_update_is_a_signed_step():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    p.grad = torch.tensor([0.5, -3.0])
    Lion([p], lr=0.1, weight_decay=0.0).step()
    assert torch.allclose(p.detach(), torch.tensor([0.9, -1.9]))


def test_gradients_reach_the_lora_through_gradient_checkpointing(pipe):
    pipe.unet.enable_gradient_checkpointing()
    pipe.unet.train()
    network = TrainableLora(pipe.unet, pipe.text_encoder, NetworkSpec(dim=2, alpha=1, conv_dim=2, conv_alpha=1,
                                                                     train_text_encoder=False))
    network.attach()
    try:
        with torch.no_grad():
            for lora in network.loras():
                lora.lora_up.weight.normal_()
        cond = torch.randn(1, 77, pipe.unet.config.cross_attention_dim)
        out = pipe.unet(torch.randn(1, 4, 8, 8), torch.tensor([10]), cond).sample
        out.square().mean().backward()
        assert all(lora.lora_down.weight.grad is not None for lora in network.unet_loras)
        assert sum(float(lora.lora_down.weight.grad.abs().sum()) for lora in network.unet_loras) > 0
    finally:
        network.detach()
        pipe.unet.disable_gradient_checkpointing()
        pipe.unet.eval()


def test_real_sd15_module_counts_match_kohya():
    """kohya logs "Text Encoder: 72 modules, U-Net: 192 modules" for SD 1.5; LoCon adds the resnet/sampler convs."""
    import json
    from pathlib import Path

    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdapi.engine.training.network import TEXT_BLOCKS, UNET_BLOCKS, UNET_CONV_BLOCKS, find_targets

    configs = Path(__file__).resolve().parents[2] / "sdapi" / "configs" / "sd15"
    with torch.device("meta"):  # real shapes, no memory
        unet = UNet2DConditionModel.from_config(json.loads((configs / "unet" / "config.json").read_text()))
        text = CLIPTextModel(CLIPTextConfig(**json.loads((configs / "text_encoder" / "config.json").read_text())))
    assert len(find_targets(text, "lora_te", TEXT_BLOCKS, None, text_model_prefix=True)) == 72
    assert len(find_targets(unet, "lora_unet", UNET_BLOCKS, None)) == 192
    assert len(find_targets(unet, "lora_unet", UNET_BLOCKS + UNET_CONV_BLOCKS, 4)) == 278
