"""Depth and normals (the extension's ``depth_midas`` and ``normal_midas``) from MiDaS v3's DPT-Hybrid,
``dpt_hybrid-midas-501f0c75.pt``.

DPT reads four feature maps: the hybrid backbone's first two stages (1/4 and 1/8 of the input) and the tokens of two
late transformer blocks (projected with the class token, reshaped to 1/16, the last one also to 1/32). Each is
brought to ``features`` channels and fused from coarse to fine by residual units with 2x bilinear upsampling; the
head upsamples once more to the input size and keeps depth non-negative. The extension feeds the padded image as
it is (no 384 resize), RGB scaled to -1..1, and derives the normal map from the raw depth with Sobel filters.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.midas_backbone import HybridVit, build_hybrid_vit
from sdapi.engine.annotators.weights import load_strict

PREFIX = "pretrained.model."
# timm's classifier head is in the file but DPT never uses it.
UNUSED = (PREFIX + "head.",)


class ProjectReadout(nn.Module):
    """Each patch token joined with the class token and projected back to the token width."""

    def __init__(self, dim: int):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        readout = tokens[:, :1].expand_as(tokens[:, 1:])
        return self.project(torch.cat([tokens[:, 1:], readout], dim=-1))


def _reassemble(dim: int, channels: int, downsample: bool) -> nn.Sequential:
    # Indices 1 and 2 held the original's transpose and unflatten, done in ``_to_map``.
    layers = [ProjectReadout(dim), nn.Identity(), nn.Identity(), nn.Conv2d(dim, channels, 1)]
    if downsample:
        layers.append(nn.Conv2d(channels, channels, 3, stride=2, padding=1))
    return nn.Sequential(*layers)


class ResidualUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FusionBlock(nn.Module):
    """Adds the (refined) skip features, refines, upsamples 2x and mixes with a 1x1 convolution."""

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualUnit(features)
        self.resConfUnit2 = ResidualUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = F.interpolate(self.resConfUnit2(x), scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Upsample2x(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class DptHybrid(nn.Module):
    """DPT-Hybrid with ``features`` channels in its decoder; the tapped blocks are the fourth-last and the last."""

    def __init__(self, encoder: HybridVit, widths: list[int], features: int, head_mid: int):
        super().__init__()
        dim = encoder.cls_token.shape[-1]
        self.pretrained = nn.Module()
        self.pretrained.model = encoder
        self.pretrained.act_postprocess3 = _reassemble(dim, widths[2], downsample=False)
        self.pretrained.act_postprocess4 = _reassemble(dim, widths[3], downsample=True)
        self.scratch = nn.Module()
        for index, width in enumerate(widths):
            setattr(self.scratch, f"layer{index + 1}_rn", nn.Conv2d(width, features, 3, padding=1, bias=False))
            setattr(self.scratch, f"refinenet{index + 1}", FusionBlock(features))
        self.scratch.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, 3, padding=1), Upsample2x(), nn.Conv2d(features // 2, head_mid, 3,
                                                                                     padding=1),
            nn.ReLU(), nn.Conv2d(head_mid, 1, 1), nn.ReLU(), nn.Identity())
        depth = len(encoder.blocks)
        self.taps = (depth - 4, depth - 1)

    @staticmethod
    def _to_map(post: nn.Sequential, tokens: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        x = post[0](tokens).transpose(1, 2).unflatten(2, (rows, cols))
        for layer in post[3:]:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = x.shape[-2] // HybridVit.patch, x.shape[-1] // HybridVit.patch
        (layer_1, layer_2), (tokens_3, tokens_4) = self.pretrained.model(x, self.taps)
        layer_3 = self._to_map(self.pretrained.act_postprocess3, tokens_3, rows, cols)
        layer_4 = self._to_map(self.pretrained.act_postprocess4, tokens_4, rows, cols)
        s = self.scratch
        path = s.refinenet4(s.layer4_rn(layer_4))
        path = s.refinenet3(path, s.layer3_rn(layer_3))
        path = s.refinenet2(path, s.layer2_rn(layer_2))
        path = s.refinenet1(path, s.layer1_rn(layer_1))
        return s.output_conv(path).squeeze(1)


def build_midas(state: dict[str, torch.Tensor]) -> DptHybrid:
    """The DPT-Hybrid a ``dpt_hybrid-midas-501f0c75.pt`` state dict describes, loaded."""
    widths = [int(state[f"scratch.layer{i}_rn.weight"].shape[1]) for i in range(1, 5)]
    features = int(state["scratch.layer1_rn.weight"].shape[0])
    head_mid = int(state["scratch.output_conv.2.weight"].shape[0])
    net = DptHybrid(build_hybrid_vit(state, PREFIX), widths, features, head_mid)
    return load_strict(net, state, "dpt_hybrid-midas-501f0c75.pt", ignored_prefixes=UNUSED)


@torch.no_grad()
def run_midas(net: DptHybrid, image: np.ndarray, device: torch.device, a: float = np.pi * 2.0,
              bg_threshold: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The depth map (``H x W`` uint8, near is bright) and the normal map (``H x W x 3`` uint8) of an
    ``H x W x 3`` uint8 RGB image whose sides are multiples of 32.

    Args:
        a: the normal's z component before normalising (the extension passes its default, 2 pi).
        bg_threshold: normalised depth below which the normal is flat (the "Normal Background Threshold").
    """
    x = torch.from_numpy(image).float().to(device).permute(2, 0, 1)[None] / 127.5 - 1.0
    depth = net.to(device)(x)[0].float()
    scaled = depth - torch.min(depth)
    scaled = (scaled / torch.max(scaled)).cpu().numpy()
    depth_image = (scaled * 255.0).clip(0, 255).astype(np.uint8)
    raw = depth.cpu().numpy()
    grad_x = cv2.Sobel(raw, cv2.CV_32F, 1, 0, ksize=3)
    grad_y = cv2.Sobel(raw, cv2.CV_32F, 0, 1, ksize=3)
    grad_x[scaled < bg_threshold] = 0
    grad_y[scaled < bg_threshold] = 0
    normal = np.stack([grad_x, grad_y, np.ones_like(grad_x) * a], axis=2)
    normal /= np.sum(normal ** 2.0, axis=2, keepdims=True) ** 0.5
    return depth_image, (normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)[:, :, ::-1]
