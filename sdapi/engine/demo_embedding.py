"""A tiny textual-inversion embedding for the demo checkpoints: seeded random vectors, written as a file A1111
reads (``embeddings/demo-embedding.safetensors``, kohya's ``emb_params`` layout by default)."""

from __future__ import annotations

from pathlib import Path

import torch

from sdapi.engine.demo_models import SD15_TEXT_WIDTH
from sdapi.engine.ldm_layout import write_safetensors

DEMO_EMBEDDING_NAME = "demo-embedding"
EMBEDDINGS_SUBDIR = Path("embeddings")
# Far from the tiny encoder's token embeddings (std 0.02), so a name standing for these vectors changes images.
VECTOR_STD = 0.5


def embedding_vectors(count: int, width: int = SD15_TEXT_WIDTH, seed: int = 0) -> torch.Tensor:
    """``(count, width)`` float32 vectors from a forked RNG seeded with ``seed`` (the caller's RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VECTOR_STD * torch.randn(count, width)


def write_demo_embedding(data_dir: Path, name: str = DEMO_EMBEDDING_NAME, count: int = 2, seed: int = 0) -> Path:
    """Make sure ``<data_dir>/embeddings/<name>.safetensors`` exists (``count`` vectors for the SD 1.x demo
    checkpoints) and return it; an existing file is left alone."""
    path = Path(data_dir) / EMBEDDINGS_SUBDIR / f"{name}.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_safetensors({"emb_params": embedding_vectors(count, seed=seed)}, path)
    return path
