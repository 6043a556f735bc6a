"""Textual-inversion embedding files in every layout A1111 reads, written from seeded vectors for the tests."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from sdapi.engine.demo_embedding import embedding_vectors
from sdapi.engine.embedding_image import mask_block
from sdapi.engine.ldm_layout import write_safetensors


def a1111_data(vectors: torch.Tensor, name: str) -> dict:
    """What A1111's ``Embedding.save`` stores."""
    return {"string_to_token": {"*": 265}, "string_to_param": {"*": vectors}, "name": name, "step": 500,
            "sd_checkpoint": "abcdef1234", "sd_checkpoint_name": "demo-sd15"}


def write_a1111_pt(path: Path, vectors: torch.Tensor) -> Path:
    torch.save(a1111_data(vectors, "name-inside-the-file"), path)
    return path


def write_diffusers_bin(path: Path, vector: torch.Tensor, token: str = "<concept>") -> Path:
    """diffusers' ``learned_embeds.bin``: one token, one 1-D vector."""
    torch.save({token: vector}, path)
    return path


def write_kohya(path: Path, vectors: torch.Tensor) -> Path:
    return write_safetensors({"emb_params": vectors}, path)


def write_sdxl(path: Path, clip_l: torch.Tensor, clip_g: torch.Tensor) -> Path:
    return write_safetensors({"clip_l": clip_l, "clip_g": clip_g}, path)


def _json(data: dict) -> str:
    return json.dumps(data, default=lambda t: {"TORCHTENSOR": t.tolist()})


def write_png_text(path: Path, vectors: torch.Tensor, name: str) -> Path:
    """A picture with A1111's ``sd-ti-embedding`` text chunk (base64 of its JSON)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("sd-ti-embedding", base64.b64encode(_json(a1111_data(vectors, name)).encode()).decode())
    Image.new("RGB", (16, 16), (90, 120, 150)).save(path, pnginfo=info)
    return path


def write_png_pixels(path: Path, vectors: torch.Tensor, name: str, height: int = 32) -> Path:
    """A picture with the embedding in the low nibbles of two side blocks, laid out as A1111's
    ``insert_image_data_embed`` lays it out (the high nibbles set to a constant instead of its pattern)."""
    payload = np.frombuffer(zlib.compress(_json(a1111_data(vectors, name)).encode(), 9), np.uint8)
    per_column = height * 3
    data = np.resize(payload, -(-len(payload) // per_column) * per_column)  # repeats the data, as A1111 pads
    blocks = [(mask_block((part & 0x0F).reshape(height, -1, 3)) | 0x40).astype(np.uint8)
              for part in (data, data >> 4)]
    picture = np.full((height, 8, 3), (200, 100, 50), np.uint8)
    gap = np.zeros((height, 1, 3), np.uint8)
    Image.fromarray(np.concatenate([blocks[0], gap, picture, gap, blocks[1]], axis=1)).save(path)
    return path


def seeded(count: int, width: int, seed: int) -> torch.Tensor:
    return embedding_vectors(count, width, seed)
