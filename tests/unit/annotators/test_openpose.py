"""The OpenPose annotator: loading the extension's file layout, post-processing on constructed network outputs,
the drawing and the pose JSON.

Bit-for-bit agreement with the extension itself was checked outside the suite (its code is GPL and not vendored);
these tests pin the behaviour that check established.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sdapi.engine.annotators.openpose import OpenposeNets, load_openpose, run_openpose
from sdapi.engine.annotators.openpose.association import assemble_people, connect_limbs
from sdapi.engine.annotators.openpose.body import Peak, find_peaks
from sdapi.engine.annotators.openpose.demo_files import body_layers, cascade_layers, write_random_openpose_files
from sdapi.engine.annotators.openpose.drawing import draw_poses, hue_colour
from sdapi.engine.annotators.openpose.face import face_box
from sdapi.engine.annotators.openpose.hands import hand_boxes, hand_points
from sdapi.engine.annotators.openpose.networks import BodyNet, CascadeNet
from sdapi.engine.annotators.openpose.pose import Pose
from sdapi.engine.annotators.openpose.skeleton import LIMBS

CPU = torch.device("cpu")
# A person in pixels (x, y), COCO order: nose, neck, right arm, left arm, right leg, left leg, eyes, ears.
PERSON = [(80, 40), (80, 60), (60, 60), (50, 85), (45, 110), (100, 60), (110, 85), (115, 110), (68, 110),
          (66, 140), (64, 170), (92, 110), (94, 140), (96, 170), (74, 34), (86, 34), (68, 38), (92, 38)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The networks here are tiny: a second thread only adds start-up and waiting on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def params(layers):
    return sum(o * i * k * k + o for _, i, o, k in layers)


def test_the_file_layouts_are_the_annotators_files():
    # The parameter counts of lllyasviel/Annotators' body_pose_model.pth, hand_pose_model.pth and facenet.pth.
    assert params(body_layers()) == 52_311_446
    assert params(cascade_layers(22)) == 36_832_324
    assert params(cascade_layers(71)) == 38_425_706
    shapes = {name: (o, i, k) for name, i, o, k in body_layers()}
    assert shapes["conv1_1"] == (64, 3, 3) and shapes["conv4_4_CPM"] == (128, 256, 3)
    assert shapes["conv5_5_CPM_L1"] == (38, 512, 1) and shapes["Mconv1_stage2_L2"] == (128, 185, 7)
    assert shapes["Mconv7_stage6_L2"] == (19, 128, 1)
    face = {name: (o, i, k) for name, i, o, k in cascade_layers(71)}
    assert face["conv5_3_CPM"] == (128, 512, 3) and face["Mconv1_stage6"] == (128, 199, 7)


def test_narrow_random_files_load_through_the_original_keys(tmp_path):
    files = write_random_openpose_files(tmp_path, seed=3, divisor=64)
    assert {p: f.name for p, f in files.items()} == {
        "body": "body_pose_model.pth", "hand": "hand_pose_model.pth", "face": "facenet.pth"}
    state = torch.load(files["body"], weights_only=True)
    assert "conv1_1.weight" in state and "Mconv7_stage6_L1.bias" in state and not any("." in k[:-7] for k in state
                                                                                       if k.endswith(".weight"))
    nets = load_openpose(files, CPU)
    assert isinstance(nets.body, BodyNet) and isinstance(nets.hand, CascadeNet) and isinstance(nets.face, CascadeNet)
    assert torch.equal(nets.body.backbone[0].weight, state["conv1_1.weight"])
    with torch.no_grad():
        pafs, heatmaps = nets.body(torch.randn(1, 3, 48, 40))
        hand, face = nets.hand(torch.randn(1, 3, 64, 64)), nets.face(torch.randn(1, 3, 64, 64))
    assert pafs.shape == (1, 38, 6, 5) and heatmaps.shape == (1, 19, 6, 5)
    assert hand.shape == (1, 22, 8, 8) and face.shape == (1, 71, 8, 8)
    # The extension's last heatmap layer keeps its ReLU (a slip in its list of ReLU-less layers).
    assert heatmaps.min() >= 0 and pafs.min() < 0


def test_loading_refuses_other_files(tmp_path):
    torch.save({"conv1_1.weight": torch.zeros(4, 3, 3, 3), "conv1_1.bias": torch.zeros(4)}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="conv1_2.weight"):
        load_openpose({"body": tmp_path / "x.pth"}, CPU)
    with pytest.raises(ValueError, match="unknown OpenPose parts"):
        load_openpose({"feet": tmp_path / "x.pth"}, CPU)


def test_random_weights_give_a_map_and_json_of_the_canvas(tmp_path):
    nets = load_openpose(write_random_openpose_files(tmp_path, divisor=64, parts=("body",)), CPU)
    assert nets.hand is None and nets.face is None
    image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    pose_map, pose = run_openpose(nets, image, True, False, False)
    assert pose_map.shape == (64, 80, 3) and pose_map.dtype == np.uint8
    assert set(pose) == {"people", "animals", "canvas_height", "canvas_width"}
    assert (pose["canvas_height"], pose["canvas_width"], pose["animals"]) == (64, 80, [])
    with pytest.raises(ValueError, match="hand_pose_model.pth"):
        run_openpose(nets, image, True, True, False)
    with pytest.raises(ValueError, match="uint8"):
        run_openpose(nets, image.astype(np.float32), True, False, False)


def blobs(points, height, width, sigma=2.0):
    ys, xs = np.mgrid[0:height, 0:width]
    return np.exp(-((xs - points[0]) ** 2 + (ys - points[1]) ** 2) / (2 * sigma ** 2))


def body_outputs(people, height, width):
    """Heatmaps with a blob per part and fields of unit vectors along each limb, as a trained network gives."""
    heatmaps = np.zeros((height, width, 19))
    fields = np.zeros((height, width, 38))
    ys, xs = np.mgrid[0:height, 0:width]
    for person in people:
        for part, point in enumerate(person):
            if point is not None:
                heatmaps[:, :, part] += blobs(point, height, width)
        for a, b, cx, cy in LIMBS:
            if person[a] is None or person[b] is None:
                continue
            (ax, ay), (bx, by) = person[a], person[b]
            length = np.hypot(bx - ax, by - ay)
            ux, uy = (bx - ax) / length, (by - ay) / length
            along, across = (xs - ax) * ux + (ys - ay) * uy, (xs - ax) * uy - (ys - ay) * ux
            near = (along >= -2) & (along <= length + 2) & (abs(across) <= 3)
            fields[near, cx], fields[near, cy] = ux, uy
    return heatmaps, fields


def detect(people, height, width):
    heatmaps, fields = body_outputs(people, height, width)
    peaks = find_peaks(heatmaps)
    flat = [p for part in peaks for p in part]
    return peaks, assemble_people(connect_limbs(peaks, fields, height), flat), flat


def test_peaks_and_limbs_rebuild_the_skeleton():
    peaks, people, flat = detect([PERSON], 200, 160)
    assert [[(p.x, p.y) for p in part] for part in peaks] == [[point] for point in PERSON]
    assert all(p.score == 1.0 for p in flat)
    [person] = people
    assert [(flat[i].x, flat[i].y) for i in person.parts] == PERSON
    # 18 parts at 1.0 and the 17 limbs that add a part, each scoring ~1 (the two shoulder-ear limbs add nothing).
    assert person.count == 18 and person.score == pytest.approx(35.0)


def test_two_people_and_a_fragment():
    second = [(x + 160, y) for x, y in PERSON]
    fragment = [None] * 18
    fragment[0], fragment[1], fragment[2] = (400, 40), (400, 60), (380, 60)  # three parts: fewer than 4
    _, people, flat = detect([PERSON, second, fragment], 200, 480)
    assert sorted([(flat[i].x, flat[i].y) for i in p.parts] for p in people) == [PERSON, second]


def test_missing_parts_stay_missing():
    armless = [None if i in (3, 4) else p for i, p in enumerate(PERSON)]
    _, [person], flat = detect([armless], 200, 160)
    assert person.parts[3] == person.parts[4] == -1 and person.count == 16


def peaks_of(points):
    return [None if p is None else Peak(p[0], p[1], 1.0, i) for i, p in enumerate(points)]


def test_hand_boxes_from_the_arms():
    parts = peaks_of([None] * 18)
    parts[5], parts[6], parts[7] = Peak(100, 100, 1, 0), Peak(100, 160, 1, 1), Peak(100, 220, 1, 2)
    # Centre beyond the wrist by a third of the forearm, 1.5 x the longer of forearm and 0.9 x upper arm.
    assert hand_boxes(parts, 512, 512) == [(55, 194, 90, True)]
    # Clipped by the image: the box shrinks to what is left below it.
    assert hand_boxes(parts, 250, 512) == [(55, 194, 55, True)]
    parts[2], parts[3], parts[4] = Peak(50, 100, 1, 3), Peak(50, 105, 1, 4), Peak(50, 110, 1, 5)
    assert hand_boxes(parts, 512, 512) == [(55, 194, 90, True)]  # the right hand's box is under 20 px


def test_face_box_from_nose_eyes_and_ears():
    parts = peaks_of([None] * 18)
    parts[0] = Peak(200, 100, 1, 0)
    assert face_box(parts, 512, 512) is None
    parts[14], parts[16] = Peak(190, 95, 1, 1), Peak(180, 100, 1, 2)
    assert face_box(parts, 512, 512) == (170, 70, 60)
    # The extension checks the edges with the half size, so the box is not shrunk near one (the crop is cut).
    parts[0], parts[14], parts[16] = Peak(503, 100, 1, 0), Peak(493, 95, 1, 1), Peak(483, 100, 1, 2)
    assert face_box(parts, 512, 512) == (473, 70, 60)


def test_hand_points_take_the_heaviest_blob():
    heatmaps = np.zeros((128, 128, 22))
    heatmaps[:, :, 0] = blobs((30, 40), 128, 128, 3) * 0.5 + blobs((90, 100), 128, 128, 6) * 0.4
    heatmaps[:, :, 1] = blobs((64, 32), 128, 128, 3)
    points = hand_points(heatmaps, 256, 64)
    # Part 0: the wider, lower blob holds more; positions scale from 128 x 128 to the crop (256 high, 64 wide).
    assert points[0] == (45, 200) and points[1] == (32, 64)
    assert points[2:] == [(0, 0)] * 19


def test_drawing_a_known_pose():
    body = [None] * 18
    body[1], body[2] = (0.5, 0.3), (0.3, 0.3)
    hand = [(-0.01, -0.01)] * 21
    hand[0], hand[1] = (0.2, 0.8), (0.4, 0.8)
    pose = Pose(body, right_hand=[(np.float32(x), np.float32(y)) for x, y in hand],
                face=[(np.float32(0.7), np.float32(0.7))])
    canvas = draw_poses([pose], 100, 100, body=True, hands=True, face=True)
    assert canvas.shape == (100, 100, 3) and canvas.dtype == np.uint8
    assert tuple(canvas[30, 40]) == tuple(canvas[33, 40]) == (153, 0, 0)  # limb neck-shoulder at 60 % red
    assert tuple(canvas[36, 40]) == (0, 0, 0)  # beyond the limb's half width of 4
    assert tuple(canvas[30, 50]) == (255, 85, 0) and tuple(canvas[30, 30]) == (255, 170, 0)  # joints
    assert tuple(canvas[80, 30]) == (255, 0, 0)  # the first hand bone, hue 0
    assert tuple(canvas[80, 20]) == tuple(canvas[80, 40]) == (0, 0, 255)  # hand joints
    assert tuple(canvas[70, 72]) == (255, 255, 255) and tuple(canvas[70, 74]) == (0, 0, 0)  # face dot radius 3
    # Nothing for points marked missing at -1 / size, nor anything else.
    assert canvas[:5, :5].max() == 0 and np.count_nonzero(canvas.any(axis=2)) < 400
    without_body = draw_poses([pose], 100, 100, body=False, hands=False, face=True)
    assert np.count_nonzero(without_body.any(axis=2)) == np.count_nonzero((without_body == 255).all(axis=2)) > 0


def test_hand_bone_colours():
    assert hue_colour(0.0) == (255.0, 0.0, 0.0)
    assert hue_colour(0.5) == (0.0, 255.0, 255.0)
    assert hue_colour(0.05) == pytest.approx((255.0, 76.5, 0.0))


class Stub(nn.Module):
    """Network outputs at 1/8 of the input, whatever its pixels: a blob per channel at a fixed fraction of the
    size; for the body (``fields``) also the part affinity fields of the person those blobs make."""

    def __init__(self, channels, points, fields=False):
        super().__init__()
        self.channels, self.points, self.fields = channels, points, fields

    def forward(self, x):
        h, w = x.shape[2] // 8, x.shape[3] // 8
        cells = {c: (fx * w - 0.5, fy * h - 0.5) for c, (fx, fy) in self.points.items()}
        maps = np.zeros((self.channels, h, w), np.float32)
        for c, point in cells.items():
            maps[c] = blobs(point, h, w, sigma=0.8)
        if not self.fields:
            return torch.from_numpy(maps)[None]
        fields = body_outputs([[cells.get(i) for i in range(18)]], h, w)[1]
        return torch.from_numpy(fields.transpose(2, 0, 1).astype(np.float32))[None], torch.from_numpy(maps)[None]


def stub_nets():
    fractions = {i: (x / 160, y / 200) for i, (x, y) in enumerate(PERSON)}
    hand = {i: (0.3 + 0.02 * i, 0.3 + 0.02 * i) for i in range(20)}  # point 20 not found
    face = {i: (0.2 + 0.01 * i, 0.5) for i in range(60)}
    return OpenposeNets(CPU, body=Stub(19, fractions, fields=True), hand=Stub(22, hand), face=Stub(71, face))


def pixels(flat, height=400, width=320):
    return [(round(x * width), round(y * height)) for x, y, _ in np.array(flat).reshape(-1, 3)]


def test_the_whole_annotator_on_stand_in_networks():
    image = np.zeros((400, 320, 3), dtype=np.uint8)
    pose_map, pose = run_openpose(stub_nets(), image, True, True, True)
    [person] = pose["people"]
    assert all(isinstance(v, float) for k in person for v in person[k])
    # What the extension gives for these network outputs (checked against it, maps included).
    assert pixels(person["pose_keypoints_2d"]) == [
        (165, 79), (165, 119), (124, 119), (103, 169), (93, 219), (206, 119), (227, 169), (237, 219), (140, 219),
        (135, 280), (131, 339), (189, 219), (195, 280), (198, 339), (152, 67), (178, 67), (140, 76), (189, 76)]
    assert person["pose_keypoints_2d"][2::3] == [1.0] * 18
    left, right = person["hand_left_keypoints_2d"], person["hand_right_keypoints_2d"]
    assert pixels(left)[:4] == [(224, 219), (225, 220), (227, 222), (229, 224)]
    assert pixels(right)[:4] == [(73, 219), (74, 220), (76, 222), (78, 224)]
    assert left[2::3] == right[2::3] == [1.0] * 21  # "not found" is a position, not a confidence
    assert left[60:62] == [float(np.float32(-1 / 320)), float(np.float32(-1 / 400))]  # point 20: -1 / size
    face = person["face_keypoints_2d"]
    assert len(face) == 60 * 3 and pixels(face)[:4] == [(141, 78), (142, 78), (142, 78), (144, 78)]
    assert pose_map.shape == (400, 320, 3) and pose_map.dtype == np.uint8 and pose_map.any()
    only_face, same_pose = run_openpose(stub_nets(), image, False, False, True)
    assert same_pose["people"][0]["pose_keypoints_2d"] == person["pose_keypoints_2d"]
    assert same_pose["people"][0]["hand_left_keypoints_2d"] is None
    assert set(map(tuple, only_face[only_face.any(axis=2)])) == {(255, 255, 255)}
