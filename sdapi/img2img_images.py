"""img2img's PIL work around the engine, as A1111 v1.2.1's ``StableDiffusionProcessingImg2Img`` does it.

Before sampling: flatten transparency, apply ``resize_mode``, prepare the mask (invert, blur, "only masked" crop),
keep an overlay of the original's unmasked pixels and fill the masked area (``inpainting_fill`` 0). After
decoding: composite each result under its overlay (and back into the full picture for an "only masked" crop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from sdapi.color_correction import apply_color_correction, correction_target
from sdapi.masking import PreparedMask, apply_overlay, fill, overlay_image, prepare_mask
from sdapi.resize import LATENT_RESIZE, RESIZE_AND_FILL, Enlarge, flatten, resize_image

FILL_ORIGINAL = 1


class BadImageCount(RuntimeError):
    """More init images than ``batch_size`` (A1111's ``RuntimeError``, a 500)."""


@dataclass
class PreparedInputs:
    """The init images and mask ready for the engine.

    Args:
        images: RGB images at the processing size (their own size for ``resize_mode`` 3 without a mask).
        mask: the prepared mask, or ``None`` for plain img2img.
        overlays: per image, the original's unmasked pixels (empty without a mask).
        latent_mask: A1111's ``p.latent_mask`` (outpainting scripts): what the masked area's fill and the latent
            mask follow instead of the prepared mask, or ``None``.
    """

    images: list[Image.Image]
    mask: PreparedMask | None = None
    overlays: list[Image.Image] = field(default_factory=list)
    latent_mask: Image.Image | None = None

    def batch_size(self, requested: int) -> int:
        """A1111's rule: one image serves the whole batch; 2..``requested`` images make the batch that size.

        Raises:
            BadImageCount: more images than ``requested``.
        """
        if len(self.images) == 1:
            return requested
        if len(self.images) > requested:
            raise BadImageCount(f"bad number of images passed: {len(self.images)}; expecting {requested} or less")
        return len(self.images)


def prepare_inputs(init_images: list[Image.Image], mask: Image.Image | None, req, background: str = "#ffffff",
                   enlarge: Enlarge | None = None, latent_mask: Image.Image | None = None) -> PreparedInputs:
    """Prepare a request's decoded images and mask.

    Args:
        init_images: the decoded ``init_images``.
        mask: the decoded ``mask``, or ``None``.
        req: the ``StableDiffusionProcessingImg2Img`` request (sizes, resize mode, mask options).
        background: A1111's ``img2img_background_color`` for transparent pixels.
        enlarge: A1111's ``upscaler_for_img2img`` for enlarging resizes (``None``: Lanczos).
        latent_mask: a script's latent mask, used as given (A1111 neither blurs nor resizes it).
    """
    width, height, mode = req.width, req.height, req.resize_mode or 0
    prepared = None
    if mask is not None:
        prepared = prepare_mask(mask, width, height, mode, req.mask_blur or 0, bool(req.inpainting_mask_invert),
                                bool(req.inpaint_full_res), req.inpaint_full_res_padding or 0)
    result = PreparedInputs(images=[], mask=prepared, latent_mask=latent_mask)
    fill_mask = latent_mask if latent_mask is not None else (prepared.mask if prepared is not None else None)
    for source in init_images:
        image = flatten(source, background)
        if (prepared is None or prepared.crop is None) and mode != LATENT_RESIZE:
            image = resize_image(mode, image, width, height, enlarge)
        if prepared is not None:
            result.overlays.append(overlay_image(image, prepared.overlay))
            if prepared.crop is not None:
                image = resize_image(RESIZE_AND_FILL, image.crop(prepared.crop), width, height, enlarge)
            if req.inpainting_fill != FILL_ORIGINAL:
                image = fill(image, fill_mask)
        result.images.append(image)
    return result


def composite(images: list[Image.Image], prepared: PreparedInputs, batch_size: int) -> list[Image.Image]:
    """Each generated image under its overlay (A1111's ``apply_overlay`` by position in the batch)."""
    if prepared.mask is None:
        return images
    overlays = prepared.overlays * batch_size if len(prepared.overlays) == 1 else prepared.overlays
    return [apply_overlay(image, overlays[i % batch_size], prepared.mask.paste_to) if i % batch_size < len(overlays)
            else image for i, image in enumerate(images)]


def color_correct(images: list[Image.Image], prepared: PreparedInputs, batch_size: int) -> list[Image.Image]:
    """A1111's ``img2img_color_correction``: each result towards its init image's colours (by position in the
    batch; one init image serves the whole batch)."""
    targets = [correction_target(image) for image in prepared.images]
    if len(targets) == 1:
        targets *= batch_size
    return [apply_color_correction(targets[i % batch_size], image) if i % batch_size < len(targets) else image
            for i, image in enumerate(images)]


def finished(images: list[Image.Image], prepared: PreparedInputs, batch_size: int, correct_colors: bool
             ) -> list[Image.Image]:
    """Decoded img2img results as A1111 returns them: colour-corrected when ``img2img_color_correction`` is on,
    then composited under the original's unmasked pixels."""
    if correct_colors:
        images = color_correct(images, prepared, batch_size)
    return composite(images, prepared, batch_size)
