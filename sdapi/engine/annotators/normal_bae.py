"""Surface normals from NormalBae (the extension's ``normal_bae``, ``scannet.pt``): an EfficientNet-B5 encoder and
a decoder that upsamples with batch-normed convolutions, predicts normals (and a concentration ``kappa``) at 1/8
scale and refines them pixel by pixel at 1/4, 1/2 and full scale with pointwise MLPs.

At inference every pixel is refined (the training-time uncertainty sampling is not used). The network reads RGB in
0..1 normalised with ImageNet's mean and std; the map is ``(normal + 1) / 2`` as RGB.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.efficientnet import EfficientNetEncoder, build_efficientnet
from sdapi.engine.annotators.weights import load_strict

ENCODER = "encoder.original_model."
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# The encoder outputs the decoder joins, by stage (the head comes last).
SKIP_STAGES = (0, 1, 2, 4)


class UpSample(nn.Module):
    """Upsample to the skip's size, concatenate it, two 3x3 conv + batch norm + leaky ReLU."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self._net = nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.BatchNorm2d(channels_out),
                                  nn.LeakyReLU(), nn.Conv2d(channels_out, channels_out, 3, padding=1),
                                  nn.BatchNorm2d(channels_out), nn.LeakyReLU())

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=True)
        return self._net(torch.cat([x, skip], dim=1))


def _mlp(channels_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(channels_in, hidden, 1), nn.ReLU(), nn.Conv1d(hidden, hidden, 1), nn.ReLU(),
                         nn.Conv1d(hidden, hidden, 1), nn.ReLU(), nn.Conv1d(hidden, 4, 1))


def normalized(out: torch.Tensor) -> torch.Tensor:
    """Unit normals and a positive concentration from the raw 4 channels."""
    x, y, z, kappa = torch.split(out, 1, dim=1)
    norm = torch.sqrt(x ** 2.0 + y ** 2.0 + z ** 2.0) + 1e-10
    return torch.cat([x / norm, y / norm, z / norm, F.elu(kappa) + 1.0 + 0.01], dim=1)


class NormalDecoder(nn.Module):
    def __init__(self, head: int, skips: list[int], widths: list[int], hidden: int):
        super().__init__()
        self.conv2 = nn.Conv2d(head, head, 1)
        channels = [head] + widths
        for index in range(4):
            setattr(self, f"up{index + 1}", UpSample(channels[index] + skips[3 - index], channels[index + 1]))
        self.out_conv_res8 = nn.Conv2d(widths[1], 4, 3, padding=1)
        self.out_conv_res4 = _mlp(widths[1] + 4, hidden)
        self.out_conv_res2 = _mlp(widths[2] + 4, hidden)
        self.out_conv_res1 = _mlp(widths[3] + 4, hidden)

    @staticmethod
    def _refine(mlp: nn.Sequential, features: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True)  # noqa: E731
        joined = torch.cat([up(features), up(coarse)], dim=1)
        batch, channels, height, width = joined.shape
        return normalized(mlp(joined.view(batch, channels, -1))).view(batch, 4, height, width)

    def forward(self, skips: list[torch.Tensor], head: torch.Tensor) -> torch.Tensor:
        d0 = self.conv2(head)
        d1 = self.up1(d0, skips[3])
        d2 = self.up2(d1, skips[2])
        d3 = self.up3(d2, skips[1])
        d4 = self.up4(d3, skips[0])
        out = normalized(self.out_conv_res8(d2))
        out = self._refine(self.out_conv_res4, d2, out)
        out = self._refine(self.out_conv_res2, d3, out)
        return self._refine(self.out_conv_res1, d4, out)


class NormalBae(nn.Module):
    def __init__(self, encoder: EfficientNetEncoder, decoder: NormalDecoder):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.original_model = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages, head = self.encoder.original_model(x)
        return self.decoder([stages[i] for i in SKIP_STAGES], head)


def build_normal_bae(state: dict[str, torch.Tensor]) -> NormalBae:
    """The network a ``scannet.pt`` state dict describes, loaded."""
    encoder = build_efficientnet(state, ENCODER)
    skips = [int(state[f"{ENCODER}blocks.{i}.{len(encoder.blocks[i]) - 1}.bn{'2' if i == 0 else '3'}.weight"].shape[0])
             for i in SKIP_STAGES]
    widths = [int(state[f"decoder.up{i}._net.0.weight"].shape[0]) for i in range(1, 5)]
    hidden = int(state["decoder.out_conv_res4.0.weight"].shape[0])
    decoder = NormalDecoder(int(state[f"{ENCODER}conv_head.weight"].shape[0]), skips, widths, hidden)
    return load_strict(NormalBae(encoder, decoder), state, "scannet.pt")


@torch.no_grad()
def run_normal_bae(net: NormalBae, image: np.ndarray, device: torch.device) -> np.ndarray:
    """The normal map (``H x W x 3`` uint8) of an ``H x W x 3`` uint8 RGB image whose sides are multiples of 32."""
    x = torch.from_numpy(image).float().to(device).permute(2, 0, 1)[None] / 255.0
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    normal = net.to(device)((x - mean) / std)[:, :3]
    normal = ((normal + 1) * 0.5).clip(0, 1)
    return (normal[0].permute(1, 2, 0).float().cpu().numpy() * 255.0).clip(0, 255).astype(np.uint8)
