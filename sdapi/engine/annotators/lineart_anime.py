"""Anime line art (the extension's ``lineart_anime``, ``netG.pth``): a pix2pix U-Net generator with 8 levels,
instance norm without affine parameters, and a tanh output.

The file's keys follow the original's nesting: each level is ``model.<i>`` inside the level around it, its down
convolution first, the inner level at index 1 (outermost) or 3, the up convolution after it. The input is resized
up to a multiple of 256 on each side (cubic), scaled to -1..1, and the output is resized back.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from sdapi.engine.annotators.weights import load_strict

LEVELS = 8
MULTIPLE = 256


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class UnetLevel(nn.Module):
    """One level: down, the inner level (if any), up; every level but the outermost concatenates its (activated)
    input to its output."""

    def __init__(self, outer: int, inner: int, sub: "UnetLevel | None", channels_in: int | None = None,
                 outermost: bool = False):
        super().__init__()
        self.outermost = outermost
        down = nn.Conv2d(channels_in or outer, inner, 4, stride=2, padding=1, bias=True)
        if outermost:
            layers = [down, sub, nn.ReLU(), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), nn.Tanh()]
        elif sub is None:
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU(), nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1),
                      _norm(outer)]
        else:
            layers = [nn.LeakyReLU(0.2), down, _norm(inner), sub, nn.ReLU(),
                      nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), _norm(outer)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        # The original's leaky ReLU works in place, so the skip connection carries the activated input.
        activated = self.model[0](x)
        return torch.cat([activated, self.model[1:](activated)], 1)


class AnimeUnet(nn.Module):
    """The U-Net with ``width`` channels at its outermost level."""

    def __init__(self, width: int, levels: int = LEVELS):
        super().__init__()
        level = UnetLevel(width * 8, width * 8, None)
        for _ in range(levels - 5):
            level = UnetLevel(width * 8, width * 8, level)
        for outer, inner in ((4, 8), (2, 4), (1, 2)):
            level = UnetLevel(width * outer, width * inner, level)
        self.model = UnetLevel(1, width, level, channels_in=3, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _depth(state: dict[str, torch.Tensor]) -> int:
    prefix, levels = "model.model.1.", 1
    while f"{prefix}model.1.weight" in state:
        levels += 1
        prefix += "model.3."
    return levels


def build_lineart_anime(state: dict[str, torch.Tensor]) -> AnimeUnet:
    """The U-Net a ``netG.pth`` state dict describes, loaded."""
    width = int(state["model.model.0.weight"].shape[0])
    return load_strict(AnimeUnet(width, _depth(state)), state, "netG.pth")


@torch.no_grad()
def run_lineart_anime(net: AnimeUnet, image: np.ndarray, device: torch.device) -> np.ndarray:
    """The U-Net's drawing (``H x W`` uint8, dark lines on white) of an ``H x W x 3`` uint8 RGB image."""
    height, width = image.shape[:2]
    padded_h = MULTIPLE * int(np.ceil(float(height) / MULTIPLE))
    padded_w = MULTIPLE * int(np.ceil(float(width) / MULTIPLE))
    resized = cv2.resize(image, (padded_w, padded_h), interpolation=cv2.INTER_CUBIC)
    x = torch.from_numpy(resized).float().to(device).permute(2, 0, 1)[None] / 127.5 - 1.0
    line = (net.to(device)(x)[0, 0] * 127.5 + 127.5).float().cpu().numpy()
    return cv2.resize(line, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
