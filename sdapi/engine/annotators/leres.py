"""Depth from LeReS (the extension's ``depth_leres``, ``res101.pth``): a ResNeXt-101 32x8d encoder and a decoder of
feature-transfer blocks that fuses its four stages from coarse to fine.

The extension feeds the padded image channel-reversed and normalised with ImageNet's mean and std but *not*
divided by 255 (it hands float pixels to ``ToTensor``, which then leaves them as they are); the depth is stretched
to 16 bits, brought to 8, optionally cut near (slider 1, percent), inverted, and optionally cut far (slider 2).
Block counts, widths and groups come from the file; the upsampling factors are the architecture's.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.weights import count_indexed, load_strict

ENCODER = "depth_model.encoder_modules.encoder."
DECODER = "depth_model.decoder_modules."
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Bottleneck(nn.Module):
    """ResNeXt's 1x1, grouped 3x3 (strided), 1x1 block with batch norm, added to the (projected) input."""

    def __init__(self, channels_in: int, width: int, channels_out: int, groups: int, stride: int, project: bool):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels_in, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out)
        self.downsample = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                                        nn.BatchNorm2d(channels_out)) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNeXt(nn.Module):
    """7x7 stem, max pooling and four stages; :meth:`forward` returns each stage's output."""

    def __init__(self, stem: int, stages: list[list[Bottleneck]]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        for index, blocks in enumerate(stages):
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        features = []
        for index in range(4):
            x = getattr(self, f"layer{index + 1}")(x)
            features.append(x)
        return features


class FeatureTransfer(nn.Module):
    """3x3 conv, then a residual branch (ReLU, conv, BN, ReLU, conv), then ReLU."""

    def __init__(self, channels_in: int, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, padding=1)
        self.conv_branch = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                         nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3,
                                                                                        padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The original's branch starts with an in-place ReLU, so the sum adds the branch to the rectified input.
        x = F.relu(self.conv1(x))
        return F.relu(x + self.conv_branch[1:](x))


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class FeatureFusion(nn.Module):
    """The skip features transferred, added to the coarser path, transferred again and upsampled 2x."""

    def __init__(self, channels_in: int, channels: int, channels_out: int):
        super().__init__()
        self.ftb1 = FeatureTransfer(channels_in, channels)
        self.ftb2 = FeatureTransfer(channels, channels_out)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return _up2(self.ftb2(self.ftb1(skip) + coarse))


class DepthDecoder(nn.Module):
    def __init__(self, inputs: list[int], mids: list[int]):
        super().__init__()
        self.conv = FeatureTransfer(inputs[3], mids[3])
        self.conv1 = nn.Conv2d(mids[3], mids[2], 3, padding=1)
        self.ffm2 = FeatureFusion(inputs[2], mids[2], mids[2])
        self.ffm1 = FeatureFusion(inputs[1], mids[1], mids[1])
        self.ffm0 = FeatureFusion(inputs[0], mids[0], mids[0])
        self.outconv = nn.Module()
        self.outconv.adapt_conv = nn.Sequential(nn.Conv2d(mids[0], mids[0] // 2, 3, padding=1),
                                                nn.BatchNorm2d(mids[0] // 2), nn.ReLU(),
                                                nn.Conv2d(mids[0] // 2, 1, 3, padding=1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = _up2(self.conv1(self.conv(features[3])))
        x = self.ffm2(features[2], x)
        x = self.ffm1(features[1], x)
        x = self.ffm0(features[0], x)
        return _up2(self.outconv.adapt_conv(x))


class LeresDepth(nn.Module):
    def __init__(self, encoder: ResNeXt, decoder: DepthDecoder):
        super().__init__()
        self.depth_model = nn.Module()
        self.depth_model.encoder_modules = nn.Module()
        self.depth_model.encoder_modules.encoder = encoder
        self.depth_model.decoder_modules = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.depth_model.decoder_modules(self.depth_model.encoder_modules.encoder(x))


def _stage(state: dict[str, torch.Tensor], index: int) -> list[Bottleneck]:
    prefix = f"{ENCODER}layer{index + 1}."
    blocks = []
    for number in range(count_indexed(state, prefix)):
        block = f"{prefix}{number}."
        conv2 = state[f"{block}conv2.weight"]
        width = int(conv2.shape[0])
        blocks.append(Bottleneck(int(state[f"{block}conv1.weight"].shape[1]), width,
                                 int(state[f"{block}conv3.weight"].shape[0]), width // int(conv2.shape[1]),
                                 2 if index > 0 and number == 0 else 1, f"{block}downsample.0.weight" in state))
    return blocks


def build_leres(state: dict[str, torch.Tensor]) -> LeresDepth:
    """The network a ``res101.pth`` state dict describes, loaded."""
    stages = [_stage(state, i) for i in range(4)]
    encoder = ResNeXt(int(state[f"{ENCODER}conv1.weight"].shape[0]), stages)
    inputs = [stage[-1].conv3.out_channels for stage in stages]
    mids = [int(state[f"{DECODER}ffm{i}.ftb1.conv1.weight"].shape[0]) for i in range(3)]
    mids.append(int(state[f"{DECODER}conv.conv1.weight"].shape[0]))
    return load_strict(LeresDepth(encoder, DepthDecoder(inputs, mids)), state, "res101.pth")


@torch.no_grad()
def run_leres(net: LeresDepth, image: np.ndarray, device: torch.device, remove_near: float = 0.0,
              remove_background: float = 0.0) -> np.ndarray:
    """The depth map (``H x W`` uint8, near is bright) of an ``H x W x 3`` uint8 RGB image whose sides are multiples
    of 32; ``remove_near`` and ``remove_background`` are percentages (0: keep everything)."""
    height, width = image.shape[:2]
    pixels = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1]).astype(np.float32)).permute(2, 0, 1)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    depth = net.to(device)(((pixels - mean) / std)[None].to(device)).squeeze().float().cpu().numpy()
    depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_CUBIC)
    low, high = depth.min(), depth.max()
    wide = 65535 * (depth - low) / (high - low) if high - low > np.finfo("float").eps else np.zeros(depth.shape)
    depth_image = cv2.convertScaleAbs(wide.astype("uint16"), alpha=255.0 / 65535.0)
    if remove_near != 0:
        depth_image = cv2.threshold(depth_image, remove_near / 100 * 255, 255, cv2.THRESH_TOZERO)[1]
    depth_image = cv2.bitwise_not(depth_image)
    if remove_background != 0:
        depth_image = cv2.threshold(depth_image, remove_background / 100 * 255, 255, cv2.THRESH_TOZERO)[1]
    return depth_image
