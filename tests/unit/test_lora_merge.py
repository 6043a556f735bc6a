"""Merging LoRAs into the weights: A1111's arithmetic, exact restore (also after failures), the same outputs as
hooks, and the cost model's merge-or-hook choice."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import sdapi.engine.lora_merge as lora_merge
from sdapi.engine.demo_lora import write_demo_lora
from sdapi.engine.demo_models import build_tiny_sd15_pipeline
from sdapi.engine.lora import BoundLayer, LoraApplier, hooked
from sdapi.engine.lora_cache import LoraCache
from sdapi.engine.lora_cost import HOOKS, MERGE, SamplingWork, sampling_work, split_by_mode
from sdapi.engine.lora_file import LoraLayer, load_lora_network
from sdapi.engine.lora_merge import merged, weight_update
from sdapi.engine.lora_targets import resolution_level
from sdapi.engine.params import HiresParams, LoraActivation

torch.set_num_threads(2)
CPU, F32 = torch.device("cpu"), torch.float32


@pytest.fixture(scope="module")
def sd1():
    return build_tiny_sd15_pipeline(0)


@pytest.fixture(scope="module")
def demo_lora(tmp_path_factory):
    return write_demo_lora(tmp_path_factory.mktemp("demo-lora"))


def applier() -> LoraApplier:
    return LoraApplier(LoraCache(lambda path: load_lora_network(path, CPU, F32)))


def weights(pipe) -> dict[str, torch.Tensor]:
    return {f"{name}:{key}": value.clone() for name in ("unet", "text_encoder")
            for key, value in getattr(pipe, name).state_dict().items()}


def unchanged(pipe, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(value, before[key]) for key, value in weights(pipe).items())


def outputs(pipe):
    torch.manual_seed(5)
    sample, ids = torch.randn(2, 4, 8, 8), torch.tensor([[49406, 320, 1125, 49407]] * 2)
    with torch.no_grad():
        text = pipe.text_encoder(ids)[0]
        return text, pipe.unet(sample, 10, encoder_hidden_states=text).sample


# -- A1111's arithmetic -------------------------------------------------------------------------------------


def test_linear_update_is_up_times_down_times_multiplier_then_scale():
    torch.manual_seed(0)
    layer = LoraLayer(torch.randn(4, 6), torch.randn(5, 4), alpha=3.0)
    weight = torch.randn(5, 6)
    assert torch.equal(weight_update(layer, -0.7, weight), (layer.up @ layer.down) * -0.7 * (3.0 / 4))


def test_1x1_conv_update_has_the_kernel_shape():
    torch.manual_seed(1)
    layer = LoraLayer(torch.randn(4, 6, 1, 1), torch.randn(5, 4, 1, 1), alpha=None)
    update = weight_update(layer, 1.0, torch.zeros(5, 6, 1, 1))
    assert update.shape == (5, 6, 1, 1)
    assert torch.equal(update[:, :, 0, 0], layer.up[:, :, 0, 0] @ layer.down[:, :, 0, 0])


def test_locon_3x3_update_contracts_the_rank_per_kernel_position():
    torch.manual_seed(2)
    layer = LoraLayer(torch.randn(4, 3, 3, 3), torch.randn(8, 4, 1, 1), alpha=1.0)
    update = weight_update(layer, 0.5, torch.zeros(8, 3, 3, 3))
    expected = torch.einsum("or,rikl->oikl", layer.up[:, :, 0, 0], layer.down) * 0.5 * 0.25
    assert torch.allclose(update, expected, atol=1e-6)


def test_update_is_computed_in_the_weights_dtype():
    layer = LoraLayer(torch.randn(2, 4), torch.randn(3, 2), alpha=2.0)
    assert weight_update(layer, 1.0, torch.zeros(3, 4, dtype=torch.float64)).dtype == torch.float64


# -- merging a pipeline -------------------------------------------------------------------------------------


@pytest.mark.parametrize("multipliers", [(1.0, 1.0), (-0.8, 0.0), (0.0, 1.5), (0.6, -1.2)])
def test_merge_gives_the_hooks_outputs_and_restores_every_weight_exactly(sd1, demo_lora, multipliers):
    before, base = weights(sd1), outputs(sd1)
    activation = LoraActivation(str(demo_lora), "demo-lora", *multipliers)
    lora = applier()
    with lora.applied(sd1, [activation], mode=HOOKS):
        hooked_out = outputs(sd1)
    assert unchanged(sd1, before)
    with lora.applied(sd1, [activation], mode=MERGE) as bound:
        touched = {id(b.module.weight) for b in bound}
        merged_out = outputs(sd1)
        assert not any(m._forward_hooks for m in sd1.unet.modules())
    assert touched and unchanged(sd1, before)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(merged_out, hooked_out))
    assert not torch.equal(merged_out[1], base[1])  # either multiplier changes the noise prediction
    assert all(torch.equal(a, b) for a, b in zip(outputs(sd1), base))


def test_several_loras_on_one_layer_add_up(sd1, demo_lora, tmp_path):
    other = write_demo_lora(tmp_path, seed=1, name="other")
    before = weights(sd1)
    activations = [LoraActivation(str(demo_lora), "a", 0.5, 0.5), LoraActivation(str(other), "b", -1.0, 1.0)]
    lora = applier()
    with lora.applied(sd1, activations, mode=HOOKS):
        hooked_out = outputs(sd1)
    with lora.applied(sd1, activations, mode=MERGE):
        merged_out = outputs(sd1)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(merged_out, hooked_out))
    assert unchanged(sd1, before)


def test_an_exception_inside_the_job_restores_the_weights(sd1, demo_lora):
    before = weights(sd1)
    with pytest.raises(RuntimeError, match="interrupted"):
        with applier().applied(sd1, [LoraActivation(str(demo_lora), "demo-lora")], mode=MERGE):
            assert not unchanged(sd1, before)
            raise RuntimeError("interrupted")
    assert unchanged(sd1, before)


def test_out_of_memory_half_way_through_the_merge_restores_what_was_merged(sd1, demo_lora, monkeypatch):
    before, calls = weights(sd1), []
    real = lora_merge.weight_update

    def runs_out_at_the_tenth(layer, multiplier, weight):
        calls.append(1)
        if len(calls) == 10:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(layer, multiplier, weight)

    monkeypatch.setattr(lora_merge, "weight_update", runs_out_at_the_tenth)
    with pytest.raises(torch.OutOfMemoryError):
        with applier().applied(sd1, [LoraActivation(str(demo_lora), "demo-lora")], mode=MERGE):
            pytest.fail("the job must not run")
    assert len(calls) == 10 and unchanged(sd1, before)


def test_merged_leaves_the_parameter_objects_in_place():
    module = torch.nn.Linear(4, 3)
    parameter, storage = module.weight, module.weight.data_ptr()
    layer = BoundLayer(module, LoraLayer(torch.randn(2, 4), torch.randn(3, 2)), 1.0, "unet")
    with merged([layer, layer]):
        assert module.weight is parameter and module.weight.data_ptr() == storage
    assert module.weight is parameter and module.weight.data_ptr() == storage


# -- the cost model -----------------------------------------------------------------------------------------


def _bound(width: int, rank: int, component: str = "unet", level: int = 0, loras: int = 1) -> list[BoundLayer]:
    module = torch.nn.Linear(width, width, device="meta")
    layer = LoraLayer(torch.empty(rank, width, device="meta"), torch.empty(width, rank, device="meta"))
    return [BoundLayer(module, layer, 1.0, component, level) for _ in range(loras)]


def test_a_sampling_job_merges_the_demo_models_layers(sd1, demo_lora):
    lora = applier()
    bound = lora.bound_layers(sd1, [LoraActivation(str(demo_lora), "demo-lora")])
    to_merge, to_hook = split_by_mode(bound, SamplingWork(((8, 64),)))
    assert to_merge == bound and to_hook == []


def test_a_big_weight_seen_by_few_rows_is_hooked():
    text = _bound(768, 32, component="te")  # real SD 1.5 text encoder shapes: 2 calls of 77 tokens
    assert split_by_mode(text, SamplingWork(((20, 4096),))) == ([], text)
    deep = _bound(1280, 32, level=3)  # one step at 64x64 reaches the deepest level as 1 latent pixel
    assert split_by_mode(deep, SamplingWork(((1, 64),))) == ([], deep)
    assert split_by_mode(deep, SamplingWork(((20, 16384),))) == (deep, [])  # 20 steps at 1024x1024


def test_all_layers_of_a_module_go_one_way_in_order():
    small, deep = _bound(64, 4, loras=2), _bound(1280, 32, level=3)
    bound = [small[0], deep[0], small[1]]  # two LoRAs on the small layer, listed around the deep one
    work = SamplingWork(((8, 64),))
    assert split_by_mode(bound, work) == ([small[0], small[1]], deep)
    assert split_by_mode(bound, None) == (bound, [])
    assert split_by_mode(bound, work, MERGE) == (bound, [])
    assert split_by_mode(bound, work, HOOKS) == ([], bound)


def test_work_is_per_image_and_counts_the_hires_pass():
    hires = SimpleNamespace(steps=5, width=128, height=96)
    one = SimpleNamespace(steps=8, width=64, height=64, batch_size=1, hires=None)
    four = SimpleNamespace(steps=8, width=64, height=64, batch_size=4, hires=hires)
    assert sampling_work(one) == SamplingWork(((8, 64),))
    assert sampling_work(four) == SamplingWork(((8, 64), (5, 192)))
    assert "steps" in HiresParams.__dataclass_fields__  # the fields read above are the real ones


@pytest.mark.parametrize("path, level", [("down_blocks.0.attentions.0.proj_in", 0), ("down_blocks.2.resnets.0.conv1", 2),
                                         ("mid_block.attentions.0.proj_out", 3), ("up_blocks.0.resnets.0.conv1", 3),
                                         ("up_blocks.3.attentions.2.proj_out", 0), ("conv_in", 0)])
def test_resolution_level_of_sd_unet_paths(path, level):
    assert resolution_level(path, blocks=4) == level


def test_hooked_and_merged_compose_on_different_modules():
    torch.manual_seed(3)
    first, second = torch.nn.Linear(6, 6), torch.nn.Linear(6, 6)
    a = BoundLayer(first, LoraLayer(torch.randn(2, 6), torch.randn(6, 2), 2.0), 1.0, "unet")
    b = BoundLayer(second, LoraLayer(torch.randn(2, 6), torch.randn(6, 2), 2.0), 1.0, "unet")
    x = torch.randn(3, 6)
    with torch.no_grad(), merged([a]), hooked([b]):
        out = second(first(x))
    expected = F.linear(F.linear(x, first.weight + a.layer.up @ a.layer.down, first.bias),
                        second.weight + b.layer.up @ b.layer.down, second.bias)
    assert torch.allclose(out, expected, atol=1e-5)
