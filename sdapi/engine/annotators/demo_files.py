"""Random-weight annotator files in the original layouts, narrow so tests stay fast: the same loaders read them as
read the real files (widths and depths come from the tensors)."""

from __future__ import annotations

from pathlib import Path

import torch

from sdapi.engine.annotators.efficientnet import DepthwiseSeparable, EfficientNetEncoder, InvertedResidual
from sdapi.engine.annotators.hed import HedNet
from sdapi.engine.annotators.leres import Bottleneck, DepthDecoder, LeresDepth, ResNeXt
from sdapi.engine.annotators.lineart import LineartGenerator
from sdapi.engine.annotators.lineart_anime import AnimeUnet
from sdapi.engine.annotators.midas import DptHybrid
from sdapi.engine.annotators.midas_backbone import HybridVit, ResNetBackbone
from sdapi.engine.annotators.mlsd import MlsdNet
from sdapi.engine.annotators.normal_bae import NormalBae, NormalDecoder
from sdapi.engine.annotators.openpose.demo_files import write_random_openpose_files
from sdapi.engine.annotators.pidinet import PiDiNet
from sdapi.engine.annotators.segmentation import UperHead, UperNet
from sdapi.engine.annotators.uniformer import UniFormer


def _randomized(module: torch.nn.Module, seed: int, scale: float) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = module.state_dict()
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            value.copy_(1.0 + 0.1 * torch.rand(value.shape, generator=generator))
        elif key.endswith("weight") and value.ndim == 1:  # a norm's scale
            value.copy_(1.0 + 0.1 * torch.randn(value.shape, generator=generator))
        else:
            value.copy_(scale * torch.randn(value.shape, generator=generator))
    return state


def _tiny_midas() -> DptHybrid:
    backbone = ResNetBackbone(32, [(32, 64, 1), (32, 64, 1), (32, 128, 1)])
    encoder = HybridVit(backbone, 128, dim=64, hidden=128, depth=12, grid=4)
    return DptHybrid(encoder, [64, 64, 64, 64], features=32, head_mid=8)


def _tiny_normal_bae() -> NormalBae:
    # (channels in, mid, out, kernel, stride) per stage, one block each; the strides are the architecture's.
    stages = [(16, 16, 16, 3, 2), (16, 16, 16, 5, 2), (16, 16, 16, 3, 2), (16, 16, 24, 5, 1), (24, 24, 24, 5, 2),
              (24, 24, 32, 3, 1)]
    blocks = [[DepthwiseSeparable(8, 16, 3, 1, 2)]] + [[InvertedResidual(i, m, o, k, s, 4)] for i, m, o, k, s in stages]
    encoder = EfficientNetEncoder(8, blocks, 32, 64)
    return NormalBae(encoder, NormalDecoder(64, [16, 16, 16, 24], [32, 16, 16, 8], 8))


def _tiny_leres() -> LeresDepth:
    # (channels in, width, out) per stage, two blocks each, 4 groups; stages 2-4 halve the size.
    shapes = [(16, 8, 16), (16, 16, 32), (32, 16, 32), (32, 16, 64)]
    stages = [[Bottleneck(c_in if b == 0 else c_out, width, c_out, 4, 2 if s > 0 and b == 0 else 1, b == 0)
               for b in range(2)] for s, (c_in, width, c_out) in enumerate(shapes)]
    return LeresDepth(ResNeXt(16, stages), DepthDecoder([16, 32, 32, 64], [8, 8, 8, 16]))


def _tiny_upernet() -> UperNet:
    return UperNet(UniFormer([16, 16, 32, 32], [1, 1, 1, 1], [32, 32, 64, 64]), UperHead([16, 16, 32, 32], 16, 150))


def _tiny_mlsd() -> MlsdNet:
    # Stage widths (hidden, output); a stage expands where hidden differs from its input, as in the real file.
    stages = [(8, 4)] + [(16, 8)] * 5 + [(16, 16)] + [(32, 16)] * 6
    return MlsdNet(8, stages, width=8)


def write_random_annotators(root: Path, seed: int = 0) -> list[Path]:
    """Write ``hed/ControlNetHED.pth``, ``lineart/sk_model.pth``, ``lineart/sk_model2.pth``,
    ``lineart_anime/netG.pth``, ``midas/dpt_hybrid-midas-501f0c75.pt``, ``pidinet/table5_pidinet.pth``,
    ``normal_bae/scannet.pt``, ``leres/res101.pth``, ``uniformer/upernet_global_small.pth``,
    ``mlsd/mlsd_large_512_fp32.pth`` and OpenPose's three files in ``openpose/`` under ``root`` (the annotator
    folder); their paths."""
    mlsd = _randomized(_tiny_mlsd(), seed + 7, 0.3)
    # The last layer scaled so centre logits spread around 0 and segments are 5 to 20 pixels long, as the sliders
    # expect (unscaled, every score is near 0 and every segment longer than the distance slider reaches).
    mlsd["block23.conv3.weight"].mul_(0.2)[7].mul_(0.25)
    mlsd["block23.conv3.bias"].zero_()[7] = 2.5
    midas = _randomized(_tiny_midas(), seed + 4, 0.05)
    midas["scratch.output_conv.4.bias"].fill_(1.0)  # keep the non-negative depth away from an all-zero map
    midas["scratch.output_conv.4.weight"].mul_(40.0)
    midas["pretrained.model.head.weight"] = torch.zeros(10, 64)  # timm's unused classifier, as in the real file
    midas["pretrained.model.head.bias"] = torch.zeros(10)
    files = {
        "hed/ControlNetHED.pth": _randomized(HedNet([8, 16, 16, 32, 32], [2, 2, 3, 3, 3]), seed, 0.1),
        "lineart/sk_model.pth": _randomized(LineartGenerator(8, 3), seed + 1, 0.2),
        "lineart/sk_model2.pth": _randomized(LineartGenerator(8, 3), seed + 2, 0.2),
        "lineart_anime/netG.pth": {f"module.{k}": v for k, v in
                                   _randomized(AnimeUnet(4), seed + 3, 0.1).items()},
        "midas/dpt_hybrid-midas-501f0c75.pt": midas,
        # The release wraps its DataParallel weights in "state_dict".
        "pidinet/table5_pidinet.pth": {"state_dict": {f"module.{k}": v for k, v in
                                                      _randomized(PiDiNet(8, 4), seed + 5, 0.3).items()}},
        "normal_bae/scannet.pt": {"model": {f"module.{k}": v for k, v in
                                            _randomized(_tiny_normal_bae(), seed + 6, 0.2).items()}},
        "leres/res101.pth": {"depth_model": {f"module.{k}": v for k, v in
                                             _randomized(_tiny_leres(), seed + 7, 0.2).items()}},
        "uniformer/upernet_global_small.pth": {"meta": {}, "state_dict": _randomized(_tiny_upernet(), seed + 8, 0.2)},
        "mlsd/mlsd_large_512_fp32.pth": mlsd,
    }
    written = list(write_random_openpose_files(Path(root) / "openpose", seed, divisor=8).values())
    for relative, state in files.items():
        path = Path(root) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        written.append(path)
    return written
