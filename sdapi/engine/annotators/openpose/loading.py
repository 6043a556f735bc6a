"""Loading the extension's OpenPose annotator files into ``OpenposeNets``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sdapi.engine.annotators.openpose.networks import BodyNet, CascadeNet
from sdapi.engine.annotators.weights import read_state_dict

# The keys of ``load_openpose``'s ``files`` and the extension's file names for them (lllyasviel/Annotators).
FILE_NAMES = {"body": "body_pose_model.pth", "hand": "hand_pose_model.pth", "face": "facenet.pth"}


@dataclass
class OpenposeNets:
    """The loaded networks on ``device``; a part whose file was not given is ``None``.

    ``body`` maps an image batch to ``(part affinity fields, heatmaps)``, ``hand`` and ``face`` to heatmaps.
    """

    device: torch.device
    body: nn.Module | None = None
    hand: nn.Module | None = None
    face: nn.Module | None = None


def load_openpose(files: dict[str, Path], device: torch.device) -> OpenposeNets:
    """Load the annotator files given under ``body``, ``hand`` and ``face`` (see ``FILE_NAMES``).

    Raises:
        ValueError: an unknown key, or a file without the original layer names.
        AnnotatorFileError: an unreadable file.
    """
    unknown = set(files) - set(FILE_NAMES)
    if unknown:
        raise ValueError(f"unknown OpenPose parts {sorted(unknown)}; expected {sorted(FILE_NAMES)}")
    nets = OpenposeNets(torch.device(device))
    for part, path in files.items():
        state = read_state_dict(path)
        net = BodyNet(state) if part == "body" else CascadeNet(state)
        setattr(nets, part, net.eval().to(nets.device))
    return nets
