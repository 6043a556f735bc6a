"""Inpainting masks on PIL images, as A1111 v1.2.1 prepares them (``modules/masking.py`` and img2img's init).

Pure PIL/numpy. White (255) in a mask means "repaint".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from sdapi.resize import CROP_AND_RESIZE, RESIZE_AND_FILL, resize_image


def crop_region(mask: np.ndarray, pad: int = 0) -> tuple[int, int, int, int]:
    """The box ``(x1, y1, x2, y2)`` around every non-zero pixel of ``mask``, grown by ``pad`` within the image.

    An all-black mask gives an empty box, as in A1111.
    """
    h, w = mask.shape
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    left = cols[0] if len(cols) else w
    right = w - 1 - cols[-1] if len(cols) else w
    top = rows[0] if len(rows) else h
    bottom = h - 1 - rows[-1] if len(rows) else h
    return (int(max(left - pad, 0)), int(max(top - pad, 0)),
            int(min(w - right + pad, w)), int(min(h - bottom + pad, h)))


def _expand_axis(lo: int, hi: int, desired: float, limit: int) -> tuple[int, int]:
    """Grow ``[lo, hi)`` to ``desired`` length around its centre, shifted back inside ``[0, limit]``."""
    diff = int(desired - (hi - lo))
    lo -= diff // 2
    hi += diff - diff // 2
    if hi >= limit:
        lo, hi = lo - (hi - limit), limit
    if lo < 0:
        hi, lo = hi - lo, 0
    return lo, min(hi, limit)


def expand_crop_region(region: tuple[int, int, int, int], width: int, height: int, image_width: int,
                       image_height: int) -> tuple[int, int, int, int]:
    """Grow ``region`` to the processing aspect ratio ``width / height`` (A1111's ``expand_crop_region``)."""
    x1, y1, x2, y2 = region
    ratio = width / height
    if (x2 - x1) / (y2 - y1) > ratio:
        y1, y2 = _expand_axis(y1, y2, (x2 - x1) / ratio, image_height)
    else:
        x1, x2 = _expand_axis(x1, x2, (y2 - y1) * ratio, image_width)
    return x1, y1, x2, y2


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Paint the masked area with blurred colours from around it (``inpainting_fill`` 0, "fill")."""
    result = Image.new("RGBA", image.size)
    masked = Image.new("RGBa", image.size)
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return result.convert("RGB")


@dataclass
class PreparedMask:
    """A request's mask after A1111's preparation.

    Args:
        mask: the processing-size L mask used for the latent mask and the inpainting conditioning.
        overlay: the full-size mask whose inverse keeps the original pixels when compositing the result.
        crop: ``(x1, y1, x2, y2)`` of the "only masked" crop in the original image, or ``None``.
    """

    mask: Image.Image
    overlay: Image.Image
    crop: tuple[int, int, int, int] | None = None

    @property
    def paste_to(self) -> tuple[int, int, int, int] | None:
        """A1111's ``paste_to``: ``(x, y, w, h)`` of the crop."""
        if self.crop is None:
            return None
        x1, y1, x2, y2 = self.crop
        return x1, y1, x2 - x1, y2 - y1


def prepare_mask(mask: Image.Image, width: int, height: int, resize_mode: int, blur: int, invert: bool,
                 full_res: bool, padding: int) -> PreparedMask:
    """Invert, blur and size a mask, as ``StableDiffusionProcessingImg2Img.init`` does.

    Args:
        mask: the request's mask (any mode; converted to L).
        width, height: the processing size.
        resize_mode: the request's ``resize_mode`` (used when not ``full_res``).
        blur: ``mask_blur`` (Gaussian radius; 0 = none).
        invert: ``inpainting_mask_invert``.
        full_res: ``inpaint_full_res`` ("only masked": work on a crop around the mask).
        padding: ``inpaint_full_res_padding`` around that crop.
    """
    mask = mask.convert("L")
    if invert:
        mask = ImageOps.invert(mask)
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    # A blank mask has no region to crop to: later A1111 (v1.7+) switches to "whole picture" then, v1.2.1 crashes.
    if full_res and mask.getbbox() is not None:
        region = crop_region(np.array(mask), padding)
        region = expand_crop_region(region, width, height, mask.width, mask.height)
        sized = resize_image(RESIZE_AND_FILL, mask.crop(region), width, height)
        return PreparedMask(mask=sized, overlay=mask, crop=region)
    sized = resize_image(resize_mode, mask, width, height)
    # A1111 doubles the overlay mask so a blurred edge reaches full opacity halfway in.
    doubled = np.clip(np.array(sized).astype(np.float32) * 2, 0, 255).astype(np.uint8)
    return PreparedMask(mask=sized, overlay=Image.fromarray(doubled))


def overlay_image(image: Image.Image, overlay_mask: Image.Image) -> Image.Image:
    """The original pixels outside the mask, transparent inside (A1111's ``overlay_images`` entry)."""
    layer = Image.new("RGBa", image.size)
    layer.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(overlay_mask.convert("L")))
    return layer.convert("RGBA")


def apply_overlay(image: Image.Image, overlay: Image.Image, paste_to: tuple[int, int, int, int] | None
                  ) -> Image.Image:
    """Composite a generated image under the original's unmasked pixels (A1111's ``apply_overlay``).

    With an "only masked" crop, the generated crop is first scaled back and placed where it came from.
    """
    if paste_to is not None:
        x, y, w, h = paste_to
        base = Image.new("RGBA", overlay.size)
        base.paste(resize_image(CROP_AND_RESIZE, image, w, h), (x, y))
        image = base
    image = image.convert("RGBA")
    image.alpha_composite(overlay)
    return image.convert("RGB")


def mask_outputs(image: Image.Image, overlay_mask: Image.Image, with_mask: bool, with_composite: bool
                 ) -> list[Image.Image]:
    """The images A1111's ``return_mask`` and ``return_mask_composite`` options add after an inpainted result:
    the overlay mask in RGB, and the result shown only where the mask repaints (transparent elsewhere)."""
    extra = []
    if with_mask:
        extra.append(overlay_mask.convert("RGB"))
    if with_composite:
        visible = resize_image(RESIZE_AND_FILL, overlay_mask, image.width, image.height).convert("L")
        extra.append(Image.composite(image.convert("RGBA").convert("RGBa"), Image.new("RGBa", image.size),
                                     visible).convert("RGBA"))
    return extra
