"""What fast mode does on a device: the decision, made once per engine from what the device offers.

Fast mode trades the default mode's exact pixels for speed:

* ``torch.compile`` of the UNet and the VAE decoder, either whole (``full``) or block by block (``regional``:
  the repeated resnet and transformer blocks, each kind compiled once and reused, which compiles faster);
* channels_last activations for the convolutions;
* autocast to bf16 on CPUs with AVX512-BF16 or AMX (native bf16 dot products; without them bf16 is emulated and
  slower than fp32), to fp16 on CUDA;
* on CUDA, SDPA (or xformers when installed and asked for) and CUDA graphs, since every step of a job repeats
  the same shapes (``torch.compile``'s ``reduce-overhead`` mode captures and replays them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FULL, REGIONAL = "full", "regional"


@dataclass(frozen=True)
class FastPlan:
    """How fast mode runs on one device.

    Args:
        device_type: ``cpu`` or ``cuda``.
        autocast_dtype: the autocast precision, or ``None`` to stay in the model's dtype.
        channels_last: feed the convolutions channels_last activations.
        compile_scope: ``full`` (one graph per model) or ``regional`` (one per repeated block kind).
        cuda_graphs: replay captured CUDA graphs (``torch.compile`` mode ``reduce-overhead``).
    """

    device_type: str
    autocast_dtype: torch.dtype | None
    channels_last: bool = True
    compile_scope: str = FULL
    cuda_graphs: bool = False

    @property
    def precision(self) -> str:
        """The name the infotext gives the precision: ``bf16``, ``fp16`` or ``fp32``."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.autocast_dtype, "fp32")

    @property
    def compile_mode(self) -> str | None:
        """``torch.compile``'s ``mode``: CUDA graphs come with ``reduce-overhead``."""
        return "reduce-overhead" if self.cuda_graphs else None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def choose_fast_plan(device_type: str, cpu_bf16: bool, compile_scope: str = FULL) -> FastPlan:
    """Fast mode's plan for a device.

    Args:
        device_type: ``cpu`` or ``cuda``.
        cpu_bf16: the CPU computes bf16 natively (:func:`cpu_has_native_bf16`); ignored on CUDA.
        compile_scope: ``full`` or ``regional``.

    Raises:
        ValueError: an unknown compile scope.
    """
    if compile_scope not in (FULL, REGIONAL):
        raise ValueError(f"compile scope must be {FULL!r} or {REGIONAL!r}, not {compile_scope!r}")
    if device_type == "cuda":
        # Whole-model graphs: CUDA graphs pay off when the whole step replays as one.
        return FastPlan("cuda", torch.float16, channels_last=True, compile_scope=FULL, cuda_graphs=True)
    return FastPlan(device_type, torch.bfloat16 if cpu_bf16 else None, channels_last=True,
                    compile_scope=compile_scope)
