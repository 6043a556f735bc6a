"""Building the optimizer a request names (kohya's ``optimizer_type`` / ``optimizer_args``).

8-bit variants need bitsandbytes and CUDA; without them the job logs a warning and uses the 32-bit optimizer,
as the issue asks. ``ss_optimizer`` records what really ran, in kohya's ``module.Class(args)`` form.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable

import torch

from sdapi.engine.training.lion import Lion

log = logging.getLogger("sdapi")

EIGHT_BIT = {"AdamW8bit": ("AdamW8bit", "AdamW"), "PagedAdamW8bit": ("PagedAdamW8bit", "AdamW"),
             "Lion8bit": ("Lion8bit", "Lion")}


def _adafactor() -> type:
    from transformers.optimization import Adafactor

    return Adafactor


def _prodigy() -> type:
    from prodigyopt import Prodigy

    return Prodigy


def _dadapt_adam() -> type:
    from dadaptation import DAdaptAdam

    return DAdaptAdam


# canonical name → (class factory, default keyword arguments kohya uses)
OPTIMIZER_CLASSES: dict[str, tuple[Callable[[], type], dict[str, Any]]] = {
    "AdamW": (lambda: torch.optim.AdamW, {}),
    "Lion": (lambda: Lion, {}),
    "SGDNesterov": (lambda: torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "AdaFactor": (_adafactor, {"scale_parameter": False, "relative_step": False, "warmup_init": False}),
    "Prodigy": (_prodigy, {}),
    "DAdaptAdam": (_dadapt_adam, {}),
    "DAdaptation": (_dadapt_adam, {}),
}


def _eight_bit(name: str, device: torch.device, warn: Callable[[str], None]) -> tuple[type | None, str]:
    """The bitsandbytes class for an 8-bit name, or ``None`` and the 32-bit fallback's name."""
    bnb_name, fallback = EIGHT_BIT[name]
    if device.type == "cuda":
        try:
            bnb = importlib.import_module("bitsandbytes.optim")
            return getattr(bnb, bnb_name), name
        except (ImportError, AttributeError) as exc:
            warn(f"{name} needs bitsandbytes ({exc}); training with {fallback} instead")
    else:
        warn(f"{name} needs bitsandbytes on CUDA; training with {fallback} on {device.type} instead")
    return None, fallback


def resolve_class(name: str, device: torch.device, warn: Callable[[str], None]) -> tuple[type, dict[str, Any]]:
    """The optimizer class and its default arguments for a canonical name or dotted path."""
    if "." in name:
        module, _, cls = name.rpartition(".")
        return getattr(importlib.import_module(module), cls), {}
    if name in EIGHT_BIT:
        cls, name = _eight_bit(name, device, warn)
        if cls is not None:
            return cls, {}
    factory, defaults = OPTIMIZER_CLASSES[name]
    return factory(), dict(defaults)


def build_optimizer(name: str, groups: list[dict], lr: float, args: dict[str, Any], device: torch.device,
                    warn: Callable[[str], None]) -> tuple[torch.optim.Optimizer, str]:
    """Create the optimizer.

    Args:
        name: canonical kohya name or dotted class path (checked by validation).
        groups: parameter groups with their own ``lr``.
        lr: the default learning rate.
        args: ``optimizer_args`` keyword arguments.
        device: where training runs (8-bit optimizers need CUDA).
        warn: reports a fallback to the job's log.

    Returns:
        ``(optimizer, ss_optimizer text)``.

    Raises:
        TypeError: the class is not a torch optimizer, or rejects an argument.
    """
    cls, defaults = resolve_class(name, device, warn)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise TypeError(f"{name} is not a torch optimizer")
    kwargs = {**defaults, **args}
    optimizer = cls(groups, lr=lr, **kwargs)
    shown = ",".join(f"{k}={v}" for k, v in args.items())
    return optimizer, f"{cls.__module__}.{cls.__name__}" + (f"({shown})" if shown else "")
