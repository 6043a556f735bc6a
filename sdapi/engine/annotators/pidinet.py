"""Soft edges from PiDiNet (the extension's ``softedge_pidinet``, ``softedge_pidisafe``, ``scribble_pidinet`` and
``t2ia_sketch_pidi``), ``table5_pidinet.pth``: the "carv4" network with 60 channels, dilation module and spatial
attention, as the extension builds it.

Its depthwise 3x3 convolutions are pixel-difference convolutions, cycling central (``cd``), angular (``ad``), radial
(``rd``) and vanilla (``cv``) through the 16 layers; the file holds their raw 3x3 weights and each is applied the
way the original computes it, so results match to the bit. Four side outputs (1, 1/2, 1/4, 1/8 scale) are reduced
to one channel each, resized to the input and fused by a 1x1 classifier; the network reads BGR in 0..1.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.hed import safe_step
from sdapi.engine.annotators.weights import load_strict

# The "carv4" layout: layer i's difference type.
LAYER_OPS = ("cd", "ad", "rd", "cv") * 4
# Angular difference: each weight minus its clockwise neighbour's (flattened 3x3 positions).
CLOCKWISE = [3, 0, 1, 6, 4, 2, 7, 8, 5]
# Radial difference: the 3x3 weights (positions 1 to 8 of the flattened kernel, as the original takes them) spread
# on a 5x5 kernel's outer ring, minus the same on its inner ring.
RADIAL_OUTER = [0, 2, 4, 10, 14, 20, 22, 24]
RADIAL_INNER = [6, 7, 8, 11, 13, 16, 17, 18]


def difference_conv(op: str, x: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
    """A 3x3 pixel-difference convolution (stride 1, dilation 1, "same" size, no bias)."""
    if op == "cv":
        return F.conv2d(x, weight, padding=1, groups=groups)
    if op == "cd":
        centre = F.conv2d(x, weight.sum(dim=[2, 3], keepdim=True), groups=groups)
        return F.conv2d(x, weight, padding=1, groups=groups) - centre
    flat = weight.reshape(weight.shape[0], weight.shape[1], -1)
    if op == "ad":
        return F.conv2d(x, (flat - flat[:, :, CLOCKWISE]).reshape(weight.shape), padding=1, groups=groups)
    ring = torch.zeros(weight.shape[0], weight.shape[1], 25, dtype=weight.dtype, device=weight.device)
    ring[:, :, RADIAL_OUTER] = flat[:, :, 1:]
    ring[:, :, RADIAL_INNER] = -flat[:, :, 1:]
    return F.conv2d(x, ring.reshape(weight.shape[0], weight.shape[1], 5, 5), padding=2, groups=groups)


class DifferenceConv(nn.Module):
    """Holds a pixel-difference convolution's raw 3x3 weights."""

    def __init__(self, op: str, channels_in: int, channels_out: int, groups: int = 1):
        super().__init__()
        self.op, self.groups = op, groups
        self.weight = nn.Parameter(torch.zeros(channels_out, channels_in // groups, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return difference_conv(self.op, x, self.weight, self.groups)


class PdcBlock(nn.Module):
    """Depthwise difference convolution, ReLU, pointwise convolution, plus the input (pooled and projected in a
    block that halves the size)."""

    def __init__(self, op: str, channels_in: int, channels_out: int, downsample: bool = False):
        super().__init__()
        self.downsample = downsample
        if downsample:
            self.shortcut = nn.Conv2d(channels_in, channels_out, 1)
        self.conv1 = DifferenceConv(op, channels_in, channels_in, groups=channels_in)
        self.conv2 = nn.Conv2d(channels_in, channels_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            x = F.max_pool2d(x, kernel_size=2, stride=2)
        y = self.conv2(F.relu(self.conv1(x)))
        return y + (self.shortcut(x) if self.downsample else x)


class DilationModule(nn.Module):
    """1x1 down to ``channels``, then four dilated 3x3 convolutions (5, 7, 9, 11) summed."""

    def __init__(self, channels_in: int, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 1)
        for index, dilation in enumerate((5, 7, 9, 11)):
            self.add_module(f"conv2_{index + 1}", nn.Conv2d(channels, channels, 3, dilation=dilation,
                                                            padding=dilation, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.relu(x))
        return sum(getattr(self, f"conv2_{i}")(x) for i in range(1, 5))


class SpatialAttention(nn.Module):
    """Features weighted by a one-channel sigmoid map computed from them."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4, 1)
        self.conv2 = nn.Conv2d(4, 1, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv2(self.conv1(F.relu(x))))


class MapReduce(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


STAGES = ((1, 3), (2, 4), (3, 4), (4, 4))  # (stage, blocks); stages 2-4 start by halving the size


class PiDiNet(nn.Module):
    """The network with ``width`` channels in its first stage and ``dilation`` channels in its side outputs."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.init_block = DifferenceConv(LAYER_OPS[0], 3, width)
        layer, channels, side = 1, width, []
        for stage, blocks in STAGES:
            wider = channels * 2 if stage in (2, 3) else channels
            for block in range(blocks):
                downsample = stage > 1 and block == 0
                self.add_module(f"block{stage}_{block + 1}", PdcBlock(LAYER_OPS[layer], channels if block == 0
                                                                      else wider, wider, downsample))
                layer += 1
            channels = wider
            side.append(channels)
        self.stage_blocks = [[f"block{stage}_{b + 1}" for b in range(blocks)] for stage, blocks in STAGES]
        self.dilations = nn.ModuleList([DilationModule(c, dilation) for c in side])
        self.attentions = nn.ModuleList([SpatialAttention(dilation) for _ in side])
        self.conv_reduces = nn.ModuleList([MapReduce(dilation) for _ in side])
        self.classifier = nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2:]
        x = self.init_block(x)
        edges = []
        for index, names in enumerate(self.stage_blocks):
            for name in names:
                x = getattr(self, name)(x)
            side = self.conv_reduces[index](self.attentions[index](self.dilations[index](x)))
            edges.append(F.interpolate(side, (height, width), mode="bilinear", align_corners=False))
        return torch.sigmoid(self.classifier(torch.cat(edges, dim=1)))


def build_pidinet(state: dict[str, torch.Tensor]) -> PiDiNet:
    """The network a ``table5_pidinet.pth`` state dict describes, loaded."""
    width = int(state["init_block.weight"].shape[0])
    dilation = int(state["dilations.0.conv1.weight"].shape[0])
    return load_strict(PiDiNet(width, dilation), state, "table5_pidinet.pth")


@torch.no_grad()
def run_pidinet(net: PiDiNet, image: np.ndarray, device: torch.device, safe: bool = False,
                binary: bool = False) -> np.ndarray:
    """The edge map (``H x W`` uint8) of an ``H x W x 3`` uint8 RGB image.

    Args:
        safe: quantise to three levels (``softedge_pidisafe``).
        binary: keep edges above one half, as white (the T2I-Adapter sketch preprocessor).
    """
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    x = torch.from_numpy(bgr).float().to(device).permute(2, 0, 1)[None] / 255.0
    edge = net.to(device)(x).float().cpu().numpy()
    if binary:
        edge = edge > 0.5
    if safe:
        edge = safe_step(edge)
    return (edge * 255.0).clip(0, 255).astype(np.uint8)[0][0]
