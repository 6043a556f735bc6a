"""Fast mode's per-device decision (the CUDA branch cannot run on the CI machine, so its choices are checked here)
and the fast callables' calling conventions, without compiling anything."""

from __future__ import annotations

import pytest
import torch

from sdapi.engine import batch_invariance
from sdapi.engine.fast_mode import (
    FULL, REGIONAL, CallPlan, call_plan, choose_fast_plan, job_autocast, precision_label,
)


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


@pytest.mark.parametrize("device, cpu_bf16, width, latent, dtype", [
    ("cpu", True, 320, 8 * 8, torch.bfloat16),  # SD 1.x even at 64x64
    ("cpu", True, 32, 8 * 8, None),  # the parity UNet at 64x64: the casts cost more than they save
    ("cpu", True, 32, 64 * 64, torch.bfloat16),  # the parity VAE decoding 64x64
    ("cpu", True, 32, 16 * 16, None),
    ("cpu", True, 32, 24 * 24, torch.bfloat16),  # exactly the threshold
    ("cpu", True, 32, 32 * 32, torch.bfloat16),
    ("cpu", True, 16, 32 * 32, None),  # the demo UNet at 256x256
    ("cpu", False, 320, 64 * 64, None),  # no native bf16: never
    ("cuda", False, 16, 8 * 8, torch.float16),  # CUDA: always fp16
])
def test_a_job_autocasts_only_with_enough_work_per_call(device, cpu_bf16, width, latent, dtype):
    assert job_autocast(choose_fast_plan(device, cpu_bf16), width, latent) is dtype


@pytest.mark.parametrize("device, cpu_bf16, width, pixels, calls", [
    ("cpu", True, 32, 8 * 8, CallPlan(None, onednn=False)),  # the parity UNet at 64x64: fp32, native convs
    ("cpu", True, 32, 16 * 16, CallPlan(None, onednn=False)),
    ("cpu", True, 16, 24 * 24, CallPlan(None, onednn=True)),  # fp32, but a map where oneDNN is faster
    ("cpu", True, 32, 24 * 24, CallPlan(torch.bfloat16, onednn=True)),  # bf16 needs oneDNN
    ("cpu", True, 320, 8 * 8, CallPlan(torch.bfloat16, onednn=True)),  # SD 1.x at 64x64
    ("cpu", False, 320, 8 * 8, CallPlan(None, onednn=False)),
    ("cuda", False, 16, 8 * 8, CallPlan(torch.float16, onednn=True)),
])
def test_small_fp32_maps_use_the_native_convolution(device, cpu_bf16, width, pixels, calls):
    assert call_plan(choose_fast_plan(device, cpu_bf16), width, pixels) == calls


@pytest.mark.parametrize("unet, vae, label", [
    (torch.bfloat16, torch.bfloat16, "bf16"), (None, None, "fp32"), (torch.float16, torch.float16, "fp16"),
    (None, torch.bfloat16, "UNet fp32 / VAE bf16"),
])
def test_the_infotext_names_each_models_precision_when_they_differ(unet, vae, label):
    assert precision_label(unet, vae) == label


def test_cpu_compiles_without_inductors_runtime_checks_and_cuda_with_cuda_graphs():
    options = choose_fast_plan("cpu", True).compile_kwargs["options"]
    assert options == {"size_asserts": False, "scalar_asserts": False, "alignment_asserts": False}
    assert choose_fast_plan("cuda", False).compile_kwargs == {"mode": "reduce-overhead"}


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
