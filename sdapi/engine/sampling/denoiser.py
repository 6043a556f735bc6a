"""A1111's two ways of guiding the model: k-diffusion's CFG denoiser and the CompVis samplers' guided prediction.

k-diffusion samplers see ``CfgDenoiser``: ``(x, sigma) -> denoised`` as A1111 v1.2.1's ``CFGDenoiser`` around
k-diffusion's ``CompVisDenoiser`` (``CompVisVDenoiser`` for v-prediction models) computes it on every call:

* stop when the job is interrupted or skipped (checked before each model call);
* pick this call's conditioning from the prompt schedules by its own call counter (``AND`` parts as extra rows);
* scale each row's input by ``c_in = 1 / sqrt(sigma^2 + 1)``, call the UNet at the fractional timestep of sigma,
  and turn its prediction into a denoised row (``x + eps * (-sigma)``, or ``v * c_out + x * c_skip``);
* combine the denoised rows (not the noise predictions): ``uncond + sum(weight * cfg * (cond_i - uncond))``;
  with ``s_min_uncond``, every second call below that sigma skips the uncond rows (guidance 1 that call);
* for img2img with a mask, keep the original where the mask is 1: ``init * mask + nmask * denoised``.

Cond and uncond rows share one UNet call when their token lengths agree; otherwise the cond rows go in slices of
twice the image count and the uncond rows on their own, as A1111 does (padding would change the result).

DDIM, PLMS and UniPC see ``CompVisGuidance``: ``(x, t) -> guided model output`` as ldm's samplers compute it, in
the model's own parameterization: uncond rows first, ``uncond + cfg * (cond - uncond)`` on the raw output, the
uncond conditioning padded with its last vector (or cut) to the cond length, and no uncond call at all at a
guidance scale of 1. Their conditioning step is the number of sampler updates so far (A1111's hook counter).

An inpainting UNet's extra input channels (``image_cond``) follow each row's scaled input, unscaled, as ldm's
``c_concat`` does. SDXL's added vectors (pooled text and size numbers) follow each row's context the same way,
as sgm's ``vector`` key does; the model says how many numbers end them (the refiner has five). ControlNet units
(:mod:`sdapi.engine.sampling.control`) are run on each UNet call's own rows, knowing which rows hold the prompt and
which the negative prompt.
"""

from __future__ import annotations

from typing import Protocol

import torch

from sdapi.engine.batch_invariance import RowGroups, row_groups
from sdapi.engine.conditioning_sdxl import TIME_IDS
from sdapi.engine.errors import AndWithCompVis, SamplingInterrupted
from sdapi.engine.sampling.conds import BatchConds
from sdapi.engine.sampling.control import ControlRun
from sdapi.engine.sampling.refiner import RefinerSwitch
from sdapi.engine.sampling.schedules import DiscreteSchedule

AND_WITH_COMPVIS_MESSAGE = "composition via AND is not supported for DDIM/PLMS samplers"

# A guidance scale for the whole batch, or one per image (jobs sampled together keep their own).
CfgScale = float | list[float]


def image_scale(cfg_scale: CfgScale, image: int) -> float:
    """Image ``image``'s guidance scale."""
    return cfg_scale[image] if isinstance(cfg_scale, list) else cfg_scale


class StopSignal(Protocol):
    """What the denoisers ask the job before every model call."""

    def should_stop(self) -> bool: ...


class UnetModel(Protocol):
    """The parts of a loaded model the denoisers use."""

    unet: torch.nn.Module
    dtype: torch.dtype
    v_prediction: bool


def check_stop(stop: StopSignal | None) -> None:
    """Raise :class:`SamplingInterrupted` when the job asks to stop."""
    if stop is not None and stop.should_stop():
        raise SamplingInterrupted()


def unet_rows(model: UnetModel, x_in: torch.Tensor, t_in: torch.Tensor, cond: torch.Tensor,
              uncond: torch.Tensor | None, vectors: torch.Tensor | None = None, control: ControlRun | None = None,
              cond_mark: torch.Tensor | None = None) -> torch.Tensor:
    """The UNet's output for every cond row followed by every uncond row (float32).

    Args:
        model: the loaded model (its ``unet`` and ``dtype``).
        x_in: ``(cond rows [+ images], C, H, W)`` model input (scaled latent, then any image conditioning).
        t_in: one timestep per row.
        cond: ``(cond rows, tokens, hidden)``; uncond: ``(images, tokens', hidden)``, or ``None`` to skip it.
        vectors: SDXL's added vector of every row, in the rows' order, or ``None``.
        control: the pass's ControlNet units, or ``None``.
        cond_mark: with ``uncond`` ``None``, which rows of ``cond`` hold a prompt (1) or a negative prompt (0);
            default all prompt rows. With ``uncond`` given, the layout says it.
    """
    rows = cond.shape[0]
    if uncond is None:
        return _unet(model, x_in, t_in, cond, vectors, control, cond_mark)
    images = uncond.shape[0]
    if cond.shape[1] == uncond.shape[1]:
        mark = torch.cat([torch.ones(rows), torch.zeros(images)])
        return _unet(model, x_in, t_in, torch.cat([cond, uncond]), vectors, control, mark)
    out = []
    for a in range(0, rows, 2 * images):
        b = min(a + 2 * images, rows)
        out.append(_unet(model, x_in[a:b], t_in[a:b], cond[a:b], _rows(vectors, a, b), control,
                         torch.ones(b - a)))
    out.append(_unet(model, x_in[rows:], t_in[rows:], uncond, _rows(vectors, rows, None), control,
                     torch.zeros(images)))
    return torch.cat(out)


def _rows(vectors: torch.Tensor | None, start: int, stop: int | None) -> torch.Tensor | None:
    return None if vectors is None else vectors[start:stop]


def _unet(model: UnetModel, x_in: torch.Tensor, t_in: torch.Tensor, context: torch.Tensor,
          vectors: torch.Tensor | None = None, control: ControlRun | None = None,
          cond_mark: torch.Tensor | None = None) -> torch.Tensor:
    """One UNet call in the model's dtype, returning float32; the pass's ControlNet units (if any) run first on
    the same rows and their residuals go into the call.

    Input and output are kept in the default memory layout: a convolution may hand back channels-last output
    depending on the batch size, and the layout picks the kernel of every later convolution (so a job's pixels
    would depend on the batch it is sampled in).
    """
    kwargs = {}
    if vectors is not None:
        vectors = vectors.to(x_in.device, model.dtype)
        # SDXL's six size numbers, or the refiner's five (models without the attribute are base SDXL).
        numbers = getattr(model, "time_ids", TIME_IDS)
        kwargs["added_cond_kwargs"] = {"text_embeds": vectors[:, :-numbers], "time_ids": vectors[:, -numbers:]}
    sample = x_in.to(model.dtype).contiguous()
    context = context.to(model.dtype)
    if control is not None:
        kwargs.update(control.residuals(sample, t_in, context, cond_mark, kwargs.get("added_cond_kwargs"),
                                        model.dtype))
    # Inference mode skips autograd's per-op bookkeeping that ``no_grad`` keeps (5 % of an eager call of a small
    # UNet on a CPU); the same kernels run, and the clone hands the sampler an ordinary tensor it may change in place.
    with torch.inference_mode():
        out = model.unet(sample, t_in, encoder_hidden_states=context, **kwargs).sample
        out = out.float().contiguous()
    return out.clone()


def _joined(first: torch.Tensor | None, second: torch.Tensor | None) -> torch.Tensor | None:
    """Two groups of rows' added vectors in one (``None`` when the model has none)."""
    if first is None:
        return None
    return first if second is None else torch.cat([first, second])


def job_row_groups(image_jobs: list[int] | None, cond_rows: list[int], with_uncond: bool,
                   uncond_first: bool = False) -> RowGroups | None:
    """Each job's rows of a UNet batch laid out as cond rows (``cond_rows[i]`` per image) and uncond rows (one per
    image), in the order that job's batch has them alone; ``None`` for a single job.

    Args:
        image_jobs: the job of each image (``None``: one job).
        cond_rows: cond rows per image (its ``AND`` parts).
        with_uncond: the batch holds the uncond rows.
        uncond_first: the uncond rows come first (the CompVis layout).
    """
    if image_jobs is None or len(set(image_jobs)) == 1:
        return None
    uncond_at = 0 if uncond_first else sum(cond_rows)
    cond_at = len(image_jobs) if uncond_first and with_uncond else 0
    conds: dict[int, list[int]] = {}
    unconds: dict[int, list[int]] = {}
    for image, (job, count) in enumerate(zip(image_jobs, cond_rows)):
        conds.setdefault(job, []).extend(range(cond_at, cond_at + count))
        cond_at += count
        if with_uncond:
            unconds.setdefault(job, []).append(uncond_at + image)
    ordered = [(unconds.get(job, []) + rows) if uncond_first else (rows + unconds.get(job, []))
               for job, rows in conds.items()]
    total = sum(cond_rows) + (len(image_jobs) if with_uncond else 0)
    return RowGroups(tuple(tuple(rows) for rows in ordered), total)


def rows_for(per_image: torch.Tensor, repeats: list[int]) -> torch.Tensor:
    """Per-image values laid out as the UNet batch: image ``i`` once per ``AND`` part, then once per image."""
    return torch.cat([torch.stack([per_image[i]] * n) for i, n in enumerate(repeats)] + [per_image])


def combine_denoised(rows: torch.Tensor, conds_list: list[list[tuple[int, float]]], images: int,
                     cfg_scale: CfgScale) -> torch.Tensor:
    """A1111's ``combine_denoised``: each image's uncond row plus its weighted, scaled cond differences.

    Args:
        rows: denoised cond rows followed by ``images`` uncond rows.
        conds_list: per image, ``(cond row, weight)`` of each ``AND`` part.
        images: images in the batch.
        cfg_scale: guidance scale, or one per image.
    """
    uncond = rows[-images:]
    denoised = torch.clone(uncond)
    for i, parts in enumerate(conds_list):
        for row, weight in parts:
            denoised[i] += (rows[row] - uncond[i]) * (weight * image_scale(cfg_scale, i))
    return denoised


class CfgDenoiser:
    """A1111's guided denoiser for one batch; counts its calls for the prompt schedules.

    Args:
        model: the loaded model (``unet``, ``dtype``, ``v_prediction``).
        schedule: the model's discrete noise schedule (sigma to fractional timestep).
        conds: the batch's scheduled conditioning.
        cfg_scale: classifier-free guidance scale, or one per image.
        stop: checked for interrupt/skip before each call.
        image_cond: an inpainting UNet's extra input channels per image, or ``None``.
        mask, init_latent: img2img's mask (1 keeps the original) and encoded original, or ``None``.
        nmask: the repaint weights (A1111 keeps its own ``latmask`` for these rather than computing ``1 - mask``,
            which can differ in the last bit); default ``1 - mask``.
        s_min_uncond: A1111's ``s_min_uncond`` (0: never skip the uncond rows).
        image_jobs: the job of each image when several jobs share the batch (``None``: one job).
        refiner: where another checkpoint takes over (later A1111's refiner), or ``None``.
        control: the pass's ControlNet units, or ``None``.
    """

    def __init__(self, model: UnetModel, schedule: DiscreteSchedule, conds: BatchConds, cfg_scale: CfgScale,
                 stop: StopSignal | None = None, image_cond: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None, init_latent: torch.Tensor | None = None,
                 nmask: torch.Tensor | None = None, s_min_uncond: float = 0.0,
                 image_jobs: list[int] | None = None, refiner: RefinerSwitch | None = None,
                 control: ControlRun | None = None):
        self.model = model
        self.schedule = schedule
        self.conds = conds
        self.cfg_scale = cfg_scale
        self.stop = stop
        self.image_cond = image_cond
        self.mask = mask
        self.init_latent = init_latent
        self.nmask = nmask if nmask is not None or mask is None else 1.0 - mask
        self.s_min_uncond = s_min_uncond
        self.image_jobs = image_jobs
        self.refiner = refiner
        self.control = control
        self.step = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Denoise ``x`` (``(images, C, H, W)``) at ``sigma`` (one per image).

        Raises:
            SamplingInterrupted: the job asked to stop.
        """
        check_stop(self.stop)
        if self.refiner is not None and self.refiner.due(self.schedule, sigma, self.step, sigma=True):
            self.model, self.conds = self.refiner.switch()
        cond, conds_list = self.conds.cond_at(self.step)
        uncond = self.conds.uncond_at(self.step)
        images = x.shape[0]
        repeats = [len(parts) for parts in conds_list]
        x_in, sigma_in = rows_for(x, repeats), rows_for(sigma, repeats)
        image_cond_in = rows_for(self.image_cond, repeats) if self.image_cond is not None else None
        skip_uncond = self.step % 2 and 0 < self.s_min_uncond and sigma[0] < self.s_min_uncond
        vectors = _joined(self.conds.cond_vectors_at(self.step),
                          None if skip_uncond else self.conds.uncond_vectors_at(self.step))
        if skip_uncond:
            x_in, sigma_in = x_in[:-images], sigma_in[:-images]
            image_cond_in = image_cond_in[:-images] if image_cond_in is not None else None
        with row_groups(job_row_groups(self.image_jobs, repeats, with_uncond=not skip_uncond)):
            out = self._model_rows(x_in, sigma_in, image_cond_in, cond.to(x.device),
                                   None if skip_uncond else uncond.to(x.device), vectors)
        if skip_uncond:
            # A1111 puts each image's first cond row where its uncond row would be.
            out = torch.cat([out, torch.cat([out[parts[0][0]:parts[0][0] + 1] for parts in conds_list])])
        self.step += 1
        denoised = combine_denoised(out, conds_list, images, 1.0 if skip_uncond else self.cfg_scale)
        if self.mask is not None:
            denoised = self.init_latent * self.mask + self.nmask * denoised
        return denoised

    def _model_rows(self, x_in: torch.Tensor, sigma_in: torch.Tensor, image_cond_in: torch.Tensor | None,
                    cond: torch.Tensor, uncond: torch.Tensor | None,
                    vectors: torch.Tensor | None = None) -> torch.Tensor:
        """``CompVisDenoiser``/``CompVisVDenoiser`` over every row: the denoised rows."""
        sigma = sigma_in[:, None, None, None]
        c_in = 1 / (sigma ** 2 + 1.0) ** 0.5
        t_in = self.schedule.sigma_to_t(sigma_in.cpu()).to(x_in.device)
        model_in = x_in * c_in
        if image_cond_in is not None:
            model_in = torch.cat([model_in, image_cond_in.to(model_in)], dim=1)
        out = unet_rows(self.model, model_in, t_in, cond, uncond, vectors, self.control)
        if self.model.v_prediction:
            c_skip = 1.0 / (sigma ** 2 + 1.0)
            c_out = -sigma * 1.0 / (sigma ** 2 + 1.0) ** 0.5
            return out * c_out + x_in * c_skip
        return x_in + out * -sigma


def pad_uncond(uncond: torch.Tensor, length: int) -> torch.Tensor:
    """A1111's CompVis fix-up: the uncond conditioning repeated at its last vector, or cut, to ``length`` tokens."""
    if uncond.shape[1] < length:
        return torch.hstack([uncond, uncond[:, -1:].repeat([1, length - uncond.shape[1], 1])])
    return uncond[:, :length]


class CompVisGuidance:
    """ldm's guided model output for DDIM, PLMS and UniPC (eps, or v for v-prediction models).

    Args:
        model: the loaded model.
        conds: the batch's scheduled conditioning (one ``AND`` part per image).
        cfg_scale: classifier-free guidance scale, or one per image (none of them 1 then, or all).
        stop: checked for interrupt/skip before each sampler update.
        image_cond: an inpainting UNet's extra input channels per image, or ``None``.
        image_jobs: the job of each image when several jobs share the batch (``None``: one job).
        refiner: where another checkpoint takes over (later A1111's refiner), or ``None``.
        control: the pass's ControlNet units, or ``None``.

    Raises:
        AndWithCompVis: a prompt with ``AND`` (A1111's assertion).
    """

    def __init__(self, model: UnetModel, conds: BatchConds, cfg_scale: CfgScale, stop: StopSignal | None = None,
                 image_cond: torch.Tensor | None = None, image_jobs: list[int] | None = None,
                 refiner: RefinerSwitch | None = None, control: ControlRun | None = None):
        if conds.composable:
            raise AndWithCompVis(AND_WITH_COMPVIS_MESSAGE)
        self.model = model
        self.conds = conds
        self.cfg_scale = cfg_scale
        self.stop = stop
        self.image_cond = image_cond
        self.image_jobs = image_jobs
        self.refiner = refiner
        self.control = control
        self.step = 0  # sampler updates so far: A1111's hook counter picks the prompt schedule entry

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The guided output at model timesteps ``t`` (one per image, integer or fractional)."""
        if self.refiner is not None and self.refiner.due(None, t, self.step, sigma=False):
            self.model, self.conds = self.refiner.switch()
        cond, _ = self.conds.cond_at(self.step, weighted=False)
        cond = cond.to(x.device)
        model_in = x if self.image_cond is None else torch.cat([x, self.image_cond.to(x)], dim=1)
        scales = self.cfg_scale if isinstance(self.cfg_scale, list) else [self.cfg_scale]
        one_row = [1] * x.shape[0]
        cond_vectors = self.conds.cond_vectors_at(self.step)
        if all(scale == 1.0 for scale in scales):
            with row_groups(job_row_groups(self.image_jobs, one_row, with_uncond=False)):
                return unet_rows(self.model, model_in, t, cond, None, cond_vectors, self.control)
        uncond = pad_uncond(self.conds.uncond_at(self.step).to(x.device), cond.shape[1])
        vectors = _joined(self.conds.uncond_vectors_at(self.step), cond_vectors)
        with row_groups(job_row_groups(self.image_jobs, one_row, with_uncond=True, uncond_first=True)):
            images = x.shape[0]
            out = unet_rows(self.model, torch.cat([model_in] * 2), torch.cat([t] * 2), torch.cat([uncond, cond]),
                            None, vectors, self.control, torch.cat([torch.zeros(images), torch.ones(images)]))
        out_uncond, out_cond = out.chunk(2)
        scale = (torch.tensor(self.cfg_scale, dtype=out.dtype, device=out.device).view(-1, 1, 1, 1)
                 if isinstance(self.cfg_scale, list) else self.cfg_scale)
        return out_uncond + scale * (out_cond - out_uncond)
