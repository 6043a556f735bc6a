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
