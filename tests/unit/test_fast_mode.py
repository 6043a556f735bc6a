"""Fast mode's per-device decision (the CUDA branch cannot run on the CI machine, so its choices are checked here)
and the fast callables' calling conventions, without compiling anything."""

from __future__ import annotations

import pytest
import torch

from sdapi.engine import batch_invariance
from sdapi.engine.fast_mode import FULL, REGIONAL, choose_fast_plan


def test_cuda_gets_fp16_whole_graphs_and_cuda_graphs():
    plan = choose_fast_plan("cuda", cpu_bf16=False, compile_scope=REGIONAL)
    assert (plan.autocast_dtype, plan.compile_scope, plan.cuda_graphs, plan.channels_last) == (
        torch.float16, FULL, True, True)
    assert (plan.precision, plan.compile_mode) == ("fp16", "reduce-overhead")


@pytest.mark.parametrize("cpu_bf16, dtype, precision", [(True, torch.bfloat16, "bf16"), (False, None, "fp32")])
def test_cpu_autocasts_to_bf16_only_where_it_is_native(cpu_bf16, dtype, precision):
    plan = choose_fast_plan("cpu", cpu_bf16=cpu_bf16)
    assert (plan.autocast_dtype, plan.precision, plan.cuda_graphs, plan.compile_mode) == (
        dtype, precision, False, None)
    assert plan.compile_scope == FULL
    assert choose_fast_plan("cpu", cpu_bf16, compile_scope=REGIONAL).compile_scope == REGIONAL


def test_an_unknown_compile_scope_is_refused():
    with pytest.raises(ValueError, match="compile scope"):
        choose_fast_plan("cpu", True, compile_scope="everything")


def test_invariance_off_makes_products_plain_inside_a_merged_batch_only_while_active():
    calls = []

    def product(x):
        calls.append(x.shape[0])
        return x * 2

    x = torch.arange(8.0).reshape(4, 2)
    groups = batch_invariance.RowGroups(((0, 1), (2, 3)), 4)
    with batch_invariance.row_groups(groups):
        batch_invariance.invariant_product(product, x, 2)
        assert calls == [2, 2]  # job by job
        with batch_invariance.invariance_off():
            out = batch_invariance.invariant_product(product, x, 2)
        assert calls == [2, 2, 4] and torch.equal(out, x * 2)
        batch_invariance.invariant_product(product, x, 2)
    assert calls == [2, 2, 4, 2, 2]


def _bound(module: torch.nn.Module, down: torch.Tensor, up: torch.Tensor, scale: float):
    from sdapi.engine.lora import BoundLayer, conv_delta, linear_delta
    from sdapi.engine.lora_file import LoraLayer

    layer = LoraLayer(down, up)
    delta = linear_delta(layer) if isinstance(module, torch.nn.Linear) else conv_delta(layer, module)
    return BoundLayer(module, delta, scale, layer)


@pytest.mark.parametrize("make, down_shape, up_shape, x_shape", [
    (lambda: torch.nn.Linear(6, 5), (3, 6), (5, 3), (4, 6)),
    (lambda: torch.nn.Conv2d(4, 5, 3, padding=1), (2, 4, 3, 3), (5, 2, 1, 1), (2, 4, 7, 7)),
])
def test_merged_lora_computes_what_the_hook_adds_and_restores_the_weights_exactly(make, down_shape, up_shape,
                                                                                  x_shape):
    from sdapi.engine.fast_lora import merged

    torch.manual_seed(0)
    module = make()
    bound = [_bound(module, torch.randn(down_shape), torch.randn(up_shape), 0.7),
             _bound(module, torch.randn(down_shape), torch.randn(up_shape), -0.3)]
    x = torch.randn(x_shape)
    before = module.weight.detach().clone()
    with torch.no_grad():
        hooked = module(x) + sum(layer.delta(x) * layer.scale for layer in bound)
        with merged(bound):
            assert not torch.equal(module.weight, before)
            torch.testing.assert_close(module(x), hooked, rtol=1e-4, atol=1e-4)
    assert torch.equal(module.weight, before)
