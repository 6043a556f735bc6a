"""A1111's CFG denoiser for our own k-diffusion loops: ``(x, sigma) -> denoised`` with classifier-free guidance.

What A1111 v1.2.1's ``CFGDenoiser`` wrapped around k-diffusion's ``CompVisDenoiser`` does on every call:

* stop the sampler when the job is interrupted or skipped (checked before each model call);
* pick this call's conditioning from the prompt schedules by its own call counter (``AND`` parts as extra rows);
* scale each row's input by ``c_in = 1 / sqrt(sigma^2 + 1)``, call the UNet at the fractional timestep of sigma,
  and turn its noise prediction into a denoised row ``x + eps * (-sigma)``;
* combine the denoised rows (not the noise predictions): ``uncond + sum(weight * cfg * (cond_i - uncond))``;
* for img2img with a mask, keep the original where the mask is 1: ``init * mask + nmask * denoised``.

An inpainting UNet's extra input channels (``image_cond``) follow each row's scaled input, unscaled, as ldm's
``c_concat`` does.

Cond and uncond rows share one UNet call when their token lengths agree; otherwise the cond rows go in slices of
twice the image count and the uncond rows on their own, as A1111 does (padding would change the result).
"""

from __future__ import annotations

import torch

from sdapi.engine.control import JobControl
from sdapi.engine.prompt_conds import BatchConds
from sdapi.engine.sigmas import DiscreteSchedule


class SamplingInterrupted(Exception):
    """The job was interrupted or skipped while sampling (A1111's ``InterruptedException``)."""


def unet_rows(model, x_in: torch.Tensor, t_in: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor) -> torch.Tensor:
    """The UNet's noise prediction for every cond row followed by every uncond row (float32).

    Args:
        model: the loaded model (its ``unet`` and ``dtype``).
        x_in: ``(cond rows + images, C, H, W)`` model input (scaled latent, then any image conditioning).
        t_in: one timestep per row.
        cond: ``(cond rows, tokens, hidden)``; uncond: ``(images, tokens', hidden)``.
    """
    unet, dtype = model.unet, model.dtype
    images, rows = uncond.shape[0], cond.shape[0]
    if cond.shape[1] == uncond.shape[1]:
        return unet(x_in.to(dtype), t_in, encoder_hidden_states=torch.cat([cond, uncond]).to(dtype)).sample.float()
    out = []
    for a in range(0, rows, 2 * images):
        b = min(a + 2 * images, rows)
        out.append(unet(x_in[a:b].to(dtype), t_in[a:b], encoder_hidden_states=cond[a:b].to(dtype)).sample.float())
    out.append(unet(x_in[rows:].to(dtype), t_in[rows:], encoder_hidden_states=uncond.to(dtype)).sample.float())
    return torch.cat(out)


class CfgDenoiser:
    """The guided denoiser of one batch; counts its calls for the prompt schedules.

    Args:
        model: the loaded model (``unet``, ``dtype``).
        schedule: the model's discrete noise schedule (sigma to fractional timestep).
        conds: the batch's scheduled conditioning.
        cfg_scale: classifier-free guidance scale.
        control: the job's control, checked for interrupt/skip before each call.
        image_cond: an inpainting UNet's extra input channels per image, or ``None``.
        mask, init_latent: img2img's mask (1 keeps the original) and encoded original, or ``None``.
        nmask: the repaint weights (A1111 keeps its own ``latmask`` for these rather than computing
            ``1 - mask``, which can differ in the last bit); default ``1 - mask``.
    """

    def __init__(self, model, schedule: DiscreteSchedule, conds: BatchConds, cfg_scale: float,
                 control: JobControl | None = None, image_cond: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None, init_latent: torch.Tensor | None = None,
                 nmask: torch.Tensor | None = None):
        self.model = model
        self.schedule = schedule
        self.conds = conds
        self.cfg_scale = cfg_scale
        self.control = control
        self.image_cond = image_cond
        self.mask = mask
        self.init_latent = init_latent
        self.nmask = nmask if nmask is not None or mask is None else 1.0 - mask
        self.step = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Denoise ``x`` (``(images, C, H, W)``) at ``sigma`` (one per image).

        Raises:
            SamplingInterrupted: the job asked to stop.
        """
        if self.control is not None and self.control.should_stop():
            raise SamplingInterrupted()
        cond, conds_list = self.conds.cond_at(self.step)
        uncond = self.conds.uncond_at(self.step)
        repeats = [len(parts) for parts in conds_list]
        x_in, sigma_in = rows_for(x, repeats), rows_for(sigma, repeats)
        c_out = -sigma_in[:, None, None, None]
        c_in = 1 / (sigma_in ** 2 + 1.0) ** 0.5
        t_in = self.schedule.sigma_to_t(sigma_in.cpu()).to(x.device)
        model_in = x_in * c_in[:, None, None, None]
        if self.image_cond is not None:
            model_in = torch.cat([model_in, rows_for(self.image_cond, repeats).to(model_in)], dim=1)
        eps = unet_rows(self.model, model_in, t_in, cond.to(x.device), uncond.to(x.device))
        denoised_rows = x_in + eps * c_out
        self.step += 1
        denoised = combine_denoised(denoised_rows, conds_list, x.shape[0], self.cfg_scale)
        if self.mask is not None:
            denoised = self.init_latent * self.mask + self.nmask * denoised
        return denoised


def rows_for(per_image: torch.Tensor, repeats: list[int]) -> torch.Tensor:
    """Per-image values laid out as the UNet batch: image ``i`` once per ``AND`` part, then once per image."""
    return torch.cat([torch.stack([per_image[i]] * n) for i, n in enumerate(repeats)] + [per_image])


def combine_denoised(rows: torch.Tensor, conds_list: list[list[tuple[int, float]]], images: int,
                     cfg_scale: float) -> torch.Tensor:
    """A1111's ``combine_denoised``: each image's uncond row plus its weighted, scaled cond differences.

    Args:
        rows: denoised cond rows followed by ``images`` uncond rows.
        conds_list: per image, ``(cond row, weight)`` of each ``AND`` part.
        images: images in the batch.
        cfg_scale: guidance scale.
    """
    uncond = rows[-images:]
    denoised = torch.clone(uncond)
    for i, parts in enumerate(conds_list):
        for row, weight in parts:
            denoised[i] += (rows[row] - uncond[i]) * (weight * cfg_scale)
    return denoised
