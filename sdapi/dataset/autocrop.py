"""A1111's auto focal point crop: scale so the crop fits, find the focal point, centre the crop on it.

With ``debug`` a second image comes back: the scaled image annotated with each centroid, the focal point and the
crop rectangle (A1111 saves it into the dataset like any other output).
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from sdapi.dataset.focal import FocalResult, FocalWeights, PointFinder, focal_point

GREEN = "#0F0"
DEBUG_COLOURS = {"edges": ("#00F", "Edge"), "entropy": ("#ff0", "Entropy"), "face": ("#F00", "Face")}
"""Colour and label of each kind of point in the debug image."""


def scale_for_crop(image: Image.Image, crop_width: int, crop_height: int) -> Image.Image:
    """Scale ``image`` (PIL's default resampling, as A1111) so the crop spans its short side.

    Landscape images match the crop height, portrait ones the crop width; a square image matches the crop's
    longer side.
    """
    if image.width > image.height:
        scale = crop_height / image.height
    elif image.height > image.width:
        scale = crop_width / image.width
    elif crop_height > crop_width:
        scale = crop_height / image.height
    else:
        scale = crop_width / image.width
    return image.resize((int(image.width * scale), int(image.height * scale)))


def crop_box(focus_x: int, focus_y: int, image_size: tuple[int, int],
             crop_width: int, crop_height: int) -> tuple[int, int, int, int]:
    """The crop centred on the focus, pushed back inside the image."""
    x1 = focus_x - int(crop_width / 2)
    x1 = 0 if x1 < 0 else min(x1, image_size[0] - crop_width)
    y1 = focus_y - int(crop_height / 2)
    y1 = 0 if y1 < 0 else min(y1, image_size[1] - crop_height)
    return x1, y1, x1 + crop_width, y1 + crop_height


def focal_crop(image: Image.Image, crop_width: int, crop_height: int, weights: FocalWeights,
               find_faces: PointFinder, debug: bool = False) -> list[Image.Image]:
    """The crop around the focal point, plus the annotated debug image when ``debug``.

    Args:
        image: an RGB image.
        crop_width, crop_height: the output size.
        weights: how much faces, entropy and edges count.
        find_faces: the face detector.
        debug: also return the annotated image.
    """
    scaled = scale_for_crop(image, crop_width, crop_height)
    result = focal_point(scaled, crop_width, crop_height, weights, find_faces)
    box = crop_box(result.point.x, result.point.y, scaled.size, crop_width, crop_height)
    outputs = [scaled.crop(box)]
    if debug:
        outputs.append(annotate(scaled.copy(), result, box))
    return outputs


def annotate(image: Image.Image, result: FocalResult, box: tuple[int, int, int, int]) -> Image.Image:
    """Draw each centroid (sized by its weight), its points, the focal point and the crop rectangle."""
    draw = ImageDraw.Draw(image)
    max_size = min(image.width, image.height) * 0.07
    for kind, centre in result.centroids.items():
        colour, label = DEBUG_COLOURS[kind]
        ring = centre.bounding(max_size * centre.weight)
        draw.text((ring[0], ring[1] - 15), f"{label}: {centre.weight:.02f}", fill=colour)
        draw.ellipse(ring, outline=colour)
        points = result.points.get(kind, [])
        if len(points) > 1:
            for point in points:
                draw.rectangle(point.bounding(4), outline=colour)
    draw.ellipse(result.point.bounding(max_size), outline=GREEN)
    draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=GREEN)
    return image
