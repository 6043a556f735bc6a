"""What fast mode does on a device: the decision, made once per engine from what the device offers.

Fast mode trades the default mode's exact pixels for speed:

* ``torch.compile`` of the UNet and the VAE decoder, either whole (``full``) or block by block (``regional``:
  the repeated resnet and transformer blocks, each kind compiled once and reused, which compiles faster);
* channels_last activations for the convolutions, and on a CPU PyTorch's native convolution kernel instead of
  oneDNN's for small fp32 maps, where oneDNN's fixed cost per call dominates;
* autocast to bf16 on CPUs with AVX512-BF16 or AMX (native bf16 dot products; without them bf16 is emulated and
  slower than fp32) for jobs big enough to gain from it (:func:`job_autocast`), to fp16 on CUDA;
* on CUDA, SDPA (or xformers when installed and asked for) and CUDA graphs, since every step of a job repeats
  the same shapes (``torch.compile``'s ``reduce-overhead`` mode captures and replays them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FULL, REGIONAL = "full", "regional"

# A model's calls autocast on a CPU only from this much work per call: (its first block width)^2 x the pixels it
# works on (latent pixels for a UNet, image pixels for a VAE decoder). Below it the casts cost more than the bf16
# products save. Measured on a 2-core Sapphire Rapids VM (AMX) with the compiled parity models (32 channels): UNet
# per CFG call, latent 8x8 fp32 3.7 ms / bf16 4.9 ms, 16x16 5.0 / 5.2 ms, 32x32 11.4 / 9.0 ms; VAE decode of a
# 64x64 image 4.3 / 3.3 ms; a 320-channel 3x3 convolution at 32x32 ran 6.6x faster in bf16.
CPU_AUTOCAST_MIN_WORK = 32 * 32 * 24 * 24
PRECISION_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}
# On a CPU a oneDNN convolution costs 50-80 us a call however small its input; PyTorch's native kernel is faster on
# small maps and slower on large ones. Measured (2 threads, 3x3, fp32, channels_last, batch 2): 32 channels at 8x8
# oneDNN 55 us / native 33 us, at 16x16 74 / 56 us, at 24x24 95 / 175 us; 64 channels at 8x8 81 / 70 us. The
# compiled parity UNet at a 8x8 latent took 2.4 ms a CFG call with native convolutions, 3.5 ms with oneDNN.
NATIVE_CONV_MAX_PIXELS = 16 * 16


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
        """The reduced precision big jobs run in: ``bf16``, ``fp16`` or ``fp32`` (none)."""
        return PRECISION_NAMES[self.autocast_dtype]

    @property
    def compile_mode(self) -> str | None:
        """``torch.compile``'s ``mode``: CUDA graphs come with ``reduce-overhead``."""
        return "reduce-overhead" if self.cuda_graphs else None

    @property
    def compile_kwargs(self) -> dict:
        """``torch.compile``'s ``mode``, or (``mode`` and ``options`` exclude each other) Inductor options that leave
        out the generated code's shape, stride and alignment checks after each kernel: debugging aids that cost
        4 % of a compiled parity-UNet call on a CPU (2.42 vs 2.33 ms)."""
        if self.compile_mode is not None:
            return {"mode": self.compile_mode}
        return {"options": {"size_asserts": False, "scalar_asserts": False, "alignment_asserts": False}}


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


def job_autocast(plan: FastPlan, width: int, pixels: int) -> torch.dtype | None:
    """The precision one model's calls autocast to in a fast job: the plan's, except on a CPU for calls too small
    to gain from it.

    Args:
        plan: the device's plan.
        width: the model's first block width (320 for an SD 1.x UNet, 128 for its VAE).
        pixels: what one call works on: latent pixels of the job's first pass (UNet), image pixels (VAE decoder).
    """
    if plan.device_type == "cpu" and width ** 2 * pixels < CPU_AUTOCAST_MIN_WORK:
        return None
    return plan.autocast_dtype


@dataclass(frozen=True)
class CallPlan:
    """How one model's calls run in one fast job.

    Args:
        autocast_dtype: the precision they autocast to (``None``: the model's own).
        onednn: convolutions through oneDNN (else PyTorch's native kernel, faster on small maps).
    """

    autocast_dtype: torch.dtype | None = None
    onednn: bool = True


def call_plan(plan: FastPlan, width: int, pixels: int) -> CallPlan:
    """How one model's calls run in a fast job (:func:`job_autocast`; native convolutions for small fp32 maps).

    Args:
        plan: the device's plan.
        width: the model's first block width.
        pixels: the largest map a call works on: latent pixels (UNet), image pixels (VAE decoder).
    """
    dtype = job_autocast(plan, width, pixels)
    native = plan.device_type == "cpu" and dtype is None and pixels <= NATIVE_CONV_MAX_PIXELS
    return CallPlan(dtype, onednn=not native)


def precision_label(unet: torch.dtype | None, vae: torch.dtype | None) -> str:
    """The infotext's name for a fast job's precisions: ``bf16`` when both models use it, else each named."""
    if unet is vae:
        return PRECISION_NAMES[unet]
    return f"UNet {PRECISION_NAMES[unet]} / VAE {PRECISION_NAMES[vae]}"
