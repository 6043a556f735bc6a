"""A1111's focal point crop: OpenCV's shipped Haar cascades, entropy and corner points, weighted."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from sdapi.dataset.autocrop import crop_box, focal_crop, scale_for_crop
from sdapi.dataset.faces import face_points
from sdapi.dataset.focal import (FocalWeights, PointOfInterest, centroid, entropy_points, focal_point,
                                 weighted_average, window_entropy)
from tests.unit.dataset_helpers import busy_background, draw_face, face_picture


def _contains(box, x, y) -> bool:
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def test_the_shipped_cascades_find_the_drawn_face_and_not_the_noise():
    points = face_points(face_picture(192, 64, face_x=150, face_width=44))
    assert points and all(abs(p.x - 150) < 12 and abs(p.y - 32) < 12 for p in points)
    assert face_points(busy_background(192, 64)) == []


@pytest.mark.parametrize("size, face", [((192, 64), (150, 32)), ((256, 64), (40, 32))])
def test_focal_crop_of_a_wide_picture_keeps_the_face(size, face):
    image = face_picture(*size, face_x=face[0], face_width=44)
    crop = focal_crop(image, 64, 64, FocalWeights(), face_points)[0]
    assert crop.size == (64, 64)
    result = focal_point(image, 64, 64, FocalWeights(), face_points)
    box = crop_box(result.point.x, result.point.y, image.size, 64, 64)
    assert _contains(box, *face)
    assert not _contains(((size[0] - 64) // 2, 0, (size[0] + 64) // 2, 64), *face)  # a centre crop would lose it


def test_focal_crop_of_a_tall_picture_keeps_the_face():
    tall = busy_background(64, 256, seed=3)
    draw_face(ImageDraw.Draw(tall), 32, 200, 44)
    result = focal_point(tall, 64, 64, FocalWeights(), face_points)
    box = crop_box(result.point.x, result.point.y, tall.size, 64, 64)
    assert _contains(box, 32, 200)
    assert result.centroids["face"].weight == pytest.approx(0.9 / 1.7)


def test_weights_combine_only_the_kinds_that_found_points():
    image = busy_background(128, 64)
    face = [PointOfInterest(100, 10), PointOfInterest(120, 20)]
    result = focal_point(image, 64, 64, FocalWeights(face=1.0, entropy=0.0, edges=0.0), lambda _: face)
    assert set(result.centroids) == {"face"} and result.centroids["face"].weight == 1.0
    assert (result.point.x, result.point.y) == (110, 15)
    calls = []
    focal_point(image, 64, 64, FocalWeights(face=0.0), lambda im: calls.append(im) or [])
    assert calls == []  # a kind with weight 0 is not even computed
    nothing = focal_point(image, 64, 64, FocalWeights(face=0.5, entropy=0.0, edges=0.0), lambda _: [])
    assert (nothing.point.x, nothing.point.y) == (0, 0)


def test_centroid_and_weighted_average():
    middle = centroid([PointOfInterest(0, 0), PointOfInterest(10, 20)])
    assert (middle.x, middle.y) == (5.0, 10.0)
    a, b = PointOfInterest(0, 0, weight=0.25), PointOfInterest(100, 40, weight=0.75)
    average = weighted_average([a, b])
    assert (average.x, average.y) == (75, 30)


def test_entropy_prefers_the_mixed_window():
    image = Image.new("RGB", (192, 64), "black")
    image.paste((255, 255, 255), (150, 0, 192, 64))  # the only black/white mix is near the right edge
    assert window_entropy(Image.new("RGB", (8, 8), "black")) == 0.0
    point = entropy_points(image, 64, 64)[0]
    assert 100 < point.x < 160 and point.y == 32
    assert entropy_points(Image.new("RGB", (64, 64)), 64, 64) == []


def test_scale_and_crop_box_follow_a1111():
    assert scale_for_crop(Image.new("RGB", (300, 100)), 64, 64).size == (192, 64)
    assert scale_for_crop(Image.new("RGB", (100, 300)), 64, 64).size == (64, 192)
    assert scale_for_crop(Image.new("RGB", (100, 100)), 32, 64).size == (64, 64)
    assert crop_box(5, 5, (192, 64), 64, 64) == (0, 0, 64, 64)
    assert crop_box(190, 30, (192, 64), 64, 64) == (128, 0, 192, 64)


def test_debug_image_is_the_annotated_scaled_picture():
    image = face_picture(192, 64, face_x=150, face_width=44)
    crop, debug = focal_crop(image, 64, 64, FocalWeights(), face_points, debug=True)
    assert crop.size == (64, 64) and debug.size == (192, 64)
    assert debug.tobytes() != image.tobytes()
