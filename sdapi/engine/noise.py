"""Seeds and initial noise, drawn the way A1111 v1.2.1 draws them.

Each image owns a ``torch.Generator`` seeded with its seed. Its first draw is the initial latent
(``torch.manual_seed(seed); torch.randn((4, h, w))`` in A1111); ancestral samplers keep drawing their
per-step noise from the same stream, which is what A1111 does (with ``enable_batch_seeds`` it pre-draws
them right after the latent, giving the same numbers).
"""

from __future__ import annotations

import random

import torch

MAX_SEED = 4294967294


def resolve_seed(seed: int | float | None) -> int:
    """A1111's ``get_fixed_seed``: ``None``, ``""`` or ``-1`` become a random seed."""
    if seed is None or seed == "" or seed == -1:
        return int(random.randrange(MAX_SEED))
    return int(seed)


def image_seeds(seed: int, subseed: int, subseed_strength: float, count: int) -> tuple[list[int], list[int]]:
    """Per-image seeds and subseeds: ``seed + i``, except that variation keeps every image on ``seed``."""
    seeds = [seed if subseed_strength else seed + i for i in range(count)]
    return seeds, [subseed + i for i in range(count)]


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation as A1111 uses it for variation seeds (normalised along dim 1 of ``(4, h, w)``)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def randn_on(generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """float32 normal noise from ``generator``, drawn on the generator's own device (CPU or CUDA)."""
    return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)


def noise_device(device: torch.device | str, randn_source: str = "GPU") -> torch.device:
    """Where A1111 draws seeded noise: on a CUDA device's own generator unless ``randn_source`` is ``"CPU"``.

    CUDA and CPU generators give different numbers for the same seed, so GPU-made A1111 images are reproduced
    only with noise from the CUDA generator, and the CPU-made ones (and any ``randn_source: CPU`` ones) with the
    CPU's. Other devices (MPS) always draw on the CPU, as A1111 does.
    """
    device = torch.device(device)
    return device if device.type == "cuda" and randn_source != "CPU" else torch.device("cpu")


def seed_noise_shape(shape: tuple[int, int, int], seed_resize_from: tuple[int, int] = (-1, -1)) -> tuple[int, ...]:
    """The shape each seed's noise is drawn at: ``shape``, or the seed-resize source size in latent pixels."""
    from_w, from_h = seed_resize_from
    return (shape[0], from_h // 8, from_w // 8) if from_w > 0 and from_h > 0 else tuple(shape)


def initial_noise(
    seeds: list[int],
    subseeds: list[int],
    subseed_strength: float,
    shape: tuple[int, int, int],
    seed_resize_from: tuple[int, int] = (-1, -1),
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Initial latent noise for a batch, plus each image's generator positioned for its step noise.

    Args:
        seeds, subseeds: one per image in this batch.
        subseed_strength: variation amount (0 = none).
        shape: latent shape of one image, ``(4, height // 8, width // 8)``.
        seed_resize_from: ``(width, height)`` to draw the noise at before pasting it centred (both > 0 to apply).
        device: the generators' device (:func:`noise_device`).

    Returns:
        ``(noise (B, 4, h, w) float32 on that device, generators)``.
    """
    noises, generators = [], []
    noise_shape = seed_noise_shape(shape, seed_resize_from)
    resize = noise_shape != tuple(shape)
    for seed, subseed in zip(seeds, subseeds):
        subnoise = None
        if subseed_strength:
            subnoise = randn_on(torch.Generator(device).manual_seed(subseed), noise_shape)
        generator = torch.Generator(device).manual_seed(seed)
        noise = randn_on(generator, noise_shape)
        if subnoise is not None:
            noise = slerp(subseed_strength, noise, subnoise)
        if resize:
            # A1111 reseeds and draws the full-size noise last, so step noise continues from that draw.
            generator = torch.Generator(device).manual_seed(seed)
            noise = _paste_centred(noise, randn_on(generator, shape))
        noises.append(noise)
        generators.append(generator)
    return torch.stack(noises), generators


def _paste_centred(small: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """Paste ``small`` into the middle of ``full`` (cropping whichever is larger), A1111's seed resize."""
    _, fh, fw = full.shape
    _, sh, sw = small.shape
    dx, dy = (fw - sw) // 2, (fh - sh) // 2
    w = sw if dx >= 0 else sw + 2 * dx
    h = sh if dy >= 0 else sh + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    full[:, ty:ty + h, tx:tx + w] = small[:, sy:sy + h, sx:sx + w]
    return full
