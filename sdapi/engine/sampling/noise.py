"""Seeded noise, drawn the way A1111 v1.2.1 draws it: initial latents, per-step ancestral noise, Brownian noise.

Each image owns a ``torch.Generator`` seeded with its seed. Its first draw is the initial latent
(``torch.manual_seed(seed); torch.randn((4, h, w))`` in A1111); ancestral samplers keep drawing their
per-step noise from the same stream, which is what A1111 does (with ``enable_batch_seeds`` it pre-draws
them right after the latent, giving the same numbers).

A1111 replaces k-diffusion's ``torch.randn_like`` (``TorchHijack``): while pre-drawn noises are left it returns the
next one, and after that (or when one has the wrong shape) it draws from the global generator. Noises are
pre-drawn (``create_random_tensors``) when a batch has several seeds (``enable_batch_seeds``) or when
``eta_noise_seed_delta`` is set: ``p.steps`` of them per image, right after that image's initial latent, from its
seed's stream (or from ``seed + delta`` reseeded). So a batch's image ``i`` gets the same step noise as a single
run with its seed, for as many draws as there are steps. The global generator after the pre-draw is the *last*
image's stream, which is where draws past the pre-drawn ones come from.

DPM++ SDE draws from one Brownian tree per image, seeded with the image's seed (A1111's
``create_noise_sampler``), so its images do not depend on the batch either.
"""

from __future__ import annotations

from collections import deque

import torch
import torchsde


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


def step_noise_generators(seeds: list[int], generators: list[torch.Generator], delta: int) -> list[torch.Generator]:
    """The streams each image's step noise is drawn from.

    Args:
        seeds: the batch's seeds.
        generators: each image's generator, positioned right after its initial latent.
        delta: A1111's ``eta_noise_seed_delta`` (0: continue the seed streams).

    Returns:
        ``generators`` themselves, or fresh ones seeded with ``seed + delta`` on the same devices.
    """
    if delta <= 0:
        return generators
    return [torch.Generator(g.device).manual_seed(int(seed) + int(delta)) for seed, g in zip(seeds, generators)]


class SamplerNoise:
    """``randn_like`` for a sampling function, with A1111's pre-drawn batch noise.

    Called as a k-diffusion noise sampler, ``noise(like, sigma, sigma_next)``; the noise levels are ignored.

    Args:
        generators: per image, the stream its step noise comes from (:func:`step_noise_generators`).
        count: noises pre-drawn per image (A1111: the requested step count).
        shape: one image's noise shape as A1111 pre-draws it (the seed-resize shape when that is used).
        predraw: pre-draw at all (``len(seeds) > 1 and enable_batch_seeds``, or a seed delta).
    """

    def __init__(self, generators: list[torch.Generator], count: int, shape: tuple[int, ...], predraw: bool):
        self.generators = generators
        self.count = count
        self.shape = tuple(shape)
        # None until the first request when pre-drawing; an empty queue when not.
        self.pending: deque[torch.Tensor] | None = None if predraw else deque()

    def _predraw(self) -> deque:
        # The streams are this object's alone, so drawing at the first request gives A1111's numbers; a sampler
        # that never asks leaves them untouched.
        per_image = [[randn_on(g, self.shape) for _ in range(self.count)] for g in self.generators]
        return deque(torch.stack([noises[j] for noises in per_image]) for j in range(self.count))

    def __call__(self, like: torch.Tensor, sigma=None, sigma_next=None) -> torch.Tensor:
        """Standard normal noise shaped like ``like``, on its device."""
        if self.pending is None:
            self.pending = self._predraw()
        if self.pending:
            noise = self.pending.popleft()
            if noise.shape == like.shape:
                return noise.to(like.device, like.dtype)
        return randn_on(self.generators[-1], tuple(like.shape)).to(like.device, like.dtype)

    def global_stream(self) -> "SamplerNoise":
        """The stream ldm's samplers draw from (A1111's global generator: the last image's, nothing pre-drawn)."""
        return SamplerNoise(self.generators, 0, self.shape, predraw=False)


class StackedNoise:
    """The step noise of several jobs sampled as one batch: each job's rows come from that job's own source, so
    every image gets exactly the numbers it gets when its job runs alone.

    Args:
        parts: each job's noise source (:class:`SamplerNoise`), in batch order.
        sizes: each job's row count.
    """

    def __init__(self, parts: list[SamplerNoise], sizes: list[int]):
        self.parts = parts
        self.sizes = sizes

    def __call__(self, like: torch.Tensor, sigma=None, sigma_next=None) -> torch.Tensor:
        rows = torch.split(like, self.sizes)
        return torch.cat([part(row, sigma, sigma_next) for part, row in zip(self.parts, rows)])

    def global_stream(self) -> "StackedNoise":
        return StackedNoise([part.global_stream() for part in self.parts], self.sizes)


def batch_step_noise(seeds: list[int], generators: list[torch.Generator], steps: int, shape: tuple[int, ...],
                     delta: int = 0, batch_seeds: bool = True) -> SamplerNoise:
    """A batch's ancestral noise as A1111's ``create_random_tensors`` prepares it.

    Args:
        seeds: the batch's seeds.
        generators: each image's generator, right after its initial latent.
        steps: the requested step count (A1111's ``number_of_needed_noises``).
        shape: one image's seed-noise shape (:func:`seed_noise_shape`).
        delta: ``eta_noise_seed_delta``.
        batch_seeds: ``enable_batch_seeds``.

    Returns:
        The noise source for the batch's sampling function.
    """
    predraw = (len(seeds) > 1 and batch_seeds) or delta > 0
    return SamplerNoise(step_noise_generators(seeds, generators, delta), steps, shape, predraw)


class BrownianNoise:
    """k-diffusion's ``BrownianTreeNoiseSampler`` with one ``torchsde.BrownianTree`` per image (DPM++ SDE).

    Args:
        x: the batch's starting latent (shape, device, dtype).
        sigma_min, sigma_max: the range the trees cover (the schedule's smallest non-zero sigma and its largest).
        seeds: one seed per image.
    """

    def __init__(self, x: torch.Tensor, sigma_min: torch.Tensor, sigma_max: torch.Tensor, seeds: list[int]):
        t0, t1 = torch.as_tensor(sigma_min), torch.as_tensor(sigma_max)
        t0, t1, self.sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        w0 = torch.zeros_like(x)[0]
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=int(seed)) for seed in seeds]

    def __call__(self, like: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        low, high, sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        w = torch.stack([tree(low, high) for tree in self.trees]) * (self.sign * sign)
        return w / (t1 - t0).abs().sqrt()


# What the sampling core draws step noise from: one job's stream, or several jobs' side by side.
StepNoise = SamplerNoise | StackedNoise
