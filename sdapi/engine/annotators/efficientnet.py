"""The EfficientNet encoder of NormalBae (TensorFlow-compatible ``tf_efficientnet_b5_ap`` from gen-efficientnet),
under ``encoder.original_model.`` in ``scannet.pt``.

A stem, seven stages of depthwise-separable (stage 0) or inverted-residual blocks with squeeze-excitation and swish,
and a 1x1 head; batch norm with TensorFlow's epsilon, and TensorFlow "same" padding (strided convolutions pad more
on the right and bottom). Each block's kernel and widths come from the file; strides are the architecture's, per
stage. :meth:`EfficientNetEncoder.forward` returns every stage's output and the head's (before its norm), which
the decoder taps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.midas_backbone import pad_same
from sdapi.engine.annotators.weights import count_indexed

STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
TF_BN_EPS = 1e-3


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow "same" padding: static when the stride is 1, computed per input otherwise."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int = 1, groups: int = 1,
                 bias: bool = False):
        super().__init__(channels_in, channels_out, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0,
                         groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            x = pad_same(x, self.kernel_size[0], self.stride[0])
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=TF_BN_EPS)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.conv_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.conv_expand(F.silu(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(scale)


class DepthwiseSeparable(nn.Module):
    """Depthwise conv, norm, swish, squeeze-excitation, pointwise conv, norm (+ input when the shape allows)."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int, reduced: int):
        super().__init__()
        self.residual = stride == 1 and channels_in == channels_out
        self.conv_dw = SameConv(channels_in, channels_in, kernel, stride, groups=channels_in)
        self.bn1 = _bn(channels_in)
        self.se = SqueezeExcite(channels_in, reduced)
        self.conv_pw = SameConv(channels_in, channels_out, 1)
        self.bn2 = _bn(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.se(F.silu(self.bn1(self.conv_dw(x))))))
        return y + x if self.residual else y


class InvertedResidual(nn.Module):
    """Pointwise expansion, depthwise conv, squeeze-excitation, pointwise projection (+ input when it fits)."""

    def __init__(self, channels_in: int, mid: int, channels_out: int, kernel: int, stride: int, reduced: int):
        super().__init__()
        self.residual = stride == 1 and channels_in == channels_out
        self.conv_pw = SameConv(channels_in, mid, 1)
        self.bn1 = _bn(mid)
        self.conv_dw = SameConv(mid, mid, kernel, stride, groups=mid)
        self.bn2 = _bn(mid)
        self.se = SqueezeExcite(mid, reduced)
        self.conv_pwl = SameConv(mid, channels_out, 1)
        self.bn3 = _bn(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.bn1(self.conv_pw(x)))
        y = self.se(F.silu(self.bn2(self.conv_dw(y))))
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.residual else y


class EfficientNetEncoder(nn.Module):
    """The network with its blocks given as built modules (``blocks[stage][index]``)."""

    def __init__(self, stem: int, blocks: list[list[nn.Module]], head_in: int, head: int):
        super().__init__()
        self.conv_stem = SameConv(3, stem, 3, 2)
        self.bn1 = _bn(stem)
        self.blocks = nn.Sequential(*[nn.Sequential(*stage) for stage in blocks])
        self.conv_head = SameConv(head_in, head, 1)
        self.bn2 = _bn(head)  # in the file; the decoder reads the head before it

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = F.silu(self.bn1(self.conv_stem(x)))
        stages = []
        for stage in self.blocks:
            x = stage(x)
            stages.append(x)
        return stages, self.conv_head(x)


def _block(state: dict[str, torch.Tensor], prefix: str, stride: int) -> nn.Module:
    dw = state[f"{prefix}conv_dw.weight"]
    kernel, reduced = int(dw.shape[-1]), int(state[f"{prefix}se.conv_reduce.weight"].shape[0])
    if f"{prefix}conv_pw.weight" in state and f"{prefix}conv_pwl.weight" in state:
        pw, pwl = state[f"{prefix}conv_pw.weight"], state[f"{prefix}conv_pwl.weight"]
        return InvertedResidual(int(pw.shape[1]), int(pw.shape[0]), int(pwl.shape[0]), kernel, stride, reduced)
    pw = state[f"{prefix}conv_pw.weight"]
    return DepthwiseSeparable(int(pw.shape[1]), int(pw.shape[0]), kernel, stride, reduced)


def build_efficientnet(state: dict[str, torch.Tensor], prefix: str) -> EfficientNetEncoder:
    """The encoder the keys under ``prefix`` describe (unloaded)."""
    blocks = []
    for stage in range(count_indexed(state, f"{prefix}blocks.")):
        count = count_indexed(state, f"{prefix}blocks.{stage}.")
        blocks.append([_block(state, f"{prefix}blocks.{stage}.{index}.", STAGE_STRIDES[stage] if index == 0 else 1)
                       for index in range(count)])
    head = state[f"{prefix}conv_head.weight"]
    return EfficientNetEncoder(int(state[f"{prefix}conv_stem.weight"].shape[0]), blocks, int(head.shape[1]),
                               int(head.shape[0]))
