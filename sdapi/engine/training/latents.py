"""Training images as VAE latents: cropped to their bucket, encoded once and kept (``cache_latents``).

kohya encodes ``latent_dist.sample()`` once per image (and once more flipped with ``flip_aug``); with
``cache_latents_to_disk`` the latents are kept in the job's folder, keyed by file, size, bucket and flip, so a
rerun of the same dataset skips the VAE. Nothing is ever written next to the user's images.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdapi.files import write_atomically
from sdapi.engine.training.buckets import Size, cover_and_crop_box
from sdapi.engine.training.plan import Entry


def load_bucket_image(path: Path, bucket: Size, flip: bool) -> torch.Tensor:
    """An image scaled to cover its bucket, centre-cropped, as ``(3, h, w)`` in ``[-1, 1]``."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        resized, box = cover_and_crop_box(image.width, image.height, bucket)
        image = image.resize(resized, Image.LANCZOS).crop(box)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    return tensor.flip(-1) if flip else tensor


class LatentSource:
    """Latents of training entries, encoded on demand and kept when caching.

    Args:
        vae: the pipeline's VAE.
        device: where the VAE runs.
        generator: seeds ``latent_dist.sample``.
        keep: keep encoded latents in memory (``cache_latents``).
        disk_dir: also keep them on disk here (``cache_latents_to_disk``), or ``None``.
    """

    def __init__(self, vae, device: torch.device, generator: torch.Generator, keep: bool, disk_dir: Path | None):
        self.vae = vae
        self.device = device
        self.generator = generator
        self.keep = keep
        self.disk_dir = disk_dir
        self._memory: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def _key(entry: Entry, flip: bool) -> tuple:
        stat = entry.item.path.stat()
        return str(entry.item.path), stat.st_mtime_ns, stat.st_size, entry.bucket, flip

    def _disk_path(self, key: tuple) -> Path:
        digest = hashlib.sha1(repr(key).encode()).hexdigest()
        return self.disk_dir / f"{digest}.pt"

    @torch.no_grad()
    def _encode(self, entry: Entry, flip: bool) -> torch.Tensor:
        pixels = load_bucket_image(entry.item.path, entry.bucket, flip)[None].to(self.device, self.vae.dtype)
        dist = self.vae.encode(pixels).latent_dist
        return (dist.sample(generator=self.generator) * self.vae.config.scaling_factor)[0].float()

    def get(self, entry: Entry, flip: bool = False) -> torch.Tensor:
        """The ``(4, h/8, w/8)`` latent of one entry (flipped or not)."""
        key = self._key(entry, flip)
        latent = self._memory.get(key)
        if latent is not None:
            return latent
        disk = self._disk_path(key) if self.disk_dir is not None else None
        if disk is not None and disk.is_file():
            latent = torch.load(disk, map_location=self.device, weights_only=True)
        else:
            latent = self._encode(entry, flip)
            if disk is not None:
                disk.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(disk, functools.partial(torch.save, latent.cpu()))
        if self.keep:
            self._memory[key] = latent
        return latent

    def fill(self, entries: list[Entry], flips: tuple[bool, ...], progress=None) -> None:
        """Encode every entry up front (what ``cache_latents`` does before the first step)."""
        for index, entry in enumerate(entries):
            for flip in flips:
                self.get(entry, flip)
            if progress is not None:
                progress(index + 1, len(entries))
