"""``/sdapi/v1/png-info``: the generation parameters stored in an image, as A1111's ``read_info_from_image``."""

from __future__ import annotations

from typing import Any

from PIL import Image

from sdapi.images import read_user_comment

# PIL bookkeeping that A1111 drops from ``items`` once it has read the EXIF.
_PIL_FIELDS = ("jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "exif", "loop", "background",
               "timestamp", "duration")


def read_info_from_image(image: Image.Image) -> tuple[str | None, dict[str, Any]]:
    """The infotext (``parameters`` text chunk, else EXIF UserComment) and the image's other info items."""
    items = dict(image.info or {})
    geninfo = items.pop("parameters", None)
    if "exif" in items:
        comment = read_user_comment(image)
        if comment:
            items["exif comment"] = comment
            geninfo = comment
        for name in _PIL_FIELDS:
            items.pop(name, None)
    return geninfo, _json_items(items)


def _json_items(items: dict[str, Any]) -> dict[str, Any]:
    """Keep what JSON can carry (text chunks, numbers); binary blobs such as ICC profiles are dropped."""
    clean: dict[str, Any] = {}
    for key, value in items.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            clean[str(key)] = value
        elif isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value):
            clean[str(key)] = list(value)
    return clean


def png_info(image: Image.Image) -> dict[str, Any]:
    """The ``PNGInfoResponse`` body: ``info`` (``""`` when absent) and ``items`` led by ``parameters``."""
    geninfo, items = read_info_from_image(image)
    geninfo = geninfo or ""
    return {"info": geninfo, "items": {"parameters": geninfo, **items}}
