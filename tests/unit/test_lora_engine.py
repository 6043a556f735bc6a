"""LoRA in the engine: kohya name → module for SD1/SD2 layouts, LoCon and alpha maths, the file cache, and the
guarantee that applying LoRAs never changes the base weights."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from sdapi.engine.demo_lora import write_demo_lora
from sdapi.engine.demo_models import build_tiny_sd15_pipeline
from sdapi.engine.lora import LoraApplier, bind, hooked
from sdapi.engine.lora_cache import LoraCache
from sdapi.engine.lora_file import LoraLayer, load_lora_network
from sdapi.engine.lora_targets import LoraTarget, target_table, text_encoder_names
from sdapi.engine.params import LoraActivation
from tests.unit.lora_helpers import lora_tensors, write_torch_lora

torch.set_num_threads(2)
CPU, F32 = torch.device("cpu"), torch.float32


def load(path):
    return load_lora_network(path, CPU, F32)


def applier(**cache_kwargs) -> LoraApplier:
    return LoraApplier(LoraCache(load, **cache_kwargs))


@pytest.fixture(scope="module")
def sd1():
    return build_tiny_sd15_pipeline(0)


@pytest.fixture(scope="module")
def demo_lora(tmp_path_factory):
    return write_demo_lora(tmp_path_factory.mktemp("demo-lora"))


@pytest.fixture(scope="module")
def sd2():
    """SD-2.x topology: linear ``proj_in``/``proj_out`` and an OpenCLIP-sized (gelu) CLIPTextModel."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        unet = UNet2DConditionModel(
            sample_size=8, layers_per_block=2, block_out_channels=(16, 32), norm_num_groups=4,
            cross_attention_dim=48, attention_head_dim=(2, 4), use_linear_projection=True,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
        te = CLIPTextModel(CLIPTextConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                          num_attention_heads=4, vocab_size=1000, hidden_act="gelu"))
    return SimpleNamespace(unet=unet.eval(), text_encoder=te.eval())


# -- key mapping --------------------------------------------------------------------------------------------


def test_sd1_kohya_names_map_to_diffusers_modules(sd1):
    table = target_table(sd1)
    unet, te = sd1.unet, sd1.text_encoder.text_model
    block = unet.down_blocks[0].attentions[0]
    expected = {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": block.transformer_blocks[0].attn1.to_q,
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_out_0":
            block.transformer_blocks[0].attn2.to_out[0],
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_0_proj":
            block.transformer_blocks[0].ff.net[0].proj,
        "lora_unet_down_blocks_0_attentions_0_proj_in": block.proj_in,  # a 1x1 Conv2d in SD1
        "lora_unet_mid_block_attentions_0_proj_out": unet.mid_block.attentions[0].proj_out,
        "lora_unet_down_blocks_0_resnets_0_conv1": unet.down_blocks[0].resnets[0].conv1,  # LoCon 3x3
        "lora_unet_down_blocks_0_downsamplers_0_conv": unet.down_blocks[0].downsamplers[0].conv,
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj": te.encoder.layers[0].self_attn.q_proj,
        "lora_te_text_model_encoder_layers_2_mlp_fc2": te.encoder.layers[2].mlp.fc2,
        "lora_te1_text_model_encoder_layers_1_self_attn_out_proj": te.encoder.layers[1].self_attn.out_proj,
        # The same layers under their original (ldm/SGM) names.
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q": block.transformer_blocks[0].attn1.to_q,
        "lora_unet_input_blocks_1_0_in_layers_2": unet.down_blocks[0].resnets[0].conv1,
        "lora_unet_input_blocks_3_0_op": unet.down_blocks[0].downsamplers[0].conv,
        "lora_unet_middle_block_1_proj_out": unet.mid_block.attentions[0].proj_out,
        "lora_unet_output_blocks_3_1_proj_in": unet.up_blocks[1].attentions[0].proj_in,
    }
    for name, module in expected.items():
        assert table[name].module is module, name
    assert table["lora_te_text_model_encoder_layers_0_self_attn_q_proj"].component == "te"
    assert table["lora_unet_down_blocks_0_resnets_0_conv1"].component == "unet"


def test_sd2_layout_linear_projections_and_text_encoder(sd2):
    table = target_table(sd2)
    proj_in = sd2.unet.down_blocks[0].attentions[0].proj_in
    assert isinstance(proj_in, torch.nn.Linear)
    assert table["lora_unet_down_blocks_0_attentions_0_proj_in"].module is proj_in
    fc1 = sd2.text_encoder.text_model.encoder.layers[1].mlp.fc1
    assert table["lora_te_text_model_encoder_layers_1_mlp_fc1"].module is fc1
    # SD2 kohya files store 2-D proj weights; SD1-style 4-D 1x1 ones fit a Linear too.
    activation = LoraActivation("x", "x", 1.0, 1.0)
    for down, up in (((4, 16), (16, 4)), ((4, 16, 1, 1), (16, 4, 1, 1))):
        layer = LoraLayer(torch.randn(down), torch.randn(up), 4.0)
        network = SimpleNamespace(layers={"lora_unet_down_blocks_0_attentions_0_proj_in": layer})
        (bound,) = bind(network, activation, table)
        x = torch.randn(2, 5, 16)
        assert torch.allclose(bound.delta(x), x @ layer.down.flatten(1).T @ layer.up.flatten(1).T, atol=1e-5)


def test_text_encoder_names_without_the_text_model_wrapper():
    """transformers >= 5.6 flattens CLIPTextModel; kohya names keep ``text_model_``."""
    q = torch.nn.Linear(4, 4)
    names = text_encoder_names("lora_te_", {"encoder.layers.0.self_attn.q_proj": q})
    assert names["lora_te_text_model_encoder_layers_0_self_attn_q_proj"] is q


def test_every_demo_lora_layer_fits_the_demo_model(sd1, demo_lora):
    network = load(demo_lora)
    table = target_table(sd1)
    assert set(network.layers) <= set(table)
    bound = bind(network, LoraActivation("demo", "demo"), table)
    assert len(bound) == len(network.layers) > 100
    kinds = {type(b.module).__name__ for b in bound}
    assert kinds == {"Linear", "Conv2d"}
    convs = [b.module for b in bound if isinstance(b.module, torch.nn.Conv2d)]
    assert any(m.kernel_size == (3, 3) and m.stride == (2, 2) for m in convs)  # LoCon on the strided downsampler


# -- the maths ----------------------------------------------------------------------------------------------


def test_alpha_scale():
    down, up = torch.zeros(4, 3), torch.zeros(5, 4)
    assert LoraLayer(down, up, 2.0).scale == 0.5
    assert LoraLayer(down, up, None).scale == 1.0
    assert LoraLayer(down, up, 0.0).scale == 1.0  # A1111: no (or zero) alpha means scale 1


def _apply(module, layer, name, multiplier, x, component="unet"):
    table = {name: LoraTarget(module, component)}
    bound = bind(SimpleNamespace(layers={name: layer}), LoraActivation("t", "t", multiplier, multiplier), table)
    with hooked(bound), torch.no_grad():
        return module(x)


def test_linear_equals_a1111_merged_weight():
    torch.manual_seed(0)
    linear = torch.nn.Linear(6, 5)
    layer = LoraLayer(torch.randn(4, 6), torch.randn(5, 4), alpha=2.0)
    x = torch.randn(3, 6)
    merged = linear.weight + (layer.up @ layer.down) * 0.7 * (2.0 / 4)
    out = _apply(linear, layer, "l", 0.7, x)
    assert torch.allclose(out, F.linear(x, merged, linear.bias), atol=1e-5)


def test_locon_3x3_down_1x1_up_on_a_strided_conv_equals_a1111_merged_kernel():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
    layer = LoraLayer(torch.randn(4, 3, 3, 3), torch.randn(8, 4, 1, 1), alpha=1.0)
    x = torch.randn(2, 3, 9, 9)
    # A1111 v1.2.1 lora_calc_updown for a 3x3 LoCon layer.
    updown = F.conv2d(layer.down.permute(1, 0, 2, 3), layer.up).permute(1, 0, 2, 3) * -0.5 * (1.0 / 4)
    expected = F.conv2d(x, conv.weight + updown, conv.bias, stride=2, padding=1)
    assert torch.allclose(_apply(conv, layer, "c", -0.5, x), expected, atol=1e-5)


def test_doubling_alpha_doubles_the_change():
    torch.manual_seed(2)
    linear = torch.nn.Linear(6, 5)
    x = torch.randn(3, 6)
    down, up = torch.randn(4, 6), torch.randn(5, 4)
    base = linear(x).detach()
    one = _apply(linear, LoraLayer(down, up, 1.0), "l", 1.0, x) - base
    two = _apply(linear, LoraLayer(down, up, 2.0), "l", 1.0, x) - base
    assert torch.allclose(two, 2 * one, atol=1e-5)


def test_multiplier_zero_binds_nothing_and_te_unet_split(sd1, demo_lora):
    network = load(demo_lora)
    table = target_table(sd1)
    assert bind(network, LoraActivation("d", "d", 0.0, 0.0), table) == []
    te_only = bind(network, LoraActivation("d", "d", 1.0, 0.0), table)
    unet_only = bind(network, LoraActivation("d", "d", 0.0, 1.0), table)
    assert te_only and all(table_component(table, b.module) == "te" for b in te_only)
    assert unet_only and all(table_component(table, b.module) == "unet" for b in unet_only)
    assert len(te_only) + len(unet_only) == len(network.layers)


def table_component(table, module) -> str:
    return next(t.component for t in table.values() if t.module is module)


def test_layers_that_do_not_fit_are_skipped_with_a_log_line(caplog):
    linear = torch.nn.Linear(6, 5)
    layers = {"fits": LoraLayer(torch.randn(2, 6), torch.randn(5, 2)),
              "wrong": LoraLayer(torch.randn(2, 7), torch.randn(5, 2)),
              "unknown": LoraLayer(torch.randn(2, 6), torch.randn(5, 2))}
    table = {n: LoraTarget(linear, "unet") for n in ("fits", "wrong")}
    with caplog.at_level(logging.WARNING, logger="sdapi"):
        bound = bind(SimpleNamespace(layers=layers), LoraActivation("t", "t"), table)
    assert len(bound) == 1
    assert "1 layers do not fit" in caplog.text and "1 layers match nothing" in caplog.text


# -- applying to a pipeline ---------------------------------------------------------------------------------


def _outputs(pipe):
    torch.manual_seed(5)
    sample, ids = torch.randn(1, 4, 8, 8), torch.tensor([[49406, 320, 1125, 49407]])
    with torch.no_grad():
        text = pipe.text_encoder(ids)[0]
        eps = pipe.unet(sample, 10, encoder_hidden_states=text).sample
    return text, eps


def test_applied_changes_outputs_then_leaves_the_pipeline_exactly_as_it_was(sd1, demo_lora):
    path = demo_lora
    weights = {k: v.clone() for k, v in sd1.unet.state_dict().items()}
    base_text, base_eps = _outputs(sd1)
    lora = applier()
    with lora.applied(sd1, [LoraActivation(str(path), "demo-lora", 1.0, 1.0)]) as bound:
        assert bound
        text, eps = _outputs(sd1)
    assert not torch.equal(text, base_text) and not torch.equal(eps, base_eps)
    after_text, after_eps = _outputs(sd1)
    assert torch.equal(after_text, base_text) and torch.equal(after_eps, base_eps)
    assert all(torch.equal(v, weights[k]) for k, v in sd1.unet.state_dict().items())
    assert not any(m._forward_hooks for m in sd1.unet.modules())
    assert not any(m._forward_hooks for m in sd1.text_encoder.modules())


def test_hooks_are_removed_when_the_job_fails(sd1, demo_lora):
    path = demo_lora
    with pytest.raises(RuntimeError, match="boom"):
        with applier().applied(sd1, [LoraActivation(str(path), "demo-lora")]):
            raise RuntimeError("boom")
    assert not any(m._forward_hooks for m in sd1.unet.modules())


def test_loha_file_is_skipped_with_a_log_line_never_a_crash(sd1, tmp_path, caplog):
    path = write_torch_lora(tmp_path / "loha.safetensors", {
        "lora_unet_mid_block_attentions_0_proj_in.hada_w1_a": torch.randn(4, 4),
        "lora_unet_mid_block_attentions_0_proj_in.hada_w1_b": torch.randn(4, 32),
    })
    base = _outputs(sd1)
    with caplog.at_level(logging.ERROR, logger="sdapi"):
        with applier().applied(sd1, [LoraActivation(str(path), "loha")]) as bound:
            assert bound == []
            assert all(torch.equal(a, b) for a, b in zip(_outputs(sd1), base))
    assert "Lora loha" in caplog.text and "a LoHa network (hada_* tensors)" in caplog.text


def test_missing_file_is_logged_and_skipped(sd1, tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="sdapi"):
        with applier().applied(sd1, [LoraActivation(str(tmp_path / "gone.safetensors"), "gone")]) as bound:
            assert bound == []
    assert "could not load" in caplog.text


# -- the cache ----------------------------------------------------------------------------------------------


def test_cache_reads_each_file_once_and_again_after_it_changes(tmp_path):
    path = write_torch_lora(tmp_path / "a.safetensors", lora_tensors({"lora_unet_x": ((2, 4), (4, 2))}))
    cache = LoraCache(load)
    first = cache.get(path)
    assert cache.get(path) is first and cache.loads == 1
    write_torch_lora(path, lora_tensors({"lora_unet_x": ((2, 4), (4, 2))}, seed=1))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = cache.get(path)
    assert second is not first and cache.loads == 2 and len(cache.cached()) == 1


def test_cache_is_lru_and_bounded_by_bytes_and_count(tmp_path):
    paths = [write_torch_lora(tmp_path / f"{i}.safetensors", lora_tensors({"lora_unet_x": ((2, 100), (100, 2))}))
             for i in range(4)]
    size = load(paths[0]).nbytes  # 2 * 2 * 100 float32
    cache = LoraCache(load, max_bytes=2 * size)
    for p in paths[:2]:
        cache.get(p)
    cache.get(paths[0])  # 0 is now the most recently used
    cache.get(paths[2])  # evicts 1
    assert cache.cached() == [str(paths[0].resolve()), str(paths[2].resolve())]
    assert cache.nbytes <= 2 * size
    counted = LoraCache(load, max_items=1)
    counted.get(paths[0]), counted.get(paths[3])
    assert counted.cached() == [str(paths[3].resolve())]
    huge = LoraCache(load, max_bytes=1)  # a file larger than the budget is still kept while it is the newest
    huge.get(paths[0])
    assert len(huge.cached()) == 1
