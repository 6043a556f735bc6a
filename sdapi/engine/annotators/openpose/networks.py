"""The three OpenPose CNNs, built from the state dicts of the extension's annotator files.

All three are a VGG-style backbone followed by six refinement stages, each stage seeing the backbone features
concatenated with the previous stage's output:

* ``BodyNet`` (``body_pose_model.pth``): two branches per stage, 38 part-affinity-field channels (``..._L1``)
  and 19 heatmap channels (``..._L2``, 18 parts and the background).
* ``CascadeNet`` for ``hand_pose_model.pth`` (22 heatmaps: 21 hand points and the background) and
  ``facenet.pth`` (71 heatmaps: 70 face points and the background). The two files use the same layer names.

The files keep the original Caffe layer names without any module prefix (``conv1_1.weight``,
``Mconv7_stage6_L2.bias``...). Each convolution is sized from its weight's shape, so any channel widths load
(the tests write narrow files); kernels are square with "same" padding.
"""

from __future__ import annotations

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]

# A 2x2 max pool between convolutions (floor mode, as Caffe's VGG).
POOL = "pool"

BODY_BACKBONE = ("conv1_1", "conv1_2", POOL, "conv2_1", "conv2_2", POOL, "conv3_1", "conv3_2", "conv3_3", "conv3_4",
                 POOL, "conv4_1", "conv4_2", "conv4_3_CPM", "conv4_4_CPM")
CASCADE_BACKBONE = ("conv1_1", "conv1_2", POOL, "conv2_1", "conv2_2", POOL, "conv3_1", "conv3_2", "conv3_3",
                    "conv3_4", POOL, "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2", "conv5_3_CPM")


def body_stage_layers(stage: int, branch: int) -> tuple[str, ...]:
    """The layer names of one body stage's branch (1: part affinity fields, 2: heatmaps)."""
    if stage == 1:
        return tuple(f"conv5_{i}_CPM_L{branch}" for i in range(1, 6))
    return tuple(f"Mconv{i}_stage{stage}_L{branch}" for i in range(1, 8))


def cascade_stage_layers(stage: int) -> tuple[str, ...]:
    """The layer names of one hand or face stage."""
    if stage == 1:
        return ("conv6_1_CPM", "conv6_2_CPM")
    return tuple(f"Mconv{i}_stage{stage}" for i in range(1, 8))


def body_layer_names() -> list[str]:
    """Every convolution ``body_pose_model.pth`` holds, in network order."""
    names = [n for n in BODY_BACKBONE if n != POOL]
    for stage in range(1, 7):
        names += body_stage_layers(stage, 1) + body_stage_layers(stage, 2)
    return names


def cascade_layer_names() -> list[str]:
    """Every convolution ``hand_pose_model.pth`` and ``facenet.pth`` hold, in network order."""
    names = [n for n in CASCADE_BACKBONE if n != POOL]
    for stage in range(1, 7):
        names += cascade_stage_layers(stage)
    return names


def _conv(state: StateDict, name: str) -> nn.Conv2d:
    try:
        weight, bias = state[f"{name}.weight"], state[f"{name}.bias"]
    except KeyError as missing:
        raise ValueError(f"not an OpenPose annotator file: no {missing.args[0]}") from None
    out_ch, in_ch, k, _ = weight.shape
    conv = nn.Conv2d(in_ch, out_ch, k, 1, k // 2, device="meta")
    conv.weight = nn.Parameter(weight.float(), requires_grad=False)
    conv.bias = nn.Parameter(bias.float(), requires_grad=False)
    return conv


def conv_chain(state: StateDict, names: tuple[str, ...], relu_last: bool = False) -> nn.Sequential:
    """The named convolutions in order, each followed by a ReLU except the last (unless ``relu_last``)."""
    layers: list[nn.Module] = []
    for i, name in enumerate(names):
        if name == POOL:
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(_conv(state, name))
        if i < len(names) - 1 or relu_last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BodyNet(nn.Module):
    """Body pose: image -> (part affinity fields, heatmaps) at 1/8 resolution."""

    def __init__(self, state: StateDict):
        super().__init__()
        self.backbone = conv_chain(state, BODY_BACKBONE, relu_last=True)
        # The extension's list of ReLU-less layers names Mconv7_stage6_L1 twice and never Mconv7_stage6_L2, so its
        # final heatmaps pass through a ReLU; kept, since it changes which peaks exist.
        self.pafs = nn.ModuleList(conv_chain(state, body_stage_layers(s, 1)) for s in range(1, 7))
        self.heatmaps = nn.ModuleList(conv_chain(state, body_stage_layers(s, 2), relu_last=s == 6)
                                      for s in range(1, 7))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        stage_in = features
        for paf_branch, heat_branch in zip(self.pafs, self.heatmaps):
            pafs, heatmaps = paf_branch(stage_in), heat_branch(stage_in)
            stage_in = torch.cat([pafs, heatmaps, features], 1)
        return pafs, heatmaps


class CascadeNet(nn.Module):
    """Hand or face keypoints: image -> the last stage's heatmaps at 1/8 resolution."""

    def __init__(self, state: StateDict):
        super().__init__()
        self.backbone = conv_chain(state, CASCADE_BACKBONE, relu_last=True)
        self.stages = nn.ModuleList(conv_chain(state, cascade_stage_layers(s)) for s in range(1, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        out = self.stages[0](features)
        for stage in self.stages[1:]:
            out = stage(torch.cat([out, features], 1))
        return out
