"""Line art (the extension's ``lineart_realistic`` with ``sk_model.pth`` and ``lineart_coarse`` with
``sk_model2.pth``): an image-to-sketch ResNet generator.

A 7x7 stem, two stride-2 downsamplings, residual blocks (reflection padding, instance norm), two transposed-conv
upsamplings and a 7x7 output with a sigmoid; it reads RGB in 0..1 and draws white lines on black after the caller
inverts it. The module indices inside each ``model<i>`` sequence are those of the original file.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sdapi.engine.annotators.weights import count_indexed, load_strict


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 convolutions with instance norm, added to the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _down(channels_in: int, channels_out: int) -> list[nn.Module]:
    return [nn.Conv2d(channels_in, channels_out, 3, stride=2, padding=1), nn.InstanceNorm2d(channels_out), nn.ReLU()]


def _up(channels_in: int, channels_out: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(channels_in, channels_out, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(channels_out), nn.ReLU()]


class LineartGenerator(nn.Module):
    """The generator with a stem of ``width`` channels and ``blocks`` residual blocks."""

    def __init__(self, width: int, blocks: int):
        super().__init__()
        self.model0 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, width, 7), nn.InstanceNorm2d(width), nn.ReLU())
        self.model1 = nn.Sequential(*_down(width, width * 2), *_down(width * 2, width * 4))
        self.model2 = nn.Sequential(*[ResidualBlock(width * 4) for _ in range(blocks)])
        self.model3 = nn.Sequential(*_up(width * 4, width * 2), *_up(width * 2, width))
        self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(width, 1, 7), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for part in (self.model0, self.model1, self.model2, self.model3, self.model4):
            x = part(x)
        return x


def build_lineart(state: dict[str, torch.Tensor], name: str) -> LineartGenerator:
    """The generator a ``sk_model.pth``/``sk_model2.pth`` state dict describes, loaded."""
    width = int(state["model0.1.weight"].shape[0])
    return load_strict(LineartGenerator(width, count_indexed(state, "model2.")), state, name)


@torch.no_grad()
def run_lineart(net: LineartGenerator, image: np.ndarray, device: torch.device) -> np.ndarray:
    """The generator's drawing (``H x W`` uint8, dark lines on white) of an ``H x W x 3`` uint8 RGB image."""
    x = torch.from_numpy(image).float().to(device).permute(2, 0, 1)[None] / 255.0
    line = net.to(device)(x)[0][0].float().cpu().numpy()
    return (line * 255.0).clip(0, 255).astype(np.uint8)
