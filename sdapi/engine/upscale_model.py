"""Model upscalers (ESRGAN, Real-ESRGAN, SwinIR files): loading and running them the way A1111's ESRGAN does.

The networks sdapi builds itself (:mod:`sdapi.engine.sr_arch`) come first; any other architecture is loaded
through spandrel when it is installed. Images run tile by tile (A1111's ``ESRGAN_tile``/``ESRGAN_tile_overlap``
options; tiles overlapping by a linear ramp), in BGR ``[0, 1]`` as A1111 feeds them, truncated back to 8 bits.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdapi.engine.errors import UnsupportedUpscaler
from sdapi.engine.sr_arch import build_network
from sdapi.engine.upscalers import Tiling

_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or pickled (``weights_only``) weights file, unwrapped."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in _WRAPPER_KEYS:
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict):
        raise UnsupportedUpscaler(f"{path.name} holds no state dict")
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def _load_with_spandrel(path: Path) -> torch.nn.Module:
    try:
        import spandrel
    except ImportError as exc:  # not installed, or installed without a working torchvision
        raise UnsupportedUpscaler(f"{path.name}: not an ESRGAN/Real-ESRGAN model, and spandrel is not "
                                  f"available to load other architectures ({exc})") from exc
    return spandrel.ModelLoader().load_from_file(str(path)).model.eval()


@functools.lru_cache(maxsize=4)
def load_network(path: Path, mtime: float) -> torch.nn.Module:
    """The network in ``path`` (cached per file version; ``mtime`` is part of the key).

    Raises:
        UnsupportedUpscaler: a file no loader here understands.
    """
    try:
        return build_network(read_state_dict(path))
    except UnsupportedUpscaler:
        return _load_with_spandrel(path)


@torch.no_grad()
def _run(net: torch.nn.Module, tile: Image.Image, device: torch.device) -> Image.Image:
    """One tile through the network: RGB→BGR ``[0, 1]``, clamp, truncate to uint8, back to RGB."""
    x = np.ascontiguousarray(np.transpose(np.array(tile.convert("RGB"))[:, :, ::-1], (2, 0, 1))) / 255
    x = torch.from_numpy(x).float().unsqueeze(0).to(device)
    out = net.to(device)(x).squeeze(0).float().cpu().clamp_(0, 1).numpy()
    out = (255.0 * np.moveaxis(out, 0, 2)).astype(np.uint8)[:, :, ::-1]
    return Image.fromarray(np.ascontiguousarray(out), "RGB")


def _positions(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis (A1111's ``split_grid``): evenly spread, the last flush with the end.

    An image smaller than a tile gets one tile ending at its edge (a negative origin: PIL pads with black).
    """
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1) if count > 1 else 0
    origins = []
    for i in range(count):
        origin = int(i * step)
        origins.append(length - tile if origin + tile >= length else origin)
    return origins


def _ramp(length: int, overlap: int, horizontal: bool) -> Image.Image:
    """The 0→255 blending mask over an overlap (``combine_grid``'s ``make_mask_image``)."""
    ramp = (np.arange(overlap, dtype=np.float32) * 255 / overlap).astype(np.uint8)
    array = np.tile(ramp[None, :], (length, 1)) if horizontal else np.tile(ramp[:, None], (1, length))
    return Image.fromarray(array, "L")


def upscale_tiled(net: torch.nn.Module, image: Image.Image, tiling: Tiling, device: torch.device) -> Image.Image:
    """Run ``net`` over ``image`` tile by tile and stitch the results (A1111's ``esrgan_upscale``)."""
    if tiling.size <= 0:
        return _run(net, image, device)
    size, overlap = tiling.size, tiling.overlap
    rows = []
    scale = 1
    for y in _positions(image.height, size, overlap):
        row = []
        for x in _positions(image.width, size, overlap):
            out = _run(net, image.crop((x, y, x + size, y + size)), device)
            scale = out.width // size
            row.append((x * scale, out))
        rows.append((y * scale, row))
    width, height, tile, lap = image.width * scale, image.height * scale, size * scale, overlap * scale
    result = Image.new("RGB", (width, height))
    for y, row in rows:
        line = Image.new("RGB", (width, tile))
        for x, out in row:
            if x == 0:
                line.paste(out, (0, 0))
                continue
            line.paste(out.crop((0, 0, lap, tile)), (x, 0), mask=_ramp(tile, lap, horizontal=True))
            line.paste(out.crop((lap, 0, tile, tile)), (x + lap, 0))
        if y == 0:
            result.paste(line, (0, 0))
            continue
        result.paste(line.crop((0, 0, width, lap)), (0, y), mask=_ramp(width, lap, horizontal=False))
        result.paste(line.crop((0, lap, width, tile)), (0, y + lap))
    return result


def clear_network_cache() -> None:
    """Forget every loaded upscaler network (``unload_all``)."""
    load_network.cache_clear()


def run_model_file(path: Path, image: Image.Image, tiling: Tiling, device: torch.device) -> Image.Image:
    """One pass of the model in ``path`` over ``image`` (its native scale)."""
    path = Path(path)
    net = load_network(path, path.stat().st_mtime)
    return upscale_tiled(net, image, tiling, device)


def model_runner(device: torch.device, tiling: Tiling = Tiling()):
    """A ``sdapi.engine.upscalers.ModelRunner``: one pass of an upscaler row's model file on ``device``."""

    def run(spec, image: Image.Image) -> Image.Image:
        return run_model_file(spec.model_path, image, tiling, device)

    return run
