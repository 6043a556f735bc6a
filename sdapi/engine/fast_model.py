"""A loaded model as fast mode runs it: the same modules and weights, called compiled, channels_last, autocast.

Nothing here changes what the default mode computes: the compiled graphs wrap the modules without replacing
them (a regional block's eager ``forward`` still runs unless fast mode is active), weights keep their layout
(only the activations are channels_last), and autocast is entered only around fast calls, in the precision each
job chose. The weights are graph
inputs, not constants, so a LoRA merged into them for a job (:mod:`sdapi.engine.lora_merge`: a fast job merges
every layer) reuses the compiled code.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import torch

from sdapi.engine.batch_invariance import invariance_off
from sdapi.engine.fast_mode import FULL, CallPlan, FastPlan, call_plan
from sdapi.engine.model import LoadedModel
from sdapi.engine.vae_io import vae_dtype

# Each regional block kind is one code object that every instance of it shares; instances of another width or
# input size each add an entry, and an SD UNet has a few dozen of them.
RECOMPILE_LIMIT = 256

_active = False


@contextlib.contextmanager
def _fast_calls(plan: FastPlan, calls: CallPlan) -> Iterator[None]:
    """The context every fast call runs in: regional blocks compiled, plain products, the job's autocast and
    convolution kernel."""
    global _active
    previous, _active = _active, True
    dtype = calls.autocast_dtype
    autocast = torch.autocast(plan.device_type, dtype=dtype, enabled=dtype is not None)
    try:
        with invariance_off(), autocast, _onednn(calls.onednn):
            yield
    finally:
        _active = previous


@contextlib.contextmanager
def _onednn(enabled: bool) -> Iterator[None]:
    """oneDNN kernels on or off inside the block (a process-wide switch, read as each convolution dispatches;
    only the job worker runs models, one call at a time)."""
    previous = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(enabled)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(previous)


class _RegionForward:
    """A block's ``forward``: compiled while fast mode calls, the original otherwise."""

    def __init__(self, eager: Callable, compiled: Callable):
        self.eager = eager
        self.compiled = compiled

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return (self.compiled if _active else self.eager)(*args, **kwargs)


def regional_block_types() -> tuple[type, ...]:
    """The repeated blocks of SD UNets and VAEs that regional compilation compiles."""
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    return ResnetBlock2D, Transformer2DModel


def compile_regions(module: torch.nn.Module, plan: FastPlan) -> int:
    """Give each repeated block of ``module`` a compiled ``forward`` for fast calls.

    Returns:
        How many blocks got one.
    """
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, RECOMPILE_LIMIT)
    torch._dynamo.config.accumulated_cache_size_limit = max(torch._dynamo.config.accumulated_cache_size_limit,
                                                            RECOMPILE_LIMIT)
    blocks = [m for m in module.modules() if isinstance(m, regional_block_types())]
    for block in blocks:
        eager = block.forward
        compiled = torch.compile(eager, dynamic=False, **plan.compile_kwargs)
        block.forward = _RegionForward(eager, compiled)
    return len(blocks)


def compiled_callable(module: torch.nn.Module, call: Callable, plan: FastPlan) -> Callable:
    """``call`` (a method of ``module``) as fast mode runs it: compiled whole, or eager over compiled blocks."""
    if plan.compile_scope == FULL:
        return torch.compile(call, dynamic=False, **plan.compile_kwargs)
    compile_regions(module, plan)
    return call


def _begin_replay(plan: FastPlan) -> None:
    """Tell CUDA graph trees a new call begins: its callers have copied the previous outputs (to float32)."""
    if plan.cuda_graphs:
        torch.compiler.cudagraph_mark_step_begin()


def _layout(x: torch.Tensor, plan: FastPlan) -> torch.Tensor:
    return x.to(memory_format=torch.channels_last) if plan.channels_last and x.dim() == 4 else x


class FastUnet:
    """The UNet called the fast way; the same signature as the module's ``__call__``.

    Args:
        unet: the loaded UNet (its weights and hooks are shared with the default mode).
        plan: the device's fast-mode plan.
        calls: how this job's calls run (autocast, convolution kernel).
    """

    def __init__(self, unet: torch.nn.Module, plan: FastPlan, calls: CallPlan = CallPlan(),
                 call: Callable | None = None):
        self.module = unet
        self.config = unet.config
        self.plan = plan
        self.calls = calls
        self._call = call or compiled_callable(unet, unet.__call__, plan)

    def for_job(self, calls: CallPlan) -> "FastUnet":
        """The same compiled UNet, its calls run as ``calls`` says."""
        return FastUnet(self.module, self.plan, calls, self._call)

    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor, **kwargs: Any) -> Any:
        _begin_replay(self.plan)
        with _fast_calls(self.plan, self.calls):
            return self._call(_layout(sample, self.plan), timestep, **kwargs)


class FastVae:
    """The VAE with a fast ``decode``; encoding stays the default mode's (it runs once per img2img job).

    Args:
        vae: the loaded ``AutoencoderKL``.
        plan: the device's fast-mode plan.
        calls: how this job's decodes run (autocast, convolution kernel).
    """

    def __init__(self, vae: torch.nn.Module, plan: FastPlan, calls: CallPlan = CallPlan(),
                 decode: Callable | None = None):
        self.module = vae
        self.config = vae.config
        self.dtype = vae_dtype(vae)
        self.encode = vae.encode
        self.plan = plan
        self.calls = calls
        self._decode = decode or compiled_callable(vae.decoder, vae.decode, plan)

    def for_job(self, calls: CallPlan) -> "FastVae":
        """The same compiled decoder, its calls run as ``calls`` says."""
        return FastVae(self.module, self.plan, calls, self._decode)

    def decode(self, z: torch.Tensor) -> Any:
        _begin_replay(self.plan)
        with _fast_calls(self.plan, self.calls):
            return self._decode(_layout(z, self.plan))


@dataclass
class FastModel(LoadedModel):
    """A loaded model whose ``unet`` and ``vae`` are their fast-mode callables (built by :func:`fast_model`).

    Args:
        fast_unet, fast_vae: the fast callables over ``pipe.unet`` and ``pipe.vae``.
    """

    fast_unet: FastUnet | None = field(default=None)
    fast_vae: FastVae | None = field(default=None)

    @property
    def unet(self):
        return self.fast_unet

    @property
    def vae(self):
        return self.fast_vae

    def for_job(self, unet: CallPlan, vae: CallPlan) -> "FastModel":
        """The same compiled model for one job, its UNet and VAE calls run as these say (:func:`job_calls`)."""
        return replace(self, fast_unet=self.fast_unet.for_job(unet), fast_vae=self.fast_vae.for_job(vae))


def fast_model(model: LoadedModel, plan: FastPlan) -> FastModel:
    """``model`` as fast mode runs it (compilation itself happens on the first call)."""
    return FastModel(pipe=model.pipe, encoder=model.encoder, device=model.device, dtype=model.dtype,
                     fast_unet=FastUnet(model.pipe.unet, plan), fast_vae=FastVae(model.pipe.vae, plan))


def job_calls(model: LoadedModel, plan: FastPlan, width: int, height: int) -> tuple[CallPlan, CallPlan]:
    """How a fast job of this first-pass size runs its UNet's and its VAE decoder's calls (:func:`call_plan`)."""
    scale = model.pipe.vae_scale_factor
    unet = call_plan(plan, model.pipe.unet.config.block_out_channels[0], (width // scale) * (height // scale))
    vae = call_plan(plan, model.pipe.vae.config.block_out_channels[0], width * height)
    return unet, vae
