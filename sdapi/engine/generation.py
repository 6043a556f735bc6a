"""One generation job on the device, batch by batch: txt2img (with its hires fix) and img2img/inpainting.

Each batch gets its conditioning, its seeded noise and its sampler noise as A1111 v1.2.1 draws them, goes through
the one sampling core (:func:`sdapi.engine.sampling.core.sample`), and is decoded. The PIL side of img2img
(resize modes, mask blur/crop/fill, compositing over the original) happens before and after, outside the engine;
this module gets images and the mask at the processing size, as A1111's ``init`` leaves them.

The hires fix (A1111's ``StableDiffusionProcessingTxt2Img.sample`` after the first pass) upscales the first pass
in latent space (the "Latent" modes) or in pixels (decode, resize with the upscaler, encode); both resize sides
given crop the latent centre; then fresh noise from the same seeds and an image pass of exactly ``steps`` steps
(the fixed-steps rule) at ``denoising_strength``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch
from PIL import Image

from sdapi.engine.conditioning_sdxl import SizeConditioning
from sdapi.engine.controlnet_cache import JobControls
from sdapi.engine.errors import NansException, SamplingInterrupted
from sdapi.engine.image_cond import img2img_image_cond, txt2img_image_cond
from sdapi.engine.model import LoadedModel
from sdapi.engine.params import HiresParams, Img2ImgParams, Txt2ImgParams
from sdapi.engine.sampling.conds import BatchConds, ScheduleEncoder, schedule_length
from sdapi.engine.sampling.core import SamplingStart, sample
from sdapi.engine.sampling.refiner import RefinerSwitch
from sdapi.engine.sampling.noise import (
    SamplerNoise,
    StackedNoise,
    batch_step_noise,
    initial_noise,
    noise_device,
    seed_noise_shape,
)
from sdapi.engine.upscale_model import model_runner
from sdapi.engine.upscalers import Tiling, enlarger
from sdapi.engine.vae_io import decode_latents, encode_pixels, images_to_pixels
from sdapi.resize import JUST_RESIZE, resize_image

NAN_MESSAGE = ("A tensor with all NaNs was produced in Unet. "
               "Use --disable-nan-check commandline argument to disable this check.")
FILL_LATENT_NOISE, FILL_LATENT_NOTHING = 2, 3


class NotMergeable(Exception):
    """Jobs offered as one batch cannot be sampled together after all (their prompts' token lengths differ).

    Args:
        lengths: per job, the token lengths its conditioning has.
    """

    def __init__(self, lengths: list[frozenset[int]]):
        super().__init__("the jobs' prompts have different token lengths")
        self.lengths = lengths


# Another checkpoint for part of a job (hires checkpoint, refiner): entered for the rest of the job, with the job's
# LoRAs and tiling applied to it as to the job's own model.
OtherModels = Callable[[str], AbstractContextManager[LoadedModel]]


class BatchEvents(Protocol):
    """What a generation job tells the outside world (:class:`sdapi.engine.api.JobEvents` in latent terms)."""

    @property
    def interrupted(self) -> bool: ...

    def should_stop(self) -> bool: ...

    def next_batch(self) -> None: ...

    def next_pass(self) -> None: ...

    def sampling(self, steps: int) -> None: ...

    def step(self, step: int, latents: torch.Tensor) -> None: ...

    def batch_done(self) -> None: ...


def size_conditioning(model: LoadedModel, p: Txt2ImgParams, width: int, height: int) -> SizeConditioning | None:
    """SDXL's size and crop conditioning of a job's pass at ``width`` x ``height`` (``None`` for SD 1.x/2.x):
    A1111 gives the size being generated as both original and target size (the refiner: original size, with its
    aesthetic scores)."""
    if not model.sdxl:
        return None
    return SizeConditioning(width, height, *p.sdxl_crop, clip_l_skip=p.sdxl_clip_l_skip,
                            aesthetic_scores=p.sdxl_aesthetic_scores)


def check_nans(latents: torch.Tensor) -> torch.Tensor:
    """``latents`` unchanged, or A1111's ``NansException`` when sampling produced NaNs."""
    if torch.isnan(latents).any():
        raise NansException(NAN_MESSAGE)
    return latents


def img2img_steps(steps: int, denoising_strength: float) -> tuple[int, int]:
    """A1111's ``setup_img2img_steps`` without fixed steps: ``(steps, int(min(d, 0.999) * steps))``."""
    return steps, int(min(denoising_strength, 0.999) * steps)


def fixed_steps(steps: int, denoising_strength: float) -> tuple[int, int]:
    """A1111's fixed-steps rule (hires fix, ``img2img_fix_steps``): exactly ``steps`` steps on a longer schedule.

    Returns:
        ``(schedule length, t_enc)``: ``int(steps / min(d, 0.999))`` (0 when ``d`` is 0) and ``steps - 1``.
    """
    schedule = int(steps / min(denoising_strength, 0.999)) if denoising_strength > 0 else 0
    return schedule, steps - 1


@dataclass
class _Piece:
    """One job's images within a sampling batch.

    Args:
        job: the job's index in the group.
        p: its parameters.
        rows: its images in this batch (indices into ``p.seeds``).
        schedules: its prompt encoder.
    """

    job: int
    p: Txt2ImgParams
    rows: slice
    schedules: ScheduleEncoder

    @property
    def seeds(self) -> list[int]:
        return self.p.seeds[self.rows]


class _Group:
    """The jobs one run serves, batch by batch: one job (its ``n_iter`` batches), or several compatible one-batch
    jobs sampled as one batch (:mod:`sdapi.engine.batching` says which may). Each job keeps its own prompt
    schedules (each distinct prompt encoded once), seeds, noise streams and guidance scale, so its images are the
    ones it gets alone."""

    def __init__(self, model: LoadedModel, params: list[Txt2ImgParams], events: BatchEvents | None,
                 other_models: OtherModels | None = None, stack: ExitStack | None = None,
                 controls: JobControls | None = None):
        self.model = model
        self.controls = controls
        self.params = params
        self.events = events
        self.other_models = other_models
        self.stack = stack if stack is not None else ExitStack()
        self.encoders = [self._encoder(p, p.width, p.height) for p in params]
        self._hires_encoders: list[ScheduleEncoder] | None = None
        self._entered: dict[str, LoadedModel] = {}
        self._switch: RefinerSwitch | None = None  # the refiner of the pass sampled last

    def _encoder(self, p: Txt2ImgParams, width: int, height: int, model: LoadedModel | None = None,
                 steps: int | None = None) -> ScheduleEncoder:
        """A job's prompt encoder (on ``model``, default the job's); SDXL's size numbers say ``width`` x
        ``height``."""
        model = model or self.model
        stop = (lambda: self.events.interrupted) if self.events is not None else None
        length = schedule_length(p.sampler, p.steps if steps is None else steps, p.fix_second_order_schedule)
        return ScheduleEncoder(model.encoder, length, p.clip_skip, p.comma_backtrack, p.emphasis, stop=stop,
                               size=size_conditioning(model, p, width, height))

    def other_model(self, checkpoint: str | None) -> LoadedModel:
        """The model a checkpoint names for the rest of the job (the job's own for ``None``)."""
        if checkpoint is None:
            return self.model
        if checkpoint not in self._entered:
            if self.other_models is None:
                raise ValueError("this engine cannot switch checkpoints within a job")
            self._entered[checkpoint] = self.stack.enter_context(self.other_models(checkpoint))
        return self._entered[checkpoint]

    @property
    def lead(self) -> Txt2ImgParams:
        """The first job: what every job of a merged batch shares (sampler, steps, size, hires) is read here."""
        return self.params[0]

    def _batches(self) -> list[list[_Piece]]:
        if len(self.params) == 1:
            return [[_Piece(0, self.lead, rows, self.encoders[0])] for rows in self.lead.batches()]
        return [[_Piece(i, p, slice(0, p.batch_size), encoder)
                 for i, (p, encoder) in enumerate(zip(self.params, self.encoders))]]

    def __iter__(self):
        """Each batch's pieces, until an interrupt; reports batch starts and ends."""
        for pieces in self._batches():
            if self.events is not None:
                if self.events.interrupted:
                    return
                self.events.next_batch()
            yield pieces
            if self.events is not None:
                self.events.batch_done()

    def check_mergeable(self) -> None:
        """For jobs sampled together: encode their prompts now and refuse the merge unless every conditioning has
        one token length (a merged batch pads shorter ones, and cond/uncond of unequal length run as separate
        calls whose batch size would change, either of which changes pixels).

        Raises:
            NotMergeable: with each job's token lengths.
        """
        if len(self.params) == 1:
            return
        lengths = []
        for piece in self._batches()[0]:
            conds = self.conds([piece])
            lengths.append(frozenset() if conds is None else frozenset(conds.token_lengths()))
        if any(len(found) != 1 for found in lengths) or len(set(lengths)) != 1:
            raise NotMergeable(lengths)

    def conds(self, pieces: list[_Piece], encoders: list[ScheduleEncoder] | None = None,
              hires: bool = False) -> BatchConds | None:
        """The batch's conditioning, or ``None`` when the job stopped while its prompts were encoded.

        Args:
            encoders: each job's encoder (default: the pieces' own, at the first pass's size).
            hires: the hires pass's prompts (later A1111's ``hr_prompt``/``hr_negative_prompt``).
        """
        try:
            return BatchConds.joined([(piece.schedules if encoders is None else encoders[piece.job]).batch(
                *_prompts(piece, hires)) for piece in pieces])
        except SamplingInterrupted:
            return None

    def hires_conds(self, pieces: list[_Piece], first_pass: BatchConds, model: LoadedModel) -> BatchConds | None:
        """The hires pass's conditioning (A1111's ``calculate_hr_conds``): the first pass's, unless SDXL's size
        numbers say the hires size, the hires prompts differ, or another checkpoint runs the pass."""
        own_prompts = all(piece.p.hires.prompts is None for piece in pieces)
        if not model.sdxl and own_prompts and model is self.model:
            return first_pass
        if self._hires_encoders is None:
            self._hires_encoders = [self._encoder(p, p.hires.width, p.hires.height, model) for p in self.params]
        return self.conds(pieces, self._hires_encoders, hires=True)

    def refiner_switch(self, pieces: list[_Piece], start: SamplingStart, hires: bool) -> RefinerSwitch | None:
        """Later A1111's refiner for this pass, or ``None`` (none asked, or not for this pass)."""
        refiner = self.lead.refiner
        self._switch = None
        if refiner is None or not (refiner.second_pass if hires else refiner.first_pass):
            return None
        p = self.lead
        width, height = (p.hires.width, p.hires.height) if hires else (p.width, p.height)

        def take() -> tuple[LoadedModel, BatchConds]:
            model = self.other_model(refiner.checkpoint)
            steps = p.hires.steps if hires else p.steps
            encoders = [self._encoder(job, width, height, model, steps) for job in self.params]
            conds = self.conds(pieces, encoders, hires=hires)
            if conds is None:
                raise SamplingInterrupted()
            return model, conds

        calls = start.t_enc + 1 if start.from_image else start.steps
        self._switch = RefinerSwitch(refiner.switch_at, take, refiner.by_steps, calls)
        return self._switch

    @property
    def refiner_used(self) -> bool:
        """Whether the refiner took over in the pass sampled last."""
        return self._switch is not None and self._switch.switched

    def sample(self, pieces: list[_Piece], start: SamplingStart, conds: BatchConds,
               hires: bool = False, model: LoadedModel | None = None) -> torch.Tensor:
        """One sampling pass of the batch from ``start``, each piece with fresh noise from its own seeds.

        Args:
            hires: the hires fix's second pass (its sampler and settings; seeds without the seed resize, as A1111
                draws them).
            model: the model of this pass (default: the job's).
        """
        p = self.lead
        shape = tuple(start.latent.shape[1:]) if start.latent is not None else (4, p.height // 8, p.width // 8)
        noises, streams = zip(*(self._piece_noise(piece, shape, hires) for piece in pieces))
        step_noise = streams[0] if len(pieces) == 1 else StackedNoise(list(streams), [len(n) for n in noises])
        seeds = [seed for piece in pieces for seed in piece.seeds]
        scales = [piece.p.cfg_scale for piece in pieces for _ in piece.seeds]
        cfg_scale = scales[0] if len(set(scales)) == 1 else scales
        sampler = p.hires.sampler if hires else p.sampler
        settings = (p.hires.settings or p.sampler_settings) if hires else p.sampler_settings
        image_jobs = [piece.job for piece in pieces for _ in piece.seeds] if len(pieces) > 1 else None
        control = self.controls.for_pass(hires, shape[2] * 8, shape[1] * 8) if self.controls is not None else None
        latents = sample(model or self.model, sampler, start, torch.cat(noises), conds, cfg_scale, step_noise, seeds,
                         settings, self.events, image_jobs, self.refiner_switch(pieces, start, hires), control)
        return check_nans(latents)

    def _piece_noise(self, piece: _Piece, shape: tuple[int, ...], hires: bool) -> tuple[torch.Tensor, SamplerNoise]:
        """A piece's initial noise and step noise, drawn exactly as for its job alone."""
        p, seeds = piece.p, piece.seeds
        resize_from = (-1, -1) if hires else p.seed_resize_from
        noise, generators = initial_noise(seeds, p.subseeds[piece.rows], p.subseed_strength, shape, resize_from,
                                          noise_device(self.model.device, p.randn_source))
        step_noise = batch_step_noise(seeds, generators, p.steps, seed_noise_shape(shape, resize_from),
                                      p.eta_noise_seed_delta, p.batch_seeds)
        multiplier = getattr(p, "noise_multiplier", 1.0)
        if multiplier != 1.0 and not hires:
            noise = noise * multiplier
        return noise, step_noise


def _prompts(piece: _Piece, hires: bool) -> tuple[list[str], list[str]]:
    """A piece's prompts and negative prompts for a pass."""
    p, rows = piece.p, piece.rows
    if hires and p.hires.prompts is not None:
        return p.hires.prompts[rows], p.hires.negative_prompts[rows]
    return p.prompts[rows], p.negative_prompts[rows]


def split_rows(latents: torch.Tensor, pieces: list[_Piece]) -> list[torch.Tensor]:
    """The batch's latents cut back into its pieces."""
    return list(torch.split(latents, [len(piece.seeds) for piece in pieces]))


def joined(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    """Per-piece tensors side by side (``None`` when the model takes none)."""
    return None if tensors[0] is None else torch.cat(tensors)


def run_txt2img(model: LoadedModel, p: Txt2ImgParams, events: BatchEvents | None = None,
                tiling: Tiling = Tiling(), other_models: OtherModels | None = None) -> list[Image.Image]:
    """Generate every image of a txt2img job (and its hires fix).

    Args:
        tiling: model upscalers' tile options (a hires fix with an ESRGAN-type upscaler).
        other_models: the checkpoints a hires checkpoint or a refiner names.

    Returns:
        ``batch_size * n_iter`` images, fewer if interrupted (later batches are not started).
    """
    return run_txt2img_group(model, [p], events, tiling, other_models)[0]


def run_txt2img_group(model: LoadedModel, params: list[Txt2ImgParams], events: BatchEvents | None = None,
                      tiling: Tiling = Tiling(), other_models: OtherModels | None = None,
                      controls: JobControls | None = None) -> list[list[Image.Image]]:
    """Generate the images of one txt2img job, or of several compatible one-batch jobs sampled together.

    Args:
        controls: a lone job's ControlNet units, loaded (jobs with units are never merged).

    Returns:
        Each job's images.
    """
    with ExitStack() as stack:
        group = _Group(model, params, events, other_models, stack, controls)
        group.check_mergeable()
        images: list[list[Image.Image]] = [[] for _ in params]
        for pieces in group:
            conds = group.conds(pieces)
            if conds is None:
                break
            first = first_pass(group, pieces, conds)
            last_model = model
            if group.lead.hires is not None:
                last_model = group.other_model(group.lead.hires.checkpoint)
                latents = hires_pass(group, pieces, first, conds, tiling, last_model)
            else:
                latents = first
            if group.lead.refiner is not None and group.refiner_used:
                last_model = group.other_model(group.lead.refiner.checkpoint)
            for piece, part in zip(pieces, split_rows(latents, pieces)):
                images[piece.job].extend(decode_latents(last_model, part))
        return images


def first_pass(group: _Group, pieces: list[_Piece], conds: BatchConds) -> torch.Tensor | list[Image.Image]:
    """A batch's first pass: its latents, or later A1111's ``firstpass_image`` in its place (encoded for a latent
    hires upscale, as pixels for the others)."""
    p, model = group.lead, group.model
    if p.firstpass_image is not None and p.hires is not None:
        count = sum(len(piece.seeds) for piece in pieces)
        if p.hires.latent_mode is None:
            return [p.firstpass_image] * count
        return encode_pixels(model, images_to_pixels([p.firstpass_image] * count))
    image_cond = joined([txt2img_image_cond(model, len(piece.seeds), piece.p.width, piece.p.height)
                         for piece in pieces])
    return group.sample(pieces, SamplingStart(p.steps, image_cond=image_cond), conds)


def truncate(latents: torch.Tensor | None, truncate_x: int, truncate_y: int) -> torch.Tensor | None:
    """Crop ``truncate_x/y`` latent pixels, centred (the extra half on the right/bottom), as A1111 does."""
    if latents is None or (truncate_x == 0 and truncate_y == 0):
        return latents
    h, w = latents.shape[2], latents.shape[3]
    return latents[:, :, truncate_y // 2:h - (truncate_y + 1) // 2, truncate_x // 2:w - (truncate_x + 1) // 2]


def upscale_latents(model: LoadedModel, latents: torch.Tensor | list[Image.Image], hires: HiresParams,
                    mask_weight: float, tiling: Tiling, first_model: LoadedModel | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first pass upscaled to the hires target, and an inpainting model's image conditioning for it.

    Args:
        model: the model of the hires pass (it encodes the upscaled pixels).
        latents: the first pass's latents, or its images (``firstpass_image``).
        first_model: the model that made the first pass (it decodes them; default ``model``).
    """
    if hires.latent_mode is not None:
        mode = hires.latent_mode
        upscaled = torch.nn.functional.interpolate(latents, size=(hires.height // 8, hires.width // 8),
                                                   mode=mode.mode, antialias=mode.antialias)
        return upscaled, txt2img_image_cond(model, latents.shape[0], hires.width, hires.height)
    enlarge = enlarger(hires.upscaler, model_runner(model.device, tiling))
    decoded = latents if isinstance(latents, list) else decode_latents(first_model or model, latents)
    images = [resize_image(JUST_RESIZE, image, hires.width, hires.height, enlarge) for image in decoded]
    pixels = images_to_pixels(images)
    upscaled = encode_pixels(model, pixels)
    return upscaled, img2img_image_cond(model, pixels, upscaled, None, mask_weight)


def hires_pass(group: _Group, pieces: list[_Piece], latents: torch.Tensor | list[Image.Image], conds: BatchConds,
               tiling: Tiling, model: LoadedModel) -> torch.Tensor:
    """Upscale one batch's first-pass latents (each piece as its job alone would) and refine them on ``model`` (a
    job of its own, as A1111 counts it)."""
    hires = group.lead.hires
    first_model = group.other_model(group.lead.refiner.checkpoint) if group.refiner_used else group.model
    upscaled, image_cond = zip(*(upscale_latents(model, part, piece.p.hires, piece.p.mask_weight, tiling, first_model)
                                 for piece, part in zip(pieces, _split_first_pass(latents, pieces))))
    upscaled = truncate(torch.cat(upscaled), hires.truncate_x, hires.truncate_y)
    image_cond = truncate(joined(list(image_cond)), hires.truncate_x, hires.truncate_y)
    if group.events is not None:
        group.events.next_pass()
    steps, t_enc = fixed_steps(hires.steps, hires.denoising_strength)
    start = SamplingStart(steps, t_enc, upscaled, image_cond=image_cond)
    # Stopped while encoding: the first pass's conditioning serves, the sampler stops at its first check.
    return group.sample(pieces, start, group.hires_conds(pieces, conds, model) or conds, hires=True, model=model)


def _split_first_pass(first: torch.Tensor | list[Image.Image], pieces: list[_Piece]) -> list:
    """A first pass (latents or images) cut into its pieces."""
    if isinstance(first, list):
        bounds = [0]
        for piece in pieces:
            bounds.append(bounds[-1] + len(piece.seeds))
        return [first[a:b] for a, b in zip(bounds, bounds[1:])]
    return split_rows(first, pieces)


def latent_keep_mask(mask: Image.Image | None, latent: torch.Tensor, rounded: bool = True) -> torch.Tensor | None:
    """A1111's ``p.mask``: the mask shrunk to latent size (PIL's default filter), rounded unless later A1111's
    ``mask_round`` is off, inverted (1 = keep)."""
    if mask is None:
        return None
    small = mask.convert("RGB").resize((latent.shape[3], latent.shape[2]))
    repaint = np.array(small, dtype=np.float32)[:, :, 0] / 255
    if rounded:
        repaint = np.around(repaint)
    keep = 1.0 - torch.from_numpy(np.tile(repaint[None, None], (1, latent.shape[1], 1, 1)))
    return keep.to(latent)


def encode_init_images(model: LoadedModel, p: Img2ImgParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's source pixels and latents (one image is repeated over the batch, as A1111 does)."""
    pixels = images_to_pixels(p.init_images)
    latent = encode_pixels(model, pixels)
    if pixels.shape[0] == 1 and p.batch_size > 1:
        pixels = pixels.expand(p.batch_size, -1, -1, -1)
        latent = latent.expand(p.batch_size, -1, -1, -1)
    if p.latent_resize:
        latent = torch.nn.functional.interpolate(latent, size=(p.height // 8, p.width // 8), mode="bilinear")
    return pixels, latent


def fill_masked_latent(latent: torch.Tensor, keep: torch.Tensor | None, p: Img2ImgParams) -> torch.Tensor:
    """``inpainting_fill`` 2 (latent noise: the first batch's seeds' noise) and 3 (latent nothing: zeros)."""
    if keep is None or p.inpainting_fill not in (FILL_LATENT_NOISE, FILL_LATENT_NOTHING):
        return latent
    if p.inpainting_fill == FILL_LATENT_NOTHING:
        return latent * keep
    seeds = p.seeds[:latent.shape[0]]
    noise, _ = initial_noise(seeds, seeds, 0.0, tuple(latent.shape[1:]),
                             device=noise_device(latent.device, p.randn_source))
    return latent * keep + noise.to(latent) * (1.0 - keep)


def img2img_start(model: LoadedModel, p: Img2ImgParams) -> SamplingStart:
    """Where every batch of an img2img job starts: its encoded images, mask and the step range its strength
    leaves."""
    pixels, latent = encode_init_images(model, p)
    keep = latent_keep_mask(p.latent_mask if p.latent_mask is not None else p.mask, latent, p.mask_round)
    latent = fill_masked_latent(latent, keep, p)
    image_cond = img2img_image_cond(model, pixels, latent, p.mask, p.mask_weight)
    steps, t_enc = (fixed_steps if p.fix_steps else img2img_steps)(p.steps, p.denoising_strength)
    return SamplingStart(steps, t_enc, latent, keep, image_cond=image_cond)


def joined_start(starts: list[SamplingStart], pieces: list[_Piece]) -> SamplingStart:
    """Several jobs' starts side by side (their step ranges agree; a mask shared by a job's images is repeated
    for each)."""
    if len(starts) == 1:
        return starts[0]

    def rows(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
        if tensors[0] is None:
            return None
        return torch.cat([t.expand(len(piece.seeds), *t.shape[1:]) for t, piece in zip(tensors, pieces)])

    first = starts[0]
    return SamplingStart(first.steps, first.t_enc, rows([s.latent for s in starts]),
                         rows([s.mask for s in starts]), rows([s.nmask for s in starts]),
                         rows([s.image_cond for s in starts]))


def run_img2img(model: LoadedModel, p: Img2ImgParams, events: BatchEvents | None = None) -> list[Image.Image]:
    """Generate every image of an img2img request, batch by batch.

    Returns:
        ``batch_size * n_iter`` images at the processing size (fewer if interrupted), not yet composited over
        the original.
    """
    return run_img2img_group(model, [p], events)[0]


def run_img2img_group(model: LoadedModel, params: list[Img2ImgParams], events: BatchEvents | None = None,
                      other_models: OtherModels | None = None,
                      controls: JobControls | None = None) -> list[list[Image.Image]]:
    """Generate the images of one img2img job, or of several compatible one-batch jobs sampled together.

    Args:
        other_models: the checkpoint a refiner names.
        controls: a lone job's ControlNet units, loaded (jobs with units are never merged).

    Returns:
        Each job's images.
    """
    with ExitStack() as stack:
        group = _Group(model, params, events, other_models, stack, controls)
        group.check_mergeable()
        starts = [img2img_start(model, p) for p in params]
        images: list[list[Image.Image]] = [[] for _ in params]
        for pieces in group:
            conds = group.conds(pieces)
            if conds is None:
                break
            start = joined_start([starts[piece.job] for piece in pieces], pieces)
            latents = check_nans(start.keep_original(group.sample(pieces, start, conds)))
            last_model = group.other_model(group.lead.refiner.checkpoint) if group.refiner_used else model
            for piece, part in zip(pieces, split_rows(latents, pieces)):
                images[piece.job].extend(decode_latents(last_model, part))
        return images
