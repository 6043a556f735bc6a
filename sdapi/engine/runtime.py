"""Device, dtype and attention choices, made once at start-up from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger("sdapi")


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision models run.

    Args:
        device: ``cuda`` or ``cpu``.
        dtype: fp16 on CUDA unless ``--no-half``/``--precision full``; fp32 on CPU.
        xformers: try xformers attention on each loaded pipeline.
    """

    device: torch.device
    dtype: torch.dtype
    xformers: bool = False


def choose_runtime(device: str = "auto", no_half: bool = False, precision: str = "autocast",
                   xformers: bool = False, num_threads: int | None = None) -> Runtime:
    """Resolve ``--device``/``--no-half``/``--precision``/``--xformers`` into a ``Runtime``."""
    if num_threads:
        torch.set_num_threads(num_threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was given but torch sees no CUDA device")
    half = device == "cuda" and not no_half and precision != "full"
    return Runtime(torch.device(device), torch.float16 if half else torch.float32, xformers and device == "cuda")


def enable_attention(pipe, runtime: Runtime) -> str:
    """Pick the attention kernel for a pipeline: xformers when asked for and working, else PyTorch SDPA."""
    if runtime.xformers:
        try:
            pipe.enable_xformers_memory_efficient_attention()
            return "xformers"
        except Exception as exc:  # noqa: BLE001 - any failure falls back to SDPA, which always works
            log.warning("xformers unavailable (%s); using PyTorch SDPA attention", exc)
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.vae.set_attn_processor(AttnProcessor2_0())
    return "sdpa"


def cuda_memory() -> dict:
    """A1111's ``/memory`` ``cuda`` object: device totals and the caching allocator's counters."""
    if not torch.cuda.is_available():
        return {"error": "unavailable"}
    try:
        free, total = torch.cuda.mem_get_info()
        stats = torch.cuda.memory_stats()
    except RuntimeError as exc:
        return {"error": str(exc)}

    def pair(name: str) -> dict:
        return {"current": stats.get(f"{name}_bytes.all.current", 0), "peak": stats.get(f"{name}_bytes.all.peak", 0)}

    return {
        "system": {"free": free, "used": total - free, "total": total},
        "active": pair("active"),
        "allocated": pair("allocated"),
        "reserved": pair("reserved"),
        "inactive": pair("inactive_split"),
        "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)},
    }


# Device memory one image's sampling needs per pixel (both guidance rows, fp16 activations with SDPA), measured
# loosely and rounded up: SD 1.5 at 512x512 peaks near 1.3 GB per image above its weights, SDXL at 1024x1024 near
# 5 GB. Too large only costs batching, too small an out-of-memory (which falls back to one job at a time).
BYTES_PER_PIXEL = 8192
# CPU memory is not the limit there; --max-batch is.
UNLIMITED = 1 << 20


def images_that_fit(pixels: int, device: torch.device) -> int:
    """How many images of ``pixels`` pixels fit in one sampling batch in the device's free memory."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return UNLIMITED
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, int(free * 0.8) // max(1, pixels * BYTES_PER_PIXEL))
