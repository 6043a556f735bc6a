"""Ancestral (per-step) noise for our own k-diffusion loops, drawn as A1111 v1.2.1 draws it.

A1111 replaces k-diffusion's ``torch.randn_like`` (``TorchHijack``): while pre-drawn noises are left it returns the
next one, and after that (or when one has the wrong shape) it draws from the global generator. Noises are
pre-drawn (``create_random_tensors``) when a batch has several seeds (``enable_batch_seeds``) or when
``eta_noise_seed_delta`` is set: ``p.steps`` of them per image, right after that image's initial latent, from its
seed's stream (or from ``seed + delta`` reseeded). So a batch's image ``i`` gets the same step noise as a single
run with its seed, for as many draws as there are steps.

Each image's ``torch.Generator`` here is the stream A1111's global generator is on for that image; the global
generator after the pre-draw is the *last* image's stream, which is where draws past the pre-drawn ones come from.
With one seed and no delta nothing is pre-drawn and every draw continues that seed's stream, which is the same.
"""

from __future__ import annotations

from collections import deque

import torch

from sdapi.engine.noise import randn_on


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
    """``randn_like`` for a sampling loop, with A1111's pre-drawn batch noise.

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
        # The streams are this object's alone, so drawing at the first request gives A1111's numbers; a loop that
        # never asks (a diffusers scheduler drawing from ``generators`` itself) leaves them untouched.
        per_image = [[randn_on(g, self.shape) for _ in range(self.count)] for g in self.generators]
        return deque(torch.stack([noises[j] for noises in per_image]) for j in range(self.count))

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``like``, on its device."""
        if self.pending is None:
            self.pending = self._predraw()
        if self.pending:
            noise = self.pending.popleft()
            if noise.shape == like.shape:
                return noise.to(like.device, like.dtype)
        return randn_on(self.generators[-1], tuple(like.shape)).to(like.device, like.dtype)


def batch_step_noise(seeds: list[int], generators: list[torch.Generator], steps: int, shape: tuple[int, ...],
                     delta: int = 0, batch_seeds: bool = True) -> SamplerNoise:
    """A batch's ancestral noise as A1111's ``create_random_tensors`` prepares it.

    Args:
        seeds: the batch's seeds.
        generators: each image's generator, right after its initial latent.
        steps: the requested step count (A1111's ``number_of_needed_noises``).
        shape: one image's seed-noise shape (:func:`sdapi.engine.noise.seed_noise_shape`).
        delta: ``eta_noise_seed_delta``.
        batch_seeds: ``enable_batch_seeds``.

    Returns:
        The noise source for the batch's sampling loop.
    """
    predraw = (len(seeds) > 1 and batch_seeds) or delta > 0
    return SamplerNoise(step_noise_generators(seeds, generators, delta), steps, shape, predraw)
