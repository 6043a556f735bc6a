"""The ControlNet annotator networks, file by file: each reads the original key layout (random narrow files written
by code), rejects a file of another network, and keeps the arithmetic around the network that the extension has
(checked here with weights set by hand so the expected map is known)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdapi.engine.annotators.cache import AnnotatorCache
from sdapi.engine.annotators.demo_files import write_random_annotators
from sdapi.engine.annotators.hed import HedNet, build_hed, run_hed
from sdapi.engine.annotators.lineart import LineartGenerator, build_lineart, run_lineart
from sdapi.engine.annotators.lineart_anime import run_lineart_anime
from sdapi.engine.annotators.midas import run_midas
from sdapi.engine.annotators.midas_backbone import StdConv2dSame, _same_padding
from sdapi.engine.annotators.weights import AnnotatorFileError, read_state_dict
from sdapi.engine.errors import UnsupportedRequest

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("annotators")
    write_random_annotators(folder)
    return folder


def picture(height: int = 64, width: int = 96) -> np.ndarray:
    return (np.random.RandomState(0).rand(height, width, 3) * 255).astype(np.uint8)


FILES = [("hed", "hed/ControlNetHED.pth"), ("lineart", "lineart/sk_model.pth"),
         ("lineart", "lineart/sk_model2.pth"), ("lineart_anime", "lineart_anime/netG.pth"),
         ("midas", "midas/dpt_hybrid-midas-501f0c75.pt"), ("pidinet", "pidinet/table5_pidinet.pth"),
         ("normal_bae", "normal_bae/scannet.pt"), ("leres", "leres/res101.pth"),
         ("uniformer", "uniformer/upernet_global_small.pth"), ("mlsd", "mlsd/mlsd_large_512_fp32.pth")]


@pytest.mark.parametrize("network, relative", FILES)
def test_each_file_loads_and_maps_the_whole_image(root, network, relative):
    detected, poses = AnnotatorCache(CPU).run(network, {"model": root / relative}, picture(), {})
    assert detected.shape[:2] == (64, 96) and detected.dtype == np.uint8 and poses is None
    assert detected.std() > 1  # random weights still give a map, not a constant


@pytest.mark.parametrize("network, relative", FILES)
def test_a_file_of_another_network_is_refused_as_a_bad_request(root, network, relative):
    other = root / ("lineart/sk_model.pth" if network != "lineart" else "hed/ControlNetHED.pth")
    with pytest.raises(UnsupportedRequest, match="does not match|KeyError|not"):
        AnnotatorCache(CPU).run(network, {"model": other}, picture(), {})


def test_unreadable_and_non_state_dict_files_are_refused(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    for name in ("junk.pth", "list.pth"):
        with pytest.raises(AnnotatorFileError):
            read_state_dict(tmp_path / name)


def test_a_wrapped_state_dict_is_unwrapped(root):
    raw = torch.load(root / "pidinet/table5_pidinet.pth", weights_only=True)
    assert set(raw) == {"state_dict"}
    assert "init_block.weight" in read_state_dict(root / "pidinet/table5_pidinet.pth")


@pytest.mark.parametrize("op", ["cv", "cd", "ad", "rd"])
def test_pixel_difference_convolutions_ignore_a_flat_image_except_vanilla(op):
    from sdapi.engine.annotators.pidinet import difference_conv

    weight = torch.randn(2, 1, 3, 3)
    flat = torch.full((1, 2, 9, 9), 3.0)
    out = difference_conv(op, flat, weight, groups=2)[:, :, 2:-2, 2:-2]  # away from the zero padding
    if op == "cv":
        assert torch.allclose(out, 3.0 * weight.sum(dim=[1, 2, 3]).view(1, 2, 1, 1).expand_as(out), atol=1e-5)
    else:
        assert out.abs().max() < 1e-4  # differences of equal pixels


def test_pidinet_variants(root):
    from sdapi.engine.annotators.pidinet import run_pidinet

    net = AnnotatorCache(CPU).built("pidinet", {"model": root / "pidinet/table5_pidinet.pth"})
    assert set(np.unique(run_pidinet(net, picture(), CPU, binary=True))) <= {0, 255}
    assert set(np.unique(run_pidinet(net, picture(), CPU, safe=True))) <= {0, 127, 255}


def test_data_parallel_prefixes_are_removed(root):
    raw = torch.load(root / "lineart_anime/netG.pth", weights_only=True)
    assert all(k.startswith("module.") for k in raw)
    assert not any(k.startswith("module.") for k in read_state_dict(root / "lineart_anime/netG.pth"))


def test_the_cache_reads_a_file_once_and_again_when_it_changes(root, tmp_path):
    cache = AnnotatorCache(CPU)
    path = tmp_path / "ControlNetHED.pth"
    path.write_bytes((root / "hed/ControlNetHED.pth").read_bytes())
    for _ in range(2):
        cache.run("hed", {"model": path}, picture(), {})
    assert cache.loads == 1
    path.write_bytes((root / "hed/ControlNetHED.pth").read_bytes())
    import os
    os.utime(path, ns=(1, 10**18))
    cache.run("hed", {"model": path}, picture(), {})
    assert cache.loads == 2


def _zero_hed(projection_biases: list[float]) -> HedNet:
    net = HedNet([4, 4, 4, 4, 4], [2, 2, 3, 3, 3])
    state = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    for index, bias in enumerate(projection_biases):
        state[f"block{index + 1}.projection.bias"] = torch.tensor([bias])
    return build_hed(state)


def test_hed_averages_its_five_projections_through_a_sigmoid():
    net = _zero_hed([0.0, 1.0, 2.0, -1.0, 3.0])  # mean 1.0
    edge = run_hed(net, picture(), CPU)
    assert (edge == int(255 / (1 + np.exp(-1.0)))).all()


def test_safe_hed_quantises_to_three_levels():
    levels = {int(run_hed(_zero_hed([b] * 5), picture(), CPU, safe=True)[0, 0]) for b in (-3.0, -0.2, 0.3, 3.0)}
    assert levels == {0, 127, 255}
    edge = run_hed(build_hed(torch.load(_write_random_hed(), weights_only=True)), picture(), CPU, safe=True)
    assert set(np.unique(edge)) <= {0, 127, 255}


def _write_random_hed():
    import tempfile
    from pathlib import Path
    folder = Path(tempfile.mkdtemp())
    write_random_annotators(folder, seed=5)
    return folder / "hed/ControlNetHED.pth"


def test_lineart_reads_rgb_in_zero_to_one_and_draws_through_a_sigmoid():
    net = LineartGenerator(4, 1)
    state = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    state["model4.1.bias"] = torch.tensor([2.0])
    line = run_lineart(build_lineart(state, "sk_model.pth"), picture(), CPU)
    assert (line == int(255 / (1 + np.exp(-2.0)))).all()


def test_anime_lineart_keeps_any_input_size(root):
    net = AnnotatorCache(CPU).built("lineart_anime", {"model": root / "lineart_anime/netG.pth"})
    assert run_lineart_anime(net, picture(70, 130), CPU).shape == (70, 130)


def test_midas_depth_spans_the_full_range_and_normals_are_unit_vectors(root):
    net = AnnotatorCache(CPU).built("midas", {"model": root / "midas/dpt_hybrid-midas-501f0c75.pt"})
    depth, normal = run_midas(net, picture(64, 128), CPU, bg_threshold=0.0)
    assert depth.shape == (64, 128) and depth.min() == 0 and depth.max() == 255
    vectors = (normal[:, :, ::-1].astype(np.float64) - 127.5) / 127.5
    assert np.allclose(np.linalg.norm(vectors, axis=2), 1.0, atol=0.02)


def test_midas_background_normals_point_at_the_viewer(root):
    net = AnnotatorCache(CPU).built("midas", {"model": root / "midas/dpt_hybrid-midas-501f0c75.pt"})
    depth, normal = run_midas(net, picture(64, 128), CPU, bg_threshold=1.01)  # everything is background
    assert (normal == np.array([255, 127, 127], dtype=np.uint8)).all()  # BGR->RGB of (0, 0, 1)


def test_leres_cuts_near_and_far_by_percent(root):
    from sdapi.engine.annotators.leres import run_leres

    net = AnnotatorCache(CPU).built("leres", {"model": root / "leres/res101.pth"})
    full = run_leres(net, picture(), CPU)
    assert full.min() == 0 and full.max() == 255  # stretched over the whole range, then inverted
    near_cut = run_leres(net, picture(), CPU, remove_near=50)
    # The cut zeroes the stretched depth below half before the inversion, so those pixels end white.
    assert (near_cut[full > 128] == 255).all() and (near_cut[full < 127] == full[full < 127]).all()
    far_cut = run_leres(net, picture(), CPU, remove_background=50)
    assert (far_cut[full <= 127] == 0).all() and (far_cut[full > 128] == full[full > 128]).all()


def test_segmentation_paints_ade20k_classes(root):
    from sdapi.engine.annotators.ade20k_palette import PALETTE
    from sdapi.engine.annotators.segmentation import run_segmentation

    net = AnnotatorCache(CPU).built("uniformer", {"model": root / "uniformer/upernet_global_small.pth"})
    painted = run_segmentation(net, picture(64, 96), CPU)
    colours = {tuple(c) for c in painted.reshape(-1, 3)}
    assert painted.shape == (64, 96, 3) and colours <= {tuple(c) for c in PALETTE}
    assert PALETTE.shape == (150, 3) and tuple(PALETTE[0]) == (120, 120, 120)  # "wall"


def test_normal_bae_maps_unit_normals(root):
    from sdapi.engine.annotators.normal_bae import run_normal_bae

    net = AnnotatorCache(CPU).built("normal_bae", {"model": root / "normal_bae/scannet.pt"})
    normal = run_normal_bae(net, picture(64, 96), CPU)
    vectors = normal.astype(np.float64) / 255.0 * 2 - 1
    assert normal.shape == (64, 96, 3)
    assert np.allclose(np.linalg.norm(vectors, axis=2), 1.0, atol=0.03)  # uint8 rounding of a unit vector


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (64, 7, 2, (2, 3)), (32, 3, 2, (0, 1)), (32, 1, 2, (0, 0)), (33, 3, 2, (1, 1)), (16, 3, 1, (1, 1))])
def test_tensorflow_same_padding(size, kernel, stride, expected):
    assert _same_padding(size, kernel, stride) == expected


def test_standardised_convolution_ignores_the_weights_scale():
    conv = StdConv2dSame(3, 4, 3, 2)
    x = torch.randn(1, 3, 16, 16)
    before = conv(x)
    with torch.no_grad():
        conv.weight.mul_(7.0).add_(0.0)
    assert torch.allclose(before, conv(x), atol=1e-5)
