"""Image encoding for responses: base64 PNG/JPEG/WEBP carrying the infotext, as A1111's ``encode_pil_to_base64``."""

from __future__ import annotations

import base64
import io
from typing import IO

from PIL import Image, PngImagePlugin

from sdapi.errors import ApiError

EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
DATA_URL_PREFIX = "data:image/"


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
        text = image.info.get("parameters") if pnginfo else None
        kwargs = {"quality": int(jpeg_quality), "exif": user_comment_exif(text)}
        image.convert("RGB").save(buf, format="JPEG" if fmt != "webp" else "WEBP", **kwargs)
    else:
        raise ApiError("Invalid image format", status_code=500)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def user_comment_exif(text: str | None) -> bytes:
    """EXIF bytes holding ``text`` as the UserComment (empty EXIF for no text): where A1111 keeps a JPEG's or
    WEBP's infotext."""
    exif = Image.Exif()
    if text:
        # UserComment lives in the Exif sub-IFD, where A1111's reader (piexif) looks; 8-byte charset header
        # then UTF-16 text, as piexif's "unicode" encoding writes it.
        exif.get_ifd(EXIF_IFD)[USER_COMMENT] = b"UNICODE\0" + text.encode("utf-16be")
    return exif.tobytes()


def write_image_file(out: IO[bytes], image: Image.Image, fmt: str, infotext: str | None, quality: int,
                     webp_lossless: bool = False) -> None:
    """Write ``image`` as a saved file (A1111's ``save_image``): a PNG gets only the infotext (text chunk
    ``parameters``), a JPEG or WEBP gets it as EXIF UserComment, with the ``jpeg_quality`` and ``webp_lossless``
    options.

    Args:
        infotext: ``None`` for no infotext (``enable_pnginfo`` off).
    """
    fmt = fmt.lower()
    if fmt == "png":
        meta = PngImagePlugin.PngInfo()
        if infotext is not None:
            meta.add_text("parameters", infotext)
        image.save(out, format="PNG", pnginfo=meta)
    elif fmt in ("jpg", "jpeg", "webp"):
        image = image if image.mode in ("RGB", "L") else image.convert("RGB")
        image.save(out, format="WEBP" if fmt == "webp" else "JPEG", quality=int(quality), lossless=webp_lossless,
                   exif=user_comment_exif(infotext))
    else:
        raise ValueError(f"cannot save images as {fmt!r}")


def decode_image(encoded: str) -> Image.Image:
    """A request image: bare base64 or a ``data:image/...;base64,`` URL, as A1111's ``decode_base64_to_image``.

    Raises:
        ApiError: 500 ``Invalid encoded image`` (A1111's status and wording) when it is not a readable image.
    """
    if not isinstance(encoded, str):  # e.g. an object in ``init_images``: A1111 fails on it too, less clearly
        raise ApiError("Invalid encoded image", status_code=500)
    if encoded.startswith(DATA_URL_PREFIX):
        encoded = encoded.split(",", 1)[-1]
    try:
        image = Image.open(io.BytesIO(base64.b64decode(encoded)))
        image.load()
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the client's bad image
        raise ApiError("Invalid encoded image", status_code=500) from exc
    return image


def read_user_comment(image: Image.Image) -> str:
    """The EXIF UserComment of a JPEG/WEBP (where A1111 keeps the infotext), or ``""``."""
    try:
        raw = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT, b"")
    except Exception:  # noqa: BLE001 - malformed EXIF: no comment
        return ""
    if isinstance(raw, str):
        return raw
    header, body = raw[:8], raw[8:]
    if header.startswith(b"UNICODE"):
        encoding = "utf-16le" if body[:1] != b"\0" and body[1:2] == b"\0" else "utf-16be"
        return body.decode(encoding, errors="ignore")
    if header.startswith(b"ASCII"):
        return body.decode("ascii", errors="ignore")
    return raw.decode("utf-8", errors="ignore")
