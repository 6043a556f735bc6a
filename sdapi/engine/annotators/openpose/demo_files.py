"""Random-weight OpenPose annotator files in the original layout, for tests and demos.

At ``divisor=1`` the files hold exactly the keys and shapes of lllyasviel/Annotators' ``body_pose_model.pth``,
``hand_pose_model.pth`` and ``facenet.pth``. A larger divisor narrows every hidden width (the input and output
channels stay), which keeps the files small and the networks fast while going through the same loading code.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sdapi.engine.annotators.openpose.loading import FILE_NAMES
from sdapi.engine.annotators.openpose.networks import (BODY_BACKBONE, CASCADE_BACKBONE, POOL, body_stage_layers,
                                                       cascade_stage_layers)

# Output channels of the backbones' convolutions, in order (POOL entries skipped).
BODY_BACKBONE_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 256, 128)
CASCADE_BACKBONE_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 128)
BODY_FIELDS, BODY_HEATMAPS, HAND_HEATMAPS, FACE_HEATMAPS = 38, 19, 22, 71

Layer = tuple[str, int, int, int]  # name, input channels, output channels, kernel size


def _backbone(names: tuple[str, ...], widths: tuple[int, ...], divisor: int) -> list[Layer]:
    layers, in_ch = [], 3
    for name, out_ch in zip((n for n in names if n != POOL), widths):
        out_ch = max(1, out_ch // divisor)
        layers.append((name, in_ch, out_ch, 3))
        in_ch = out_ch
    return layers


def _stage(names: tuple[str, ...], in_ch: int, kernel: int, outputs: int, first: bool, divisor: int) -> list[Layer]:
    """A stage: ``kernel`` convolutions at 128 channels, then two 1x1 ones, through 512 channels in the first stage
    and 128 in the later ones, to ``outputs``."""
    layers = []
    for i, name in enumerate(names):
        if i == len(names) - 1:
            out_ch, size = outputs, 1
        elif i == len(names) - 2:
            out_ch, size = max(1, (512 if first else 128) // divisor), 1
        else:
            out_ch, size = max(1, 128 // divisor), kernel
        layers.append((name, in_ch, out_ch, size))
        in_ch = out_ch
    return layers


def body_layers(divisor: int = 1) -> list[Layer]:
    """The body file's convolutions."""
    layers = _backbone(BODY_BACKBONE, BODY_BACKBONE_WIDTHS, divisor)
    features = layers[-1][2]
    for stage in range(1, 7):
        in_ch = features if stage == 1 else BODY_FIELDS + BODY_HEATMAPS + features
        for branch, outputs in ((1, BODY_FIELDS), (2, BODY_HEATMAPS)):
            layers += _stage(body_stage_layers(stage, branch), in_ch, 3 if stage == 1 else 7, outputs, stage == 1,
                             divisor)
    return layers


def cascade_layers(outputs: int, divisor: int = 1) -> list[Layer]:
    """The hand (``outputs`` 22) or face (71) file's convolutions."""
    layers = _backbone(CASCADE_BACKBONE, CASCADE_BACKBONE_WIDTHS, divisor)
    features = layers[-1][2]
    for stage in range(1, 7):
        in_ch = features if stage == 1 else outputs + features
        layers += _stage(cascade_stage_layers(stage), in_ch, 7, outputs, stage == 1, divisor)
    return layers


def random_state_dict(layers: list[Layer], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """He-initialised weights (so activations neither vanish nor blow up through the ReLUs) and small biases."""
    state = {}
    for name, in_ch, out_ch, kernel in layers:
        fan_in = in_ch * kernel * kernel
        state[f"{name}.weight"] = torch.randn(out_ch, in_ch, kernel, kernel, generator=generator) * (2 / fan_in) ** 0.5
        state[f"{name}.bias"] = torch.randn(out_ch, generator=generator) * 0.01
    return state


def write_random_openpose_files(folder: Path, seed: int = 0, divisor: int = 1,
                                parts: tuple[str, ...] = ("body", "hand", "face")) -> dict[str, Path]:
    """Write the chosen parts' files under their extension names in ``folder``; ``load_openpose``'s ``files``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plans = {"body": lambda: body_layers(divisor), "hand": lambda: cascade_layers(HAND_HEATMAPS, divisor),
             "face": lambda: cascade_layers(FACE_HEATMAPS, divisor)}
    files = {}
    for part in parts:
        # One stream per part, so a part's weights do not depend on which others are written.
        generator = torch.Generator().manual_seed(seed * 3 + list(plans).index(part))
        files[part] = folder / FILE_NAMES[part]
        torch.save(random_state_dict(plans[part](), generator), files[part])
    return files
