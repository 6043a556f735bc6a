"""The super-resolution networks of A1111's bundled upscalers, built from a state dict's shapes.

* ``RRDBNet``: ESRGAN and Real-ESRGAN x4plus/x2plus/anime_6B. Both key layouts are read: the original ESRGAN
  one (``model.0``, ``model.1.sub.N.RDB1.conv1.0``, ...) and BasicSR's (``conv_first``, ``body.N.rdb1.conv1``, ...).
  Real-ESRGAN's x2/x1 models take ``pixel_unshuffle``-d input (12 or 48 input channels).
* ``CompactNet``: Real-ESRGAN's SRVGGNetCompact (``realesr-general-x4v3``, ``realesr-animevideov3``).

spandrel knows these and many more architectures, but imports torchvision, which has no CPU build for this
torch on PyPI; these two cover every file A1111 v1.2.1 offers for its ESRGAN and Real-ESRGAN upscalers.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.errors import UnsupportedUpscaler

StateDict = dict[str, torch.Tensor]


def _conv(weight: torch.Tensor) -> nn.Conv2d:
    return nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], 1, weight.shape[2] // 2)


class DenseBlock(nn.Module):
    """Five densely connected convolutions, residual scaled by 0.2."""

    def __init__(self, feat: int, grow: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(feat + i * grow, grow if i < 4 else feat, 3, 1, 1) for i in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(features, 1))
            if i == 4:
                return out * 0.2 + x
            features.append(F.leaky_relu(out, 0.2))
        raise AssertionError("unreachable")


class ResidualInResidual(nn.Module):
    """Three dense blocks, residual scaled by 0.2."""

    def __init__(self, feat: int, grow: int):
        super().__init__()
        self.blocks = nn.ModuleList(DenseBlock(feat, grow) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for block in self.blocks:
            out = block(out)
        return out * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator: RRDB trunk, nearest x2 upsampling convolutions, HR and output convolutions.

    Args:
        in_ch, out_ch: image channels (``in_ch`` counts the unshuffled channels).
        feat, grow: trunk width and dense growth.
        blocks: RRDB count.
        ups: number of x2 upsampling stages.
        unshuffle: ``pixel_unshuffle`` factor applied to the input first (Real-ESRGAN x2: 2, x1: 4).
    """

    def __init__(self, in_ch: int, out_ch: int, feat: int, grow: int, blocks: int, ups: int, unshuffle: int = 1):
        super().__init__()
        self.unshuffle = unshuffle
        self.first = nn.Conv2d(in_ch, feat, 3, 1, 1)
        self.trunk = nn.ModuleList(ResidualInResidual(feat, grow) for _ in range(blocks))
        self.trunk_conv = nn.Conv2d(feat, feat, 3, 1, 1)
        self.ups = nn.ModuleList(nn.Conv2d(feat, feat, 3, 1, 1) for _ in range(ups))
        self.hr = nn.Conv2d(feat, feat, 3, 1, 1)
        self.last = nn.Conv2d(feat, out_ch, 3, 1, 1)

    @property
    def scale(self) -> int:
        return 2 ** len(self.ups) // self.unshuffle

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.first(x)
        body = feat
        for block in self.trunk:
            body = block(body)
        feat = feat + self.trunk_conv(body)
        for conv in self.ups:
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.last(F.leaky_relu(self.hr(feat), 0.2))


def _rrdb_from_basicsr(sd: StateDict) -> StateDict:
    """BasicSR names (``conv_first``, ``body.N.rdbM.convK``, ``conv_up1``...) -> ours."""
    out = {}
    for key, value in sd.items():
        m = re.fullmatch(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)", key)
        if m:
            out[f"trunk.{m[1]}.blocks.{int(m[2]) - 1}.convs.{int(m[3]) - 1}.{m[4]}"] = value
            continue
        m = re.fullmatch(r"conv_up(\d)\.(weight|bias)", key)
        if m:
            out[f"ups.{int(m[1]) - 1}.{m[2]}"] = value
            continue
        name, _, kind = key.rpartition(".")
        renamed = {"conv_first": "first", "conv_body": "trunk_conv", "conv_hr": "hr", "conv_last": "last"}.get(name)
        if renamed is None:
            raise UnsupportedUpscaler(f"unexpected ESRGAN key {key}")
        out[f"{renamed}.{kind}"] = value
    return out


def _rrdb_from_original(sd: StateDict) -> StateDict:
    """Original ESRGAN names (``model.0``, ``model.1.sub.N.RDBM.convK.0``, ``model.3``...) -> ours."""
    out, top = {}, {}
    for key, value in sd.items():
        m = re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", key)
        if m:
            out[f"trunk.{m[1]}.blocks.{int(m[2]) - 1}.convs.{int(m[3]) - 1}.{m[4]}"] = value
            continue
        m = re.fullmatch(r"model\.1\.sub\.(\d+)\.(weight|bias)", key)
        if m:
            out[f"trunk_conv.{m[2]}"] = value
            continue
        m = re.fullmatch(r"model\.(\d+)\.(weight|bias)", key)
        if not m:
            raise UnsupportedUpscaler(f"unexpected ESRGAN key {key} (ESRGAN+ and other variants are not supported)")
        top.setdefault(int(m[1]), {})[m[2]] = value
    indices = sorted(top)
    names = ["first"] + [f"ups.{i}" for i in range(len(indices) - 3)] + ["hr", "last"]
    for index, name in zip(indices, names):
        for kind, value in top[index].items():
            out[f"{name}.{kind}"] = value
    return out


def build_rrdbnet(sd: StateDict) -> RRDBNet:
    """An ``RRDBNet`` with ``sd`` loaded (either key layout)."""
    ours = _rrdb_from_basicsr(sd) if "conv_first.weight" in sd else _rrdb_from_original(sd)
    first = ours["first.weight"]
    blocks = len({k.split(".")[1] for k in ours if k.startswith("trunk.")})
    ups = len({k.split(".")[1] for k in ours if k.startswith("ups.")})
    in_ch = first.shape[1]
    unshuffle = {3: 1, 12: 2, 48: 4}.get(in_ch)
    if unshuffle is None:
        raise UnsupportedUpscaler(f"ESRGAN with {in_ch} input channels is not supported")
    net = RRDBNet(in_ch, ours["last.weight"].shape[0], first.shape[0],
                  ours["trunk.0.blocks.0.convs.0.weight"].shape[0], blocks, ups, unshuffle)
    net.load_state_dict(ours)
    return net


class CompactNet(nn.Module):
    """Real-ESRGAN's SRVGGNetCompact: a plain conv/PReLU stack, pixel shuffle, plus the nearest-upscaled input.

    Args:
        body: the ``body`` layers in order (convolutions and PReLUs).
        scale: the pixel-shuffle factor.
    """

    def __init__(self, body: list[nn.Module], scale: int):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.pixel_shuffle(self.body(x), self.scale)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def build_compact(sd: StateDict) -> CompactNet:
    """A ``CompactNet`` with ``sd`` (``body.N.weight``/``bias``, PReLU weights 1-D) loaded."""
    indices = sorted({int(k.split(".")[1]) for k in sd})
    if indices != list(range(len(indices))):
        raise UnsupportedUpscaler("SRVGGNetCompact without PReLU activations is not supported")
    layers = []
    for i in indices:
        weight = sd[f"body.{i}.weight"]
        layers.append(_conv(weight) if weight.dim() == 4 else nn.PReLU(weight.shape[0]))
    scale = math.isqrt(sd[f"body.{indices[-1]}.weight"].shape[0] // 3)
    net = CompactNet(layers, scale)
    net.body.load_state_dict({k.split(".", 1)[1]: v for k, v in sd.items()})
    return net


def build_network(sd: StateDict) -> nn.Module:
    """The network for a super-resolution state dict, in eval mode.

    Raises:
        UnsupportedUpscaler: an architecture other than ESRGAN/RRDBNet or SRVGGNetCompact.
    """
    if "conv_first.weight" in sd or "model.0.weight" in sd:
        net = build_rrdbnet(sd)
    elif "body.0.weight" in sd and all(k.startswith("body.") for k in sd):
        net = build_compact(sd)
    else:
        raise UnsupportedUpscaler("not an ESRGAN or Real-ESRGAN model")
    return net.eval()
