"""M-LSD (the ``mlsd`` preprocessor): the loader reads the original layout at the real widths and the narrow test
ones, the decoding turns constructed centre/displacement maps into the segments the extension finds, the two
thresholds drop what they should, and the drawing is one-pixel white lines on black at twice the prediction's
scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdapi.engine.annotators.cache import AnnotatorCache
from sdapi.engine.annotators.demo_files import write_random_annotators
from sdapi.engine.annotators.mlsd import (
    MlsdNet,
    build_mlsd,
    draw_segments,
    line_candidates,
    pred_lines,
    run_mlsd,
)
from sdapi.engine.annotators.weights import AnnotatorFileError, read_state_dict

CPU = torch.device("cpu")
# The real file's trunk: (hidden, output) of MobileNetV2's stages 1..13, and the decoder's width.
REAL_STAGES = [(32, 16), (96, 24), (144, 24), (144, 32), (192, 32), (192, 32), (192, 64), (384, 64), (384, 64),
               (384, 64), (384, 96), (576, 96), (576, 96)]


@pytest.fixture(scope="module")
def mlsd_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("annotators")
    write_random_annotators(folder)
    return folder / "mlsd/mlsd_large_512_fp32.pth"


def test_the_real_layout_has_the_original_keys_and_shapes():
    state = MlsdNet(32, REAL_STAGES, 64).state_dict()
    assert len(state) == 362
    expected = {
        "backbone.features.0.0.weight": (32, 4, 3, 3),  # RGB and the constant plane
        "backbone.features.1.conv.0.0.weight": (32, 1, 3, 3),  # stage 1: no expansion, depthwise first
        "backbone.features.1.conv.1.weight": (16, 32, 1, 1),
        "backbone.features.2.conv.0.0.weight": (96, 16, 1, 1),  # later stages expand six-fold
        "backbone.features.2.conv.3.running_var": (24,),
        "backbone.features.13.conv.2.weight": (96, 576, 1, 1),
        "block15.conv1.0.weight": (64, 96, 1, 1),
        "block15.conv2.0.weight": (64, 64, 1, 1),
        "block16.conv1.0.weight": (128, 128, 3, 3),
        "block21.conv2.0.weight": (64, 16, 1, 1),
        "block23.conv1.0.weight": (64, 64, 3, 3),
        "block23.conv3.weight": (16, 64, 1, 1),
    }
    assert {key: tuple(state[key].shape) for key in expected} == expected
    rebuilt = build_mlsd(state)
    assert list(rebuilt.state_dict()) == list(state)


def test_the_narrow_test_file_loads_through_the_same_loader(mlsd_file):
    state = read_state_dict(mlsd_file)
    net = build_mlsd(state)
    assert net.state_dict().keys() == state.keys()
    assert int(state["backbone.features.0.0.weight"].shape[0]) == 8


def test_files_of_another_shape_are_refused(mlsd_file):
    state = read_state_dict(mlsd_file)
    del state["backbone.features.13.conv.3.weight"]
    with pytest.raises((KeyError, AnnotatorFileError)):
        build_mlsd(state)
    state = read_state_dict(mlsd_file)
    state["block23.conv3.weight"] = state["block23.conv3.weight"][:8]
    with pytest.raises(ValueError, match="outputs"):
        build_mlsd(state)


def prediction(height: int, width: int, peaks: dict[tuple[int, int], tuple[float, tuple[float, ...]]]
               ) -> torch.Tensor:
    """A ``1 x 5 x h x w`` prediction: a low centre logit everywhere but at ``peaks`` ((row, column) -> logit,
    displacements)."""
    out = torch.zeros(1, 5, height, width)
    out[0, 0] = -10.0
    for (row, column), (logit, ends) in peaks.items():
        out[0, 0, row, column] = logit
        out[0, 1:5, row, column] = torch.tensor(ends)
    return out


def decode(out: torch.Tensor, value: float = 0.1, distance: float = 0.1) -> np.ndarray:
    return pred_lines(*line_candidates(out), value, distance)


def test_constructed_peaks_decode_to_their_segments_best_first():
    out = prediction(16, 24, {(4, 6): (3.0, (-2.0, 0.0, 3.0, 1.0)), (10, 12): (1.0, (0.0, -3.0, 0.0, 3.0))})
    assert np.array_equal(decode(out), [[4.0, 4.0, 9.0, 5.0], [12.0, 7.0, 12.0, 13.0]])


def test_only_local_maxima_of_each_3x3_window_are_centres():
    out = prediction(16, 24, {(4, 6): (3.0, (-2.0, 0.0, 2.0, 0.0)), (4, 7): (2.0, (0.0, -2.0, 0.0, 2.0)),
                              (4, 9): (2.0, (0.0, -2.0, 0.0, 2.0))})
    assert decode(out).tolist() == [[4.0, 4.0, 8.0, 4.0], [9.0, 2.0, 9.0, 6.0]]  # (4, 7) is next to a higher one


def test_at_most_the_200_best_centres_are_read():
    out = torch.zeros(1, 5, 40, 40)
    out[0, 0] = -10.0
    out[0, 0, ::2, ::2] = torch.linspace(0.0, 4.0, 400).reshape(20, 20)  # 400 separate peaks
    out[0, 3] = 5.0  # every segment 5 long
    rows, columns, scores, _ = line_candidates(out)
    assert len(scores) == 200 and (np.diff(scores) <= 0).all()
    assert len(decode(out)) == 200 and scores.min() > torch.sigmoid(torch.tensor(2.0)).item()


def test_a_prediction_smaller_than_200_pixels_reads_them_all():
    out = prediction(8, 8, {(2, 2): (2.0, (0.0, 0.0, 2.0, 0.0))})
    assert len(line_candidates(out)[2]) == 64 and decode(out).tolist() == [[2.0, 2.0, 4.0, 2.0]]


@pytest.mark.parametrize("value, distance, kept", [
    (0.1, 0.1, 2), (0.6, 0.1, 1), (0.99, 0.1, 0),  # scores are sigmoid(3) = 0.95 and sigmoid(0) = 0.5
    (0.1, 4.99, 2), (0.1, 5.0, 1), (0.1, 6.0, 1), (0.1, 10.0, 0)])  # lengths 5 and 10: strictly longer is kept
def test_the_value_and_distance_thresholds(value, distance, kept):
    out = prediction(16, 24, {(4, 6): (3.0, (0.0, 0.0, 3.0, 4.0)), (10, 12): (0.0, (-5.0, 0.0, 5.0, 0.0))})
    segments = decode(out, value, distance)
    assert len(segments) == kept
    if kept == 1:
        expected = [6.0, 4.0, 9.0, 8.0] if value > 0.5 or distance < 5.0 else [7.0, 10.0, 17.0, 10.0]
        assert segments.tolist() == [expected]


def test_thresholds_compare_in_float64_as_under_a1111s_numpy():
    # float32(0.1) is a little above 0.1: NumPy 1.x compares the port's float32 scalars in float64 and keeps both.
    tenth = np.float32(0.1)
    displacement = np.zeros((2, 2, 4), np.float32)
    displacement[0, 0] = (0.0, 0.0, 3.0, 0.0)
    displacement[1, 1] = (0.0, 0.0, tenth, 0.0)
    segments = pred_lines(np.array([0, 1]), np.array([0, 1]), np.array([tenth, 0.9], np.float32), displacement,
                          0.1, 0.1)
    assert segments.tolist() == [[0.0, 0.0, 3.0, 0.0], [1.0, 1.0, 1.0 + float(tenth), 1.0]]


class Fixed(torch.nn.Module):
    """A stand-in network that returns a set prediction (for an input twice its size)."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (4, 2 * self.out.shape[2], 2 * self.out.shape[3])
        return self.out


def test_the_map_draws_segments_at_twice_the_prediction_scale():
    net = Fixed(prediction(16, 24, {(4, 6): (3.0, (-2.0, 0.0, 3.0, 0.0)), (10, 12): (1.0, (0.0, -3.0, 0.0, 3.0))}))
    image = np.full((32, 48, 3), 90, np.uint8)
    line_map = run_mlsd(net, image, CPU, 0.1, 0.1)
    expected = np.zeros((32, 48), np.uint8)
    expected[8, 8:19] = 255  # (4, 6) -> x 8..18 on row 8
    expected[14:27, 24] = 255  # (10, 12) -> y 14..26 on column 24
    assert line_map.dtype == np.uint8 and np.array_equal(line_map, expected)
    assert not run_mlsd(net, image, CPU, 0.99, 0.1)[14:27, 24].any()


def test_the_input_is_rgb_and_a_constant_plane_in_minus_one_to_one():
    seen = []

    class Probe(Fixed):
        def forward(self, x):
            seen.append(x)
            return super().forward(x)

    image = np.zeros((32, 48, 3), np.uint8)
    image[..., 1] = 255
    run_mlsd(Probe(prediction(16, 24, {})), image, CPU, 0.1, 0.1)
    planes = seen[0][0]
    assert planes.dtype == torch.float32
    assert [float(planes[c].mean()) for c in range(4)] == pytest.approx([-1.0, 1.0, -1.0, 1 / 127.5 - 1])


def test_drawing_truncates_ends_and_stops_at_the_first_unusable_one():
    segments = np.array([[-0.7, 1.9, 4.9, 1.2], [0.0, 5.0, 5.0, 5.0], [np.inf, 0.0, 1.0, 0.0], [0.0, 7.0, 5.0, 7.0]])
    line_map = draw_segments(segments, 10, 10)
    expected = np.zeros((10, 10), np.uint8)
    expected[1, 0:5] = 255
    expected[5, 0:6] = 255
    assert np.array_equal(line_map, expected)  # the segment after the infinite one is not drawn


def test_any_image_size_gives_a_map_of_that_size(mlsd_file):
    image = (np.random.RandomState(0).rand(70, 130, 3) * 255).astype(np.uint8)
    line_map, poses = AnnotatorCache(CPU).run("mlsd", {"model": mlsd_file}, image,
                                              {"value_threshold": 0.1, "distance_threshold": 0.1})
    assert line_map.shape == (70, 130) and poses is None
    assert set(np.unique(line_map)) == {0, 255}


def test_the_random_file_finds_lines_that_high_thresholds_remove(mlsd_file):
    cache = AnnotatorCache(CPU)
    image = (np.random.RandomState(1).rand(64, 64, 3) * 255).astype(np.uint8)
    loose, _ = cache.run("mlsd", {"model": mlsd_file}, image, {"value_threshold": 0.1, "distance_threshold": 0.1})
    strict, _ = cache.run("mlsd", {"model": mlsd_file}, image, {"value_threshold": 2.0, "distance_threshold": 0.1})
    assert loose.any() and not strict.any()
