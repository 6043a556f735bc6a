"""A1111's ``resize_image`` modes on PIL images (img2img ``resize_mode``, hires fix, inpaint crops).

Pure PIL. Enlarging with a named upscaler is delegated to a callable, so this module needs no torch:

* mode 0, "just resize": stretch to ``width x height``;
* mode 1, "crop and resize": scale to cover the box keeping the aspect ratio, centre, crop the excess;
* mode 2, "resize and fill": scale to fit inside the box, centre, and fill the two empty bands by stretching
  the image's outermost row/column;
* mode 3, "just resize (latent upscale)": handled in latent space by the engine; here it is mode 0's
  pixel step skipped (the image keeps its size).
"""

from __future__ import annotations

from typing import Callable

from PIL import Image

LANCZOS = Image.Resampling.LANCZOS

#: ``(image, width, height) -> image`` of exactly that size; ``None`` means plain Lanczos.
Enlarge = Callable[[Image.Image, int, int], Image.Image]

JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL, LATENT_RESIZE = 0, 1, 2, 3


def _resize(image: Image.Image, width: int, height: int, enlarge: Enlarge | None) -> Image.Image:
    """Lanczos, or the upscaler when one is given and the image is RGB (A1111 never upscales masks)."""
    if enlarge is None or image.mode == "L":
        return image.resize((width, height), resample=LANCZOS)
    return enlarge(image, width, height)


def resize_image(mode: int, image: Image.Image, width: int, height: int,
                 enlarge: Enlarge | None = None) -> Image.Image:
    """A1111 v1.2.1's ``images.resize_image``.

    Args:
        mode: 0 just resize, 1 crop and resize, 2 resize and fill (anything else: resize and fill, as A1111).
        image: the source.
        width, height: the result's size.
        enlarge: the upscaler to enlarge with (A1111's ``upscaler_name``); ``None`` for Lanczos.

    Returns:
        A ``width x height`` image (RGB for modes 1 and 2, whose canvas A1111 creates as RGB).
    """
    if mode == JUST_RESIZE:
        return _resize(image, width, height, enlarge)
    ratio, src_ratio = width / height, image.width / image.height
    if mode == CROP_AND_RESIZE:
        src_w = width if ratio > src_ratio else image.width * height // image.height
        src_h = height if ratio <= src_ratio else image.height * width // image.width
    else:
        src_w = width if ratio < src_ratio else image.width * height // image.height
        src_h = height if ratio >= src_ratio else image.height * width // image.width
    resized = _resize(image, src_w, src_h, enlarge)
    canvas = Image.new("RGB", (width, height))
    canvas.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if mode != CROP_AND_RESIZE:
        _fill_bands(canvas, resized, width, height, src_w, src_h, ratio, src_ratio)
    return canvas


def _fill_bands(canvas: Image.Image, resized: Image.Image, width: int, height: int, src_w: int, src_h: int,
                ratio: float, src_ratio: float) -> None:
    """Stretch the edge rows (or columns) of ``resized`` over the empty bands of ``canvas``, in place."""
    if ratio < src_ratio:
        fill = height // 2 - src_h // 2
        if fill > 0:
            canvas.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
            canvas.paste(resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
                         box=(0, fill + src_h))
    elif ratio > src_ratio:
        fill = width // 2 - src_w // 2
        if fill > 0:
            canvas.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
            canvas.paste(resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
                         box=(fill + src_w, 0))


def flatten(image: Image.Image, background: str = "#ffffff") -> Image.Image:
    """RGB without transparency: RGBA is composited over ``background`` (A1111's ``img2img_background_color``)."""
    if image.mode == "RGBA":
        canvas = Image.new("RGBA", image.size, background)
        canvas.paste(image, mask=image)
        image = canvas
    return image.convert("RGB")
