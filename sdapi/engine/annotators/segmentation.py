"""ADE20K segmentation (the extension's ``seg_ufade20k``, ``uniformer/upernet_global_small.pth``): UniFormer-S with
an UPerNet head, run as mmsegmentation's test pipeline runs it, then painted with the ADE20K palette.

The pipeline: rescale to fit 2048x512 (short side 512 unless the long side would pass 2048; bilinear), normalise
with ImageNet's statistics after swapping the first and last channel (mmseg takes its input for BGR; the extension
hands it RGB), run the network on the whole image, resize the logits to the input size (bilinear, corners not
aligned) and take each pixel's best class. The file's auxiliary FCN head is training-only and not built.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.ade20k_palette import PALETTE
from sdapi.engine.annotators.uniformer import UniFormer, build_uniformer
from sdapi.engine.annotators.weights import count_indexed, load_strict

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
LONG_SIDE, SHORT_SIDE = 2048, 512
POOL_SCALES = (1, 2, 3, 6)
UNUSED = ("auxiliary_head.",)


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvModule(nn.Module):
    """Convolution without bias, batch norm, ReLU."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class UperHead(nn.Module):
    """Pyramid pooling on the coarsest features, a top-down FPN over the others, all fused and classified."""

    def __init__(self, widths: list[int], channels: int, classes: int):
        super().__init__()
        self.psp_modules = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvModule(widths[-1], channels, 1))
                                          for scale in POOL_SCALES])
        self.bottleneck = ConvModule(widths[-1] + len(POOL_SCALES) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList([ConvModule(w, channels, 1) for w in widths[:-1]])
        self.fpn_convs = nn.ModuleList([ConvModule(channels, channels, 3) for _ in widths[:-1]])
        self.fpn_bottleneck = ConvModule(len(widths) * channels, channels, 3)
        self.conv_seg = nn.Conv2d(channels, classes, 1)

    def _pyramid(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [_resize(module(x), x.shape[2:]) for module in self.psp_modules]
        return self.bottleneck(torch.cat([x, *pooled], dim=1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        laterals = [conv(features[i]) for i, conv in enumerate(self.lateral_convs)]
        laterals.append(self._pyramid(features[-1]))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(laterals[i]) for i, conv in enumerate(self.fpn_convs)] + [laterals[-1]]
        outs = [outs[0]] + [_resize(out, outs[0].shape[2:]) for out in outs[1:]]
        return self.conv_seg(self.fpn_bottleneck(torch.cat(outs, dim=1)))


class UperNet(nn.Module):
    def __init__(self, backbone: UniFormer, head: UperHead):
        super().__init__()
        self.backbone = backbone
        self.decode_head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _resize(self.decode_head(self.backbone(x)), x.shape[2:])


def build_upernet(state: dict[str, torch.Tensor]) -> UperNet:
    """The network an ``upernet_global_small.pth`` state dict describes, loaded."""
    backbone = build_uniformer(state, "backbone.")
    widths = [int(state[f"backbone.patch_embed{s}.proj.weight"].shape[0]) for s in range(1, 5)]
    if count_indexed(state, "decode_head.psp_modules.") != len(POOL_SCALES):
        raise KeyError("decode_head.psp_modules")
    conv_seg = state["decode_head.conv_seg.weight"]
    head = UperHead(widths, int(conv_seg.shape[1]), int(conv_seg.shape[0]))
    return load_strict(UperNet(backbone, head), state, "upernet_global_small.pth", ignored_prefixes=UNUSED)


def _network_input(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    scale = min(LONG_SIDE / max(height, width), SHORT_SIDE / min(height, width))
    size = (int(width * scale + 0.5), int(height * scale + 0.5))
    pixels = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR).astype(np.float32)
    # mmcv's normalisation, operation for operation: swap to "RGB", subtract, multiply by the inverse std.
    cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB, pixels)
    cv2.subtract(pixels, np.float64(MEAN).reshape(1, -1), pixels)
    cv2.multiply(pixels, 1 / np.float64(STD).reshape(1, -1), pixels)
    return pixels


@torch.no_grad()
def run_segmentation(net: UperNet, image: np.ndarray, device: torch.device) -> np.ndarray:
    """The ADE20K class map of an ``H x W x 3`` uint8 RGB image, painted with the palette (``H x W x 3`` uint8)."""
    pixels = _network_input(image)
    x = torch.from_numpy(pixels.transpose(2, 0, 1).copy())[None].to(device)
    logits = _resize(net.to(device)(x), image.shape[:2])
    classes = F.softmax(logits, dim=1).argmax(dim=1)[0].cpu().numpy()
    return PALETTE[classes]
