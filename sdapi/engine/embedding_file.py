"""Reading one textual-inversion embedding file, in every layout A1111 v1.2.1 reads (and later A1111's SDXL one).

What a file may hold (A1111's ``load_from_file`` / v1.10.1's ``create_embedding_from_data``):

* A1111's own ``.pt``: ``{"string_to_param": {"*": (n, width)}, "name", "step", "sd_checkpoint", ...}``;
* a diffusers concept (``learned_embeds.bin``): one key, ``{token: (width,) or (n, width)}``; kohya's SD 1.x/2.x
  files (``{"emb_params": (n, width)}``) are this layout too;
* an SDXL embedding (kohya, later A1111): ``{"clip_l": (n, 768), "clip_g": (n, 1280)}``;
* a PNG that carries A1111's own layout: in its ``sd-ti-embedding`` text chunk (base64 of A1111's JSON, tensors
  as ``{"TORCHTENSOR": nested lists}``), or hidden in the low bits of the image's side blocks
  (:mod:`sdapi.engine.embedding_image`). A PNG with neither is a preview picture, not an embedding.

Pickles are read with ``torch.load(weights_only=True)`` only; the PNG layouts are JSON, never pickles. The file
stem names the embedding, except that a PNG's own ``name`` wins (as in A1111).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from sdapi.engine.embedding_image import decode_b64_embedding, extract_image_embedding
from sdapi.engine.errors import EngineError

PNG_TEXT_KEY = "sd-ti-embedding"
# The file kinds A1111 tries (upper-cased extension); other image types need PIL plugins it does not list.
PICKLE_EXTENSIONS = (".pt", ".bin")
SAFETENSORS_EXTENSIONS = (".safetensors",)
IMAGE_EXTENSIONS = (".png", ".webp", ".jxl", ".avif")
SDXL_KEYS = ("clip_l", "clip_g")


class BadEmbedding(EngineError):
    """A file in the embeddings folder that holds no embedding sdapi can read (logged, then left out)."""


@dataclass
class EmbeddingData:
    """What one file holds.

    Args:
        name: the name a prompt uses (the file stem, or a PNG's own ``name``).
        vectors: ``(n, width)`` for SD 1.x/2.x, or ``{"clip_l": (n, 768), "clip_g": (n, 1280)}`` for SDXL; float32,
            on CPU.
        step, sd_checkpoint, sd_checkpoint_name: A1111's training facts, when the file has them.
    """

    name: str
    vectors: torch.Tensor | dict[str, torch.Tensor]
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None

    @property
    def count(self) -> int:
        """How many vectors the name stands for (A1111's ``vectors``; the ``clip_g`` part's for SDXL)."""
        if isinstance(self.vectors, dict):
            return int(self.vectors["clip_g"].shape[0])
        return int(self.vectors.shape[0])

    @property
    def width(self) -> int:
        """A1111's ``shape``: the vector width (for SDXL the two parts' widths added)."""
        if isinstance(self.vectors, dict):
            return int(self.vectors["clip_g"].shape[-1] + self.vectors["clip_l"].shape[-1])
        return int(self.vectors.shape[-1])


def is_preview(path: Path) -> bool:
    """``name.preview.png``: a picture shown beside an embedding, never one itself (A1111 skips these)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and Path(path.stem).suffix.lower() == ".preview"


def read_embedding_file(path: Path) -> EmbeddingData | None:
    """The embedding in ``path``; ``None`` for a file that is not one (an image without embedding data, an
    unknown extension).

    Raises:
        BadEmbedding: a file of an embedding kind that cannot be read or understood.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    name = path.stem
    if suffix in IMAGE_EXTENSIONS:
        if is_preview(path):
            return None
        data = _image_data(path)
        if data is None:
            return None
        name = str(data.get("name") or name)
    elif suffix in PICKLE_EXTENSIONS:
        data = _pickle_data(path)
    elif suffix in SAFETENSORS_EXTENSIONS:
        data = _safetensors_data(path)
    else:
        return None
    return embedding_from_data(data, name, path.name)


def embedding_from_data(data: Any, name: str, filename: str) -> EmbeddingData:
    """A1111's layouts, told apart in its order: ``string_to_param``, SDXL's two parts, a diffusers concept.

    Raises:
        BadEmbedding: none of them, or several terms in one file (A1111's assertion).
    """
    if not isinstance(data, dict):
        raise BadEmbedding(f"{filename}: not a textual inversion embedding (no dictionary inside)")
    if "string_to_param" in data:
        params = data["string_to_param"]
        if not isinstance(params, dict) or len(params) != 1:
            raise BadEmbedding(f"{filename}: embedding file has multiple terms in it")
        vectors: Any = _matrix(next(iter(params.values())), filename)
    elif all(key in data for key in SDXL_KEYS):
        vectors = {key: _matrix(data[key], filename) for key in SDXL_KEYS}
    elif data and isinstance(next(iter(data.values())), torch.Tensor):
        if len(data) != 1:
            raise BadEmbedding(f"{filename}: embedding file has multiple terms in it")
        vectors = _matrix(next(iter(data.values())), filename)
    else:
        raise BadEmbedding(f"{filename}: couldn't identify it as a textual inversion embedding or diffuser concept")
    return EmbeddingData(name=name, vectors=vectors, step=_optional(data.get("step"), int),
                         sd_checkpoint=_optional(data.get("sd_checkpoint"), str),
                         sd_checkpoint_name=_optional(data.get("sd_checkpoint_name"), str))


def _matrix(value: Any, filename: str) -> torch.Tensor:
    """``value`` as a float32 ``(n, width)`` CPU tensor (a single vector becomes one row, as A1111 makes it)."""
    if not isinstance(value, torch.Tensor) or value.ndim not in (1, 2) or value.numel() == 0:
        raise BadEmbedding(f"{filename}: the embedding is not a vector or a matrix of vectors")
    value = value.detach().to("cpu", torch.float32)
    return value.unsqueeze(0) if value.ndim == 1 else value


def _optional(value: Any, kind: type) -> Any:
    """A training fact as A1111 reports it; a tensor-valued one (a safetensors key named ``step``) is ignored."""
    if value is None or isinstance(value, torch.Tensor):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _pickle_data(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable pickle is the same answer for the user
        raise BadEmbedding(f"{path.name}: not loadable with torch.load(weights_only=True) "
                           f"({type(exc).__name__}); convert it to .safetensors") from exc


def _safetensors_data(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001
        raise BadEmbedding(f"{path.name}: not a readable safetensors file ({type(exc).__name__})") from exc


def _image_data(path: Path) -> dict[str, Any] | None:
    """The embedding dictionary a PNG carries (text chunk first, then the pixel blocks), or ``None``."""
    try:
        with Image.open(path) as image:
            image.load()
            text = getattr(image, "text", {}) or {}
            if PNG_TEXT_KEY in text:
                return decode_b64_embedding(text[PNG_TEXT_KEY])
            return extract_image_embedding(image)
    except Exception as exc:  # noqa: BLE001 - PIL, zlib and JSON failures all mean "not readable"
        raise BadEmbedding(f"{path.name}: no readable embedding in the image ({type(exc).__name__})") from exc
