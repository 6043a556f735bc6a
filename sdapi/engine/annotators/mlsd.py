"""Straight line segments (the extension's ``mlsd``): NAVER's Apache-2.0 M-LSD "large" in its PyTorch port,
``mlsd_large_512_fp32.pth``.

A MobileNetV2 trunk (its first 14 stages, with stride-2 convolutions padded as TFLite pads them) taps five scales; a
top-down decoder brings them back to half the input size and predicts, per pixel, a line-centre logit and the
displacements from that centre to the segment's two ends. A segment is kept for each of the 200 best centres that
is a local maximum, scores above the value threshold and is longer than the distance threshold; the map is those
segments drawn as one-pixel white lines on black.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.weights import count_indexed, load_strict

# Strides of the trunk's inverted-residual stages 1..13 (MobileNetV2's settings 1x16, 2x24, 3x32, 4x64, 3x96: each
# setting strides in its first stage). Depths and strides are fixed; widths are read from the file.
STRIDES = (1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1)
TAPS = (1, 3, 6, 10, 13)  # stages whose outputs the decoder reads, finest first
# The decoder's last layer has 16 outputs; the port reads channel 7 as the centre logit and 8..11 as the
# displacements (start x, start y, end x, end y), in prediction pixels.
CENTRE = 7
TOP_K = 200
PEAK_WINDOW = 3


class ConvBnRelu6(nn.Sequential):
    """Convolution without bias, batch norm, ReLU6. A stride-2 one pads one pixel on the right and below only
    (TFLite's "same" padding, which the weights were trained with), not one on every side."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        padding = 0 if stride == 2 else (kernel - 1) // 2
        super().__init__(nn.Conv2d(channels_in, channels_out, kernel, stride, padding, groups=groups, bias=False),
                         nn.BatchNorm2d(channels_out), nn.ReLU6())
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            x = F.pad(x, (0, 1, 0, 1))
        return super().forward(x)


class InvertedResidual(nn.Module):
    """MobileNetV2's stage: a 1x1 expansion (absent when ``hidden`` equals the input width), a depthwise 3x3, a
    linear 1x1 projection; the input is added back when the shape is kept."""

    def __init__(self, channels_in: int, hidden: int, channels_out: int, stride: int):
        super().__init__()
        expansion = [ConvBnRelu6(channels_in, hidden, kernel=1)] if hidden != channels_in else []
        self.conv = nn.Sequential(*expansion, ConvBnRelu6(hidden, hidden, stride=stride, groups=hidden),
                                  nn.Conv2d(hidden, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out))
        self.residual = stride == 1 and channels_in == channels_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class Trunk(nn.Module):
    """The MobileNetV2 stem and stages; ``forward`` gives the tapped stages' outputs, finest first."""

    def __init__(self, channels_in: int, stem: int, stages: list[tuple[int, int]]):
        super().__init__()
        layers: list[nn.Module] = [ConvBnRelu6(channels_in, stem, stride=2)]
        width = stem
        for (hidden, channels_out), stride in zip(stages, STRIDES, strict=True):
            layers.append(InvertedResidual(width, hidden, channels_out, stride))
            width = channels_out
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, stage in enumerate(self.features):
            x = stage(x)
            if index in TAPS:
                taps.append(x)
        return taps


def _conv_bn_relu(channels_in: int, channels_out: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, kernel, padding=dilation * (kernel // 2),
                                   dilation=dilation), nn.BatchNorm2d(channels_out), nn.ReLU())


class Merge(nn.Module):
    """Coarser features (``conv1``) and a finer tap (``conv2``) projected by 1x1 convolutions; the coarse ones
    upsampled 2x (corners aligned) unless both are at one scale; concatenated, tap first."""

    def __init__(self, coarse_in: int, tap_in: int, width: int, upsample: bool):
        super().__init__()
        self.conv1 = _conv_bn_relu(coarse_in, width, 1)
        self.conv2 = _conv_bn_relu(tap_in, width, 1)
        self.upsample = upsample

    def forward(self, tap: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        coarse = self.conv1(coarse)
        if self.upsample:
            coarse = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=True)
        return torch.cat((self.conv2(tap), coarse), dim=1)


class Refine(nn.Module):
    """A residual 3x3 convolution, then a 3x3 one down to the decoder's width."""

    def __init__(self, channels_in: int, width: int):
        super().__init__()
        self.conv1 = _conv_bn_relu(channels_in, channels_in, 3)
        self.conv2 = _conv_bn_relu(channels_in, width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x) + x)


class Predict(nn.Module):
    """A dilated (5) 3x3 convolution for context, a plain 3x3 one, and the 1x1 output layer."""

    def __init__(self, width: int, outputs: int):
        super().__init__()
        self.conv1 = _conv_bn_relu(width, width, 3, dilation=5)
        self.conv2 = _conv_bn_relu(width, width, 3)
        self.conv3 = nn.Conv2d(width, outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)))


class MlsdNet(nn.Module):
    """M-LSD large: ``forward`` gives ``N x 5 x H/2 x W/2``, the centre logit and the four displacements.

    Args:
        stem: the trunk's first width.
        stages: ``(hidden, output)`` widths of the 13 inverted-residual stages.
        width: the decoder's width.
        outputs: the last layer's outputs (16 in the file; the port reads 7..11).
        channels_in: the input's channels (RGB and a constant plane).
    """

    def __init__(self, stem: int, stages: list[tuple[int, int]], width: int, outputs: int = 16,
                 channels_in: int = 4):
        super().__init__()
        if outputs < CENTRE + 5:
            raise ValueError(f"M-LSD needs at least {CENTRE + 5} outputs, the file has {outputs}")
        self.backbone = Trunk(channels_in, stem, stages)
        taps = [stages[index - 1][1] for index in TAPS]
        # blocks 15..22 alternate a merge and a refinement from the coarsest tap up; block 23 predicts.
        coarse = taps[4]
        for number, tap in zip((15, 17, 19, 21), reversed(taps[:4])):
            self.add_module(f"block{number}", Merge(coarse, tap, width, upsample=number != 15))
            self.add_module(f"block{number + 1}", Refine(2 * width, width))
            coarse = width
        self.block23 = Predict(width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = self.backbone(x)
        x = taps[4]
        for number, tap in zip((15, 17, 19, 21), reversed(taps[:4])):
            x = getattr(self, f"block{number + 1}")(getattr(self, f"block{number}")(tap, x))
        return self.block23(x)[:, CENTRE:CENTRE + 5]


def build_mlsd(state: dict[str, torch.Tensor]) -> MlsdNet:
    """The network an ``mlsd_large_512_fp32.pth`` state dict describes, loaded.

    Raises:
        ValueError, KeyError: not M-LSD's layout (the cache answers these as a wrong file).
    """
    stages = count_indexed(state, "backbone.features.") - 1
    if stages != len(STRIDES):
        raise ValueError(f"M-LSD's trunk has {len(STRIDES)} stages after the stem, the file has {stages}")
    widths = []
    for index in range(1, stages + 1):
        prefix = f"backbone.features.{index}.conv."
        expanded = f"{prefix}3.weight" in state  # the expansion adds a ConvBnRelu6 in front
        depthwise = state[f"{prefix}{1 if expanded else 0}.0.weight"]
        projection = state[f"{prefix}{3 if expanded else 2}.weight"]
        widths.append((int(depthwise.shape[0]), int(projection.shape[0])))
    stem = state["backbone.features.0.0.weight"]
    net = MlsdNet(int(stem.shape[0]), widths, int(state["block15.conv1.0.weight"].shape[0]),
                  int(state["block23.conv3.weight"].shape[0]), int(stem.shape[1]))
    return load_strict(net, state, "mlsd_large_512_fp32.pth")


@torch.no_grad()
def line_candidates(prediction: torch.Tensor, top_k: int = TOP_K) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """The best centres of a ``1 x 5 x h x w`` prediction: rows, columns, scores (float32) of the ``top_k`` highest
    sigmoid centre scores after the non-maxima of each 3x3 window are zeroed, best first; and the ``h x w x 4``
    displacements (float32).

    Sigmoid, window maxima and top-k stay torch operations on the prediction's device, as in the port, so rounding
    and the order among equal scores are the ones it gets.
    """
    heat = torch.sigmoid(prediction[:, 0])
    peaks = F.max_pool2d(heat, PEAK_WINDOW, stride=1, padding=PEAK_WINDOW // 2)
    heat = (heat * (peaks == heat).float()).reshape(-1)
    scores, indices = torch.topk(heat, min(top_k, heat.numel()))
    rows, columns = np.divmod(indices.cpu().numpy(), prediction.shape[-1])
    displacement = prediction[0, 1:5].permute(1, 2, 0).float().cpu().numpy()
    return rows, columns, scores.float().cpu().numpy(), displacement


def pred_lines(rows: np.ndarray, columns: np.ndarray, scores: np.ndarray, displacement: np.ndarray,
               value_threshold: float, distance_threshold: float) -> np.ndarray:
    """The segments ``(x0, y0, x1, y1)`` (float64, ``N x 4``, in prediction pixels, candidates' order) of the
    candidates scoring above ``value_threshold`` whose ends lie more than ``distance_threshold`` apart.

    The length is computed in float32 and both comparisons in float64, as the port's scalar code does under the
    NumPy 1.x A1111 ships (NumPy 2 would compare in float32: it differs only for a value exactly at a threshold's
    float32 rounding).
    """
    ends = displacement[rows, columns]
    length = np.sqrt(np.sum((ends[:, :2] - ends[:, 2:]) ** 2, axis=-1))
    kept = ((scores.astype(np.float64) > float(value_threshold))
            & (length.astype(np.float64) > float(distance_threshold)))
    centres = np.stack([columns, rows, columns, rows], axis=1)[kept].astype(np.float64)
    return centres + ends[kept].astype(np.float64)


def draw_segments(segments: np.ndarray, height: int, width: int) -> np.ndarray:
    """``segments`` (in image pixels) as 1-pixel white lines (8-connected) on a black ``height x width`` map, each
    end truncated towards zero. Drawing stops at the first segment with an end that is not a finite 32-bit value:
    the port's loop fails on it and keeps what it drew before."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    drawable = np.isfinite(segments).all(axis=1) & (np.abs(segments) < 2**31).all(axis=1)
    count = len(segments) if drawable.all() else int(np.argmin(drawable))
    for x0, y0, x1, y1 in np.trunc(segments[:count]).astype(np.int64).tolist():
        cv2.line(canvas, (x0, y0), (x1, y1), 255, 1)
    return canvas


def _pad_to(image: np.ndarray, multiple: int) -> np.ndarray:
    height, width = image.shape[:2]
    return np.pad(image, [[0, -height % multiple], [0, -width % multiple], [0, 0]], mode="edge")


@torch.no_grad()
def run_mlsd(net: MlsdNet, image: np.ndarray, device: torch.device, value_threshold: float,
             distance_threshold: float) -> np.ndarray:
    """The line map (``H x W`` uint8, white segments on black) of an ``H x W x 3`` uint8 RGB image.

    The network reads RGB and a constant plane of ones, all scaled to -1..1, at the image's own size (the
    preprocessor's padding makes it a multiple of 64; other sizes are edge-padded to a multiple of 16 so the
    decoder's scales line up, and the map is cut back).
    """
    height, width = image.shape[:2]
    padded = _pad_to(image, 16)
    planes = np.concatenate([padded.astype(np.float32), np.ones((*padded.shape[:2], 1), np.float32)], axis=2)
    # Left in NumPy's channels-last memory order, as the port's input is: PyTorch then picks the same convolution
    # kernels, whose sums round alike (a contiguous copy moves outputs by an ulp, and lines by a pixel).
    x = planes.transpose(2, 0, 1)[None] / 127.5 - 1.0
    prediction = net.to(device)(torch.from_numpy(x).to(device))
    segments = pred_lines(*line_candidates(prediction), value_threshold, distance_threshold)
    # The prediction has half the input's resolution.
    return draw_segments(2.0 * segments, *padded.shape[:2])[:height, :width]
