"""Loaded ControlNets, least recently used dropped first, and a job's units made ready for each sampling pass.

The cache is the engine's own, keyed by file (and its modification time) and the UNet config the ControlNet was
shaped for: switching to another checkpoint of the same family keeps every loaded ControlNet (the extension
empties its cache on a checkpoint switch because it converts to the checkpoint's dtype; here the dtype is the
engine's and fixed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from sdapi.engine.controlnet_file import read_controlnet
from sdapi.engine.loaded_lru import LoadedLru, file_marker
from sdapi.engine.params import ControlNetParams
from sdapi.engine.sampling.control import ControlRun, ControlUnit

# The extension's ``control_net_model_cache_size`` default.
DEFAULT_CACHE_SIZE = 2
HIRES_ONLY, LOW_RES_ONLY = "High res only", "Low res only"


class ControlNetCache(LoadedLru):
    """An LRU of loaded ``ControlNetModel``s on one device.

    Args:
        device, dtype: where and in which precision they run (the UNet's).
        size: how many stay loaded.
    """

    def __init__(self, device: torch.device, dtype: torch.dtype, size: int = DEFAULT_CACHE_SIZE):
        super().__init__(size)
        self.device = device
        self.dtype = dtype

    def get(self, path: Path, unet_config: Mapping[str, Any]) -> Any:
        """The ControlNet in ``path`` shaped for ``unet_config`` (read once, then kept)."""
        key = (*file_marker(path), json.dumps(dict(unet_config), sort_keys=True, default=str))
        return self.fetch(key, lambda: read_controlnet(Path(path), unet_config, self.device, self.dtype))


def hint_tensor(image) -> torch.Tensor:
    """A control map as the ControlNet takes it: ``(1, 3, H, W)`` in ``[0, 1]`` (the extension's
    ``get_pytorch_control``)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


class JobControls:
    """A job's ControlNet units, loaded for its model, as each pass uses them.

    Args:
        units: the job's units.
        cache: the engine's ControlNet cache.
        unet_config: the job's UNet config (the ControlNets are shaped for it).
    """

    def __init__(self, units: list[ControlNetParams], cache: ControlNetCache, unet_config: Mapping[str, Any]):
        self.units = units
        self.models = [cache.get(unit.model, unet_config) for unit in units]

    def for_pass(self, hires: bool, width: int, height: int) -> ControlRun | None:
        """The units of the first pass or of the hires pass at ``width`` x ``height`` pixels (``None``: none)."""
        if not self.units:
            return None
        units = []
        for unit, model in zip(self.units, self.models):
            # The extension treats the pass as the hires one only when a map at another size was made for it.
            in_hires = hires and unit.hires_hint is not None
            if unit.hr_option == (LOW_RES_ONLY if in_hires else HIRES_ONLY):
                continue
            hint = hint_tensor(unit.hires_hint if in_hires else unit.hint)
            if hint.shape[2:] != (height, width):
                hint = torch.nn.functional.interpolate(hint, size=(height, width), mode="bilinear")
            units.append(ControlUnit(model, hint, unit.weight, unit.guidance_start, unit.guidance_end,
                                     unit.soft or (in_hires and unit.hires_soft), unit.cond_only))
        return ControlRun(units)
