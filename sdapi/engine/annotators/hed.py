"""Soft edges (the extension's ``softedge_hed``, ``softedge_hedsafe`` and ``scribble_hed``): lllyasviel's Apache-2.0
HED network, ``ControlNetHED.pth``.

Five VGG-like blocks (2, 2, 3, 3, 3 convolutions; max pooling before every block but the first) each project their
features to one channel; the five projections, resized to the input, are averaged and passed through a sigmoid. The
network takes RGB values 0..255 minus a learnt per-channel offset (``norm``).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.weights import count_indexed, load_strict

BLOCKS = 5


class HedBlock(nn.Module):
    """Convolutions with ReLU, and a 1x1 projection of their output to one channel."""

    def __init__(self, channels_in: int, channels: int, layers: int):
        super().__init__()
        self.convs = nn.Sequential(*[nn.Conv2d(channels_in if i == 0 else channels, channels, 3, padding=1)
                                     for i in range(layers)])
        self.projection = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor, pool: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if pool:
            x = F.max_pool2d(x, kernel_size=2, stride=2)
        for conv in self.convs:
            x = F.relu(conv(x))
        return x, self.projection(x)


class HedNet(nn.Module):
    """The network, its widths and depths given per block."""

    def __init__(self, widths: list[int], layers: list[int]):
        super().__init__()
        self.norm = nn.Parameter(torch.zeros(1, 3, 1, 1))
        channels_in = [3] + widths[:-1]
        for index in range(BLOCKS):
            self.add_module(f"block{index + 1}", HedBlock(channels_in[index], widths[index], layers[index]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = x - self.norm
        projections = []
        for index in range(BLOCKS):
            h, projection = getattr(self, f"block{index + 1}")(h, pool=index > 0)
            projections.append(projection)
        return projections


def build_hed(state: dict[str, torch.Tensor]) -> HedNet:
    """The network a ``ControlNetHED.pth`` state dict describes, loaded."""
    widths = [int(state[f"block{i + 1}.convs.0.weight"].shape[0]) for i in range(BLOCKS)]
    layers = [count_indexed(state, f"block{i + 1}.convs.") for i in range(BLOCKS)]
    return load_strict(HedNet(widths, layers), state, "ControlNetHED.pth")


def safe_step(edge: np.ndarray, step: int = 2) -> np.ndarray:
    """Edges quantised to ``step`` levels (the "safe" variants: fewer faint lines for the ControlNet to trust)."""
    y = edge.astype(np.float32) * float(step + 1)
    return y.astype(np.int32).astype(np.float32) / float(step)


@torch.no_grad()
def run_hed(net: HedNet, image: np.ndarray, device: torch.device, safe: bool = False) -> np.ndarray:
    """The edge map (``H x W`` uint8) of an ``H x W x 3`` uint8 RGB image."""
    height, width = image.shape[:2]
    x = torch.from_numpy(image.copy()).float().to(device).permute(2, 0, 1)[None]
    projections = [p.float().cpu().numpy()[0, 0] for p in net.to(device)(x)]
    resized = np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in projections], axis=2)
    edge = 1 / (1 + np.exp(-np.mean(resized, axis=2).astype(np.float64)))
    if safe:
        edge = safe_step(edge)
    return (edge * 255.0).clip(0, 255).astype(np.uint8)
