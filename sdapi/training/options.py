"""The kohya option vocabularies sdapi trains with: optimizers, lr schedulers, ``k=v`` argument lists.

Registries are data: a request names an entry by kohya's spelling (case-insensitive); unknown names are refused
before anything runs, so a job never fails an hour in on a typo.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass

from sdapi.training.errors import ConfigError


@dataclass(frozen=True)
class OptimizerEntry:
    """One optimizer kohya knows.

    Args:
        name: kohya's spelling.
        package: the import it needs (``None``: torch or sdapi's own).
    """

    name: str
    package: str | None = None


OPTIMIZERS = {entry.name.lower(): entry for entry in (
    OptimizerEntry("AdamW"),
    OptimizerEntry("AdamW8bit"),        # bitsandbytes on CUDA, else AdamW with a warning
    OptimizerEntry("PagedAdamW8bit"),   # the same fallback
    OptimizerEntry("Lion"),             # sdapi's own implementation (the Lion paper's update)
    OptimizerEntry("Lion8bit"),         # bitsandbytes on CUDA, else Lion
    OptimizerEntry("SGDNesterov"),
    OptimizerEntry("AdaFactor"),        # transformers' Adafactor
    OptimizerEntry("Prodigy", "prodigyopt"),
    OptimizerEntry("DAdaptAdam", "dadaptation"),
    OptimizerEntry("DAdaptation", "dadaptation"),
)}
# A dotted class path (kohya's "any optimizer") is imported only from these packages.
DOTTED_PACKAGES = ("torch.optim", "bitsandbytes", "prodigyopt", "dadaptation", "lion_pytorch", "pytorch_optimizer",
                   "transformers.optimization")
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")


def parse_kv_args(items: list[str], field: str) -> dict[str, object]:
    """kohya's ``["k=v", ...]`` lists; values are Python literals when they parse (``0.9,0.999`` is a tuple).

    Raises:
        ConfigError: an item without ``=``.
    """
    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(field, f"{item!r} is not 'key=value'")
        try:
            parsed[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed[key.strip()] = value.strip()
    return parsed


def check_optimizer(name: str) -> str:
    """The canonical optimizer name (or the dotted path) after checking its package is installed.

    Raises:
        ConfigError: unknown, not allowed, or its package missing.
    """
    if "." in name:
        if not name.startswith(tuple(p + "." for p in DOTTED_PACKAGES)):
            allowed = ", ".join(DOTTED_PACKAGES)
            raise ConfigError("optimizer_type", f"{name}: dotted optimizer paths must be in {allowed}")
        package = name.split(".")[0]
        if importlib.util.find_spec(package) is None:
            raise ConfigError("optimizer_type", f"{name} needs the {package} package, which is not installed")
        return name
    entry = OPTIMIZERS.get(name.lower())
    if entry is None:
        raise ConfigError("optimizer_type", f"unknown optimizer {name!r}; use one of "
                                            f"{', '.join(e.name for e in OPTIMIZERS.values())}")
    if entry.package and importlib.util.find_spec(entry.package) is None:
        raise ConfigError("optimizer_type", f"{entry.name} needs the {entry.package} package "
                                            f"(pip install {entry.package})")
    return entry.name


def default_optimizer(cuda: bool) -> tuple[str, str]:
    """The optimizer of a request that names none: lora-scripts' AdamW8bit where it can run (bitsandbytes on
    CUDA), else AdamW, so a default never needs a fallback.

    Args:
        cuda: whether the job trains on a CUDA device.

    Returns:
        ``(name, the job-log line saying what was chosen and why)``.
    """
    if cuda and importlib.util.find_spec("bitsandbytes") is not None:
        return "AdamW8bit", "optimizer_type not set: AdamW8bit (bitsandbytes on CUDA)"
    return "AdamW", "optimizer_type not set: AdamW (AdamW8bit needs bitsandbytes and CUDA)"


def check_scheduler(name: str) -> str:
    """The lr scheduler name, checked."""
    if name not in LR_SCHEDULERS:
        raise ConfigError("lr_scheduler", f"unknown lr_scheduler {name!r}; use one of {', '.join(LR_SCHEDULERS)}")
    return name


def warmup_steps(value: float, total_steps: int) -> int:
    """kohya's ``lr_warmup_steps``: a float below 1 is a ratio of the total steps, else a step count."""
    if 0 < value < 1:
        return int(value * total_steps)
    return int(value)
