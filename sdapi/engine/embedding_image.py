"""Embeddings carried by an image, as A1111 v1.2.1's ``image_embedding.py`` stores them.

Both ways store A1111's JSON of the embedding (tensors as ``{"TORCHTENSOR": nested lists}``, never a pickle): in
the PNG's ``sd-ti-embedding`` text chunk as base64, or hidden in the pixels.

In the pixels, A1111's training stores it in two blocks beside the picture: the zlib-compressed JSON, split into low and high nibbles, each nibble
stored in the low 4 bits of a block's channels after an XOR with a fixed pseudo-random stream (a linear
congruential generator from seed 0); the high 4 bits only draw a pattern. A black column separates each block from
the picture, and a black border may surround everything. Reading reverses that: crop the border, keep the low
nibbles, cut at the outermost all-zero columns, undo the XOR, join the nibbles, decompress, parse.
"""

from __future__ import annotations

import base64
import functools
import json
import zlib
from typing import Any

import numpy as np
import torch
from PIL import Image

# A1111's ``lcg`` parameters (Numerical Recipes' constants), each value taken modulo 255.
LCG_MODULUS, LCG_MULTIPLIER, LCG_INCREMENT = 2 ** 32, 1664525, 1013904223
CHANNELS = 3


def tensor_hook(obj: dict[str, Any]) -> Any:
    """JSON object hook turning A1111's ``{"TORCHTENSOR": nested lists}`` into a tensor."""
    if "TORCHTENSOR" in obj:
        return torch.from_numpy(np.array(obj["TORCHTENSOR"], dtype=np.float64))
    return obj


def decode_b64_embedding(text: str) -> dict[str, Any]:
    """A1111's ``embedding_from_b64``: the text chunk's base64 JSON.

    Raises:
        ValueError: not base64 of JSON (``binascii.Error`` is one).
    """
    return json.loads(base64.b64decode(text), object_hook=tensor_hook)


@functools.lru_cache(maxsize=8)
def _xor_stream(length: int) -> np.ndarray:
    """The first ``length`` values of A1111's generator, low nibble only (what the XOR reaches in the data)."""
    values = np.empty(length, dtype=np.uint8)
    seed = 0
    for i in range(length):
        seed = (LCG_MULTIPLIER * seed + LCG_INCREMENT) % LCG_MODULUS
        values[i] = (seed % 255) & 0x0F
    return values


def unmask_block(block: np.ndarray) -> np.ndarray:
    """A block's low nibbles with the generator's stream XORed back out (row-major order, as it went in)."""
    stream = _xor_stream(block.size).reshape(block.shape)
    return np.bitwise_xor(block.astype(np.uint8), stream)


def mask_block(block: np.ndarray) -> np.ndarray:
    """The inverse of :func:`unmask_block` (the same XOR); tests build hidden-embedding pictures with it."""
    return unmask_block(block)


def _crop_black(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` without the rows and columns at the edges where every pixel is exactly black."""
    lit = (pixels > 0).all(axis=2)
    columns, rows = lit.any(axis=0), lit.any(axis=1)
    if not columns.any():
        return pixels[:0, :0]
    left, right = columns.argmax(), len(columns) - columns[::-1].argmax()
    top, bottom = rows.argmax(), len(rows) - rows[::-1].argmax()
    return pixels[top:bottom, left:right]


def extract_image_embedding(image: Image.Image) -> dict[str, Any] | None:
    """The embedding dictionary hidden in ``image``, or ``None`` when it has no data blocks (a plain picture).

    Raises:
        zlib.error, ValueError: blocks that do not decode (the caller reports the file as unreadable).
    """
    nibbles = _crop_black(np.asarray(image.convert("RGB"), dtype=np.uint8)) & 0x0F
    empty_columns = np.flatnonzero(nibbles.sum(axis=(0, 2)) == 0)
    if len(empty_columns) < 2:
        return None
    low = unmask_block(nibbles[:, :empty_columns.min(), :])
    high = unmask_block(nibbles[:, empty_columns.max() + 1:, :])
    if low.shape != high.shape:
        raise ValueError("the two data blocks differ in size")
    payload = ((high << 4) | low).astype(np.uint8).tobytes()
    return json.loads(zlib.decompress(payload), object_hook=tensor_hook)
