"""Image encoding for responses: base64 PNG/JPEG/WEBP carrying the infotext, as A1111's ``encode_pil_to_base64``."""

from __future__ import annotations

import base64
import io

from PIL import Image, PngImagePlugin

from sdapi.errors import ApiError


def encode_image(image: Image.Image, fmt: str = "png", jpeg_quality: int = 80, pnginfo: bool = True) -> str:
    """Bare base64 (no ``data:`` prefix) of ``image`` in the ``samples_format`` option's format.

    PNG gets every string item of ``image.info`` (the infotext under ``parameters``) as a text chunk.
    JPEG/WEBP carry the infotext as an EXIF UserComment.
    """
    buf = io.BytesIO()
    fmt = fmt.lower()
    if fmt == "png":
        meta = PngImagePlugin.PngInfo()
        if pnginfo:
            for key, value in image.info.items():
                if isinstance(key, str) and isinstance(value, str):
                    meta.add_text(key, value)
        image.save(buf, format="PNG", pnginfo=meta)
    elif fmt in ("jpg", "jpeg", "webp"):
        exif = Image.Exif()
        text = image.info.get("parameters") if pnginfo else None
        if text:
            # EXIF UserComment: 8-byte charset header then UTF-16 text, as piexif's "unicode" encoding writes it.
            exif[0x9286] = b"UNICODE\0" + text.encode("utf-16be")
        kwargs = {"quality": int(jpeg_quality), "exif": exif.tobytes()}
        image.convert("RGB").save(buf, format="JPEG" if fmt != "webp" else "WEBP", **kwargs)
    else:
        raise ApiError("Invalid image format", status_code=500)
    return base64.b64encode(buf.getvalue()).decode("ascii")
