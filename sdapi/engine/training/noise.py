"""Noise, timesteps and loss weights of one training step (kohya's ``noise_offset``, multires noise, Min-SNR)."""

from __future__ import annotations

import torch


def pyramid_noise(noise: torch.Tensor, generator: torch.Generator, iterations: int, discount: float) -> torch.Tensor:
    """kohya's multires ("pyramid") noise: coarser noise upsampled and added at ``discount ** i``, re-normalised."""
    batch, channels, height, width = noise.shape
    upsample = torch.nn.Upsample(size=(height, width), mode="bilinear")
    for i in range(iterations):
        ratio = float(torch.rand((), generator=generator, device=generator.device)) * 2 + 2
        h, w = max(1, int(height / ratio ** i)), max(1, int(width / ratio ** i))
        coarse = torch.randn(batch, channels, h, w, generator=generator, device=generator.device)
        noise = noise + upsample(coarse.to(noise.device)) * discount ** i
        if h == 1 or w == 1:
            break
    return noise / noise.std()


def make_noise(latents: torch.Tensor, generator: torch.Generator, offset: float | None,
               multires_iterations: int | None, multires_discount: float) -> torch.Tensor:
    """Gaussian noise shaped like ``latents``, with the request's offset and multires additions."""
    noise = torch.randn(latents.shape, generator=generator, device=generator.device).to(latents.device)
    if offset:
        shift = torch.randn((latents.shape[0], latents.shape[1], 1, 1), generator=generator, device=generator.device)
        noise = noise + offset * shift.to(latents.device)
    if multires_iterations:
        noise = pyramid_noise(noise, generator, multires_iterations, multires_discount)
    return noise


def sample_timesteps(batch: int, generator: torch.Generator, low: int | None, high: int | None,
                     device: torch.device) -> torch.Tensor:
    """Uniform integer timesteps in ``[min_timestep, max_timestep)`` (default the full 0..999)."""
    steps = torch.randint(low or 0, high or 1000, (batch,), generator=generator, device=generator.device)
    return steps.to(device)


def min_snr_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float,
                    v_prediction: bool) -> torch.Tensor:
    """Min-SNR-γ loss weights: ``min(snr, γ) / snr`` for ε-prediction, ``/(snr + 1)`` for v-prediction."""
    alpha = alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alpha / (1 - alpha)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1) if v_prediction else clipped / snr
