"""The DPT-Hybrid encoder of MiDaS v3 (``dpt_hybrid-midas-501f0c75.pt``): a ResNet-50 style stem and three
bottleneck stages feeding a ViT-Base.

The key names are timm's ``vit_base_resnet50_384`` under ``pretrained.model.``: weight-standardised convolutions
with TensorFlow "same" padding, group norm with 32 groups, a classifier head that is never used. Widths, depths and
the position-embedding grid come from the file; the head count assumes 64 channels per head, as ViT-Base has.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.attention import Attention
from sdapi.engine.annotators.weights import count_indexed

GROUPS = 32
# timm builds the hybrid's convolutions with this epsilon (its default is 1e-6).
STD_CONV_EPS = 1e-8


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow's "same" padding: the extra pixel of an odd total goes right and bottom."""
    top, bottom = _same_padding(x.shape[-2], kernel, stride)
    left, right = _same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, (left, right, top, bottom), value=value)


class StdConv2dSame(nn.Conv2d):
    """A convolution whose weights are standardised per output channel before use, with "same" padding."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int = 1):
        super().__init__(channels_in, channels_out, kernel, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = self.weight.reshape(1, self.out_channels, -1)
        weight = F.batch_norm(flat, None, None, training=True, momentum=0.0, eps=STD_CONV_EPS).reshape_as(self.weight)
        x = pad_same(x, self.kernel_size[0], self.stride[0])
        return F.conv2d(x, weight, None, self.stride)


class GroupNormAct(nn.GroupNorm):
    """Group norm, then ReLU unless ``act`` is false."""

    def __init__(self, channels: int, act: bool = True):
        super().__init__(GROUPS, channels, eps=1e-5)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return F.relu(x) if self.act else x


class Downsample(nn.Module):
    """The shortcut of a stage's first block: a strided 1x1 convolution and group norm."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.conv = StdConv2dSame(channels_in, channels_out, 1, stride)
        self.norm = GroupNormAct(channels_out, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class Bottleneck(nn.Module):
    """1x1 down to ``mid``, 3x3 (strided), 1x1 up to ``channels_out``, added to the shortcut, then ReLU."""

    def __init__(self, channels_in: int, mid: int, channels_out: int, stride: int, downsample: bool):
        super().__init__()
        self.downsample = Downsample(channels_in, channels_out, stride) if downsample else None
        self.conv1, self.norm1 = StdConv2dSame(channels_in, mid, 1), GroupNormAct(mid)
        self.conv2, self.norm2 = StdConv2dSame(mid, mid, 3, stride), GroupNormAct(mid)
        self.conv3, self.norm3 = StdConv2dSame(mid, channels_out, 1), GroupNormAct(channels_out, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.downsample(x) if self.downsample is not None else x
        x = self.norm1(self.conv1(x))
        x = self.norm2(self.conv2(x))
        x = self.norm3(self.conv3(x))
        return F.relu(x + shortcut)


class Stage(nn.Module):
    def __init__(self, blocks: list[Bottleneck]):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class Stem(nn.Module):
    """7x7 stride-2 convolution, group norm with ReLU, 3x3 stride-2 max pooling (padded with -inf)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = StdConv2dSame(3, width, 7, 2)
        self.norm = GroupNormAct(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return F.max_pool2d(pad_same(x, 3, 2, value=float("-inf")), 3, 2)


class ResNetBackbone(nn.Module):
    """The stem and the stages; :meth:`forward` returns every stage's output (DPT taps the first two)."""

    def __init__(self, stem_width: int, stages: list[tuple[int, int, int]]):
        super().__init__()
        self.stem = Stem(stem_width)
        channels_in, built = stem_width, []
        for index, (mid, channels_out, depth) in enumerate(stages):
            stride = 1 if index == 0 else 2
            built.append(Stage([Bottleneck(channels_in if b == 0 else channels_out, mid, channels_out,
                                           stride if b == 0 else 1, downsample=b == 0) for b in range(depth)]))
            channels_in = channels_out
        self.stages = nn.ModuleList(built)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs


class HybridEmbed(nn.Module):
    """The backbone's last features projected to tokens (a 1x1 convolution)."""

    def __init__(self, backbone: ResNetBackbone, channels_in: int, dim: int):
        super().__init__()
        self.backbone = backbone
        self.proj = nn.Conv2d(channels_in, dim, 1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm transformer block."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, fused=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class HybridVit(nn.Module):
    """The hybrid ViT; :meth:`forward` gives the backbone's first two stage outputs and the tokens after each
    block in ``taps``, at any input size divisible by 32 (the position embeddings are resized bilinearly)."""

    patch = 16

    def __init__(self, backbone: ResNetBackbone, backbone_out: int, dim: int, hidden: int, depth: int, grid: int):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.patch_embed = HybridEmbed(backbone, backbone_out, dim)
        self.blocks = nn.ModuleList([Block(dim, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)  # in the file; DPT reads the blocks before it

    def _position(self, rows: int, cols: int) -> torch.Tensor:
        grid = int(math.sqrt(self.pos_embed.shape[1] - 1))
        cells = self.pos_embed[0, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        cells = F.interpolate(cells, size=(rows, cols), mode="bilinear").permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat([self.pos_embed[:, :1], cells], dim=1)

    def forward(self, x: torch.Tensor, taps: tuple[int, ...]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        rows, cols = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        stages = self.patch_embed.backbone(x)
        tokens = self.patch_embed.proj(stages[-1]).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1) + self._position(rows, cols)
        tapped = []
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index in taps:
                tapped.append(tokens)
        return stages[:2], tapped


def build_hybrid_vit(state: dict[str, torch.Tensor], prefix: str) -> HybridVit:
    """The encoder the keys under ``prefix`` describe (unloaded)."""
    backbone = f"{prefix}patch_embed.backbone."
    stem_width = int(state[f"{backbone}stem.conv.weight"].shape[0])
    stages = []
    for index in range(count_indexed(state, f"{backbone}stages.")):
        first = f"{backbone}stages.{index}.blocks.0."
        stages.append((int(state[f"{first}conv1.weight"].shape[0]), int(state[f"{first}conv3.weight"].shape[0]),
                       count_indexed(state, f"{backbone}stages.{index}.blocks.")))
    dim = int(state[f"{prefix}cls_token"].shape[-1])
    grid = int(math.sqrt(state[f"{prefix}pos_embed"].shape[1] - 1))
    return HybridVit(ResNetBackbone(stem_width, stages), stages[-1][1], dim,
                     int(state[f"{prefix}blocks.0.mlp.fc1.weight"].shape[0]), count_indexed(state, f"{prefix}blocks."),
                     grid)
