"""The engine's generation parameters, produced by ``sdapi.translate`` from an A1111 request (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from sdapi.engine.sampling.registry import SamplerSpec
from sdapi.engine.upscalers import LatentMode, UpscalerSpec


@dataclass(frozen=True)
class SamplerSettings:
    """A1111's per-request sampler parameters, already resolved against the options.

    Args:
        eta: ancestral amount (k-diffusion rows taking it: ``eta`` or ``eta_ancestral``) or DDIM's eta (CompVis
            rows: ``eta`` or ``eta_ddim``).
        s_churn, s_tmin, s_tmax, s_noise: Karras' churn for Euler, Heun and DPM2.
        s_min_uncond: below this sigma every second k-diffusion call skips the negative prompt.
        schedule_type: a later A1111 schedule type (``exponential``, …) replacing the sampler's own sigma
            schedule; ``None``: the sampler's (hires fix too: later A1111's "Use same scheduler").
    """

    eta: float = 1.0
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0
    s_min_uncond: float = 0.0
    schedule_type: str | None = None


@dataclass(frozen=True)
class LoraActivation:
    """One LoRA file applied to a job.

    Args:
        path: the file.
        name: the name the prompt used (file name or alias).
        te_multiplier, unet_multiplier: strengths on the text encoder and the UNet.
    """

    path: str
    name: str
    te_multiplier: float = 1.0
    unet_multiplier: float = 1.0


@dataclass(frozen=True)
class ControlNetParams:
    """One enabled ControlNet unit, its control map already made (the extension's ``ControlParams``).

    Args:
        model: the ControlNet file.
        hint: the control map (RGB) at the first pass's size.
        hires_hint: the map at the hires fix's size (txt2img with a hires fix whose size differs), or ``None``.
        weight: the unit's weight (0: the unit changes nothing).
        guidance_start, guidance_end: the fraction of each pass's steps it acts in.
        soft: the extension's ``soft_injection`` (any control mode but "Balanced").
        cond_only: the extension's ``cfg_injection`` ("ControlNet is more important").
        hr_option: with a hires fix, the passes it acts in: ``Both``, ``Low res only``, ``High res only``.
        hires_soft: soft injection forced in the hires pass (the extension does it for canny and mlsd maps).
    """

    model: Path
    hint: Image.Image
    hires_hint: Image.Image | None = None
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    soft: bool = False
    cond_only: bool = False
    hr_option: str = "Both"
    hires_soft: bool = False


@dataclass
class Txt2ImgParams:
    """Everything one txt2img job needs, already resolved (seeds fixed, sampler found, one prompt per image).

    Args:
        prompts, negative_prompts: one per image, ``batch_size * n_iter`` long.
        seeds, subseeds: one per image.
        subseed_strength: variation amount.
        seed_resize_from: ``(width, height)``; applied only when both are > 0.
        sampler: registry row.
        steps: sampling steps as requested (the sampler may adjust them).
        cfg_scale: classifier-free guidance scale.
        width, height: image size in pixels (multiples of 8).
        batch_size: images per batch; ``n_iter`` batches in all.
        clip_skip: A1111's ``CLIP_stop_at_last_layers``.
        comma_backtrack: A1111's ``comma_padding_backtrack``.
        emphasis: A1111's ``enable_emphasis`` (off: ``(x:1.3)`` and ``BREAK`` are plain text).
        fix_second_order_schedule: ``not dont_fix_second_order_samplers_schedule``: prompt schedules of
            second-order samplers span twice the steps (A1111 counts denoiser calls).
        loras: LoRA files applied for the whole job (A1111 takes them from the batch's first prompt).
        hires: the hires fix second pass, or ``None``.
        mask_weight: A1111's ``inpainting_mask_weight`` (inpainting checkpoints only).
        eta_noise_seed_delta: A1111's ``eta_noise_seed_delta`` (ENSD): ancestral noise from ``seed + delta``.
        batch_seeds: A1111's ``enable_batch_seeds``: batch images get the ancestral noise of single runs.
        randn_source: A1111's ``randn_source``: ``"GPU"`` draws noise on the device's generator (CUDA), ``"CPU"``
            on the CPU's.
        circular: the request's ``tiling``: UNet and VAE convolutions pad circularly (seamless tiles).
        sampler_settings: eta, churn and ``s_min_uncond``.
        sdxl_crop: A1111's ``(sdxl_crop_top, sdxl_crop_left)``: SDXL's crop conditioning.
        sdxl_clip_l_skip: A1111's ``sdxl_clip_l_skip``: SDXL's CLIP-L follows ``clip_skip`` (else penultimate).
        sdxl_aesthetic_scores: A1111's ``(sdxl_refiner_high_aesthetic_score, sdxl_refiner_low_aesthetic_score)``:
            the SDXL refiner's aesthetic score for prompts and for negative prompts.
        fast: sdapi's fast mode (the ``sdapi_fast_mode`` option): compiled UNet and VAE decoder, channels_last,
            reduced-precision autocast; pixels differ slightly from the default mode's.
        refiner: later A1111's refiner: another checkpoint takes over sampling part way, or ``None``.
        firstpass_image: later A1111's ``firstpass_image``: the hires fix refines this image instead of a first
            pass (RGB, at the first pass's size), or ``None``.
        controlnets: the enabled ControlNet units (``alwayson_scripts.controlnet``), in the request's order.
    """

    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]
    subseeds: list[int]
    subseed_strength: float
    sampler: SamplerSpec
    steps: int
    cfg_scale: float
    width: int
    height: int
    batch_size: int = 1
    n_iter: int = 1
    seed_resize_from: tuple[int, int] = (-1, -1)
    clip_skip: int = 1
    comma_backtrack: int = 20
    emphasis: bool = True
    fix_second_order_schedule: bool = True
    extra: dict = field(default_factory=dict)
    loras: list[LoraActivation] = field(default_factory=list)
    hires: "HiresParams | None" = None
    mask_weight: float = 1.0
    eta_noise_seed_delta: int = 0
    batch_seeds: bool = True
    randn_source: str = "GPU"
    circular: bool = False
    sampler_settings: SamplerSettings = field(default_factory=SamplerSettings)
    sdxl_crop: tuple[int, int] = (0, 0)
    sdxl_clip_l_skip: bool = False
    sdxl_aesthetic_scores: tuple[float, float] = (6.0, 2.5)
    fast: bool = False
    refiner: "RefinerParams | None" = None
    firstpass_image: Image.Image | None = None
    controlnets: list[ControlNetParams] = field(default_factory=list)

    def batches(self) -> list[slice]:
        """Index ranges of each batch."""
        return [slice(i * self.batch_size, (i + 1) * self.batch_size) for i in range(self.n_iter)]


@dataclass
class HiresParams:
    """The hires fix second pass of a txt2img job, sizes already resolved as A1111's ``init`` does.

    Args:
        width, height: the size the first pass is upscaled to (``hr_upscale_to_x/y``), in pixels.
        truncate_x, truncate_y: latent pixels cropped off (centred) afterwards, when both resize sides were given.
        latent_mode: the latent interpolation, or ``None`` for a pixel/model upscaler.
        upscaler: the pixel or model upscaler when ``latent_mode`` is ``None``.
        steps: second-pass steps (``hr_second_pass_steps`` or the first pass's).
        denoising_strength: the second pass's strength.
        sampler: the second pass's sampler (A1111 switches PLMS and UniPC to DDIM).
        settings: the second pass's sampler settings (later A1111's ``hr_sampler_name``/``hr_scheduler``).
        checkpoint: later A1111's ``hr_checkpoint_name``: the checkpoint the second pass runs on (``None``: the
            job's).
        prompts, negative_prompts: later A1111's ``hr_prompt``/``hr_negative_prompt``, one per image, extra
            network tags removed (``None``: the first pass's).
    """

    width: int
    height: int
    truncate_x: int
    truncate_y: int
    latent_mode: LatentMode | None
    upscaler: UpscalerSpec | None
    steps: int
    denoising_strength: float
    sampler: SamplerSpec
    settings: SamplerSettings | None = None
    checkpoint: str | None = None
    prompts: list[str] | None = None
    negative_prompts: list[str] | None = None


@dataclass(frozen=True)
class RefinerParams:
    """Later A1111's refiner (v1.6): sampling continues on another checkpoint from a fraction of the schedule.

    Args:
        checkpoint: the refiner's checkpoint file.
        switch_at: the fraction of the schedule after which the refiner denoises (A1111 v1.10's default measure:
            ``(999 - timestep) / 1000`` of the step being denoised).
        first_pass, second_pass: with a hires fix, which passes the refiner takes part in (A1111's
            ``hires_fix_refiner_pass``).
        by_steps: A1111's ``refiner_switch_by_sample_steps``: measure by the pass's sampler steps instead.
    """

    checkpoint: str
    switch_at: float
    first_pass: bool = True
    second_pass: bool = True
    by_steps: bool = False


@dataclass
class Img2ImgParams(Txt2ImgParams):
    """An img2img job: a txt2img job plus its prepared init images and mask.

    Args:
        init_images: one image per batch row (or one for the whole batch), RGB, at the processing size, except
            for a latent resize (``resize_mode`` 3), where they keep their own size.
        mask: the processing-size L mask (white = repaint), or ``None``.
        latent_mask: A1111's ``p.latent_mask``, set by the outpainting scripts: the mask of the latent area to
            repaint when it differs from ``mask`` (which still drives the inpainting conditioning), or ``None``.
        latent_resize: resize the encoded latents (bilinear) instead of the images.
        denoising_strength: how much of the schedule is run.
        inpainting_fill: 0 fill, 1 original, 2 latent noise, 3 latent nothing (the masked area's start).
        noise_multiplier: A1111's ``initial_noise_multiplier``.
        fix_steps: A1111's ``img2img_fix_steps`` option (run exactly ``steps`` steps).
        mask_round: later A1111's ``mask_round``: the latent-size mask is rounded to 0/1 (else kept soft).
    """

    init_images: list[Image.Image] = field(default_factory=list)
    mask: Image.Image | None = None
    latent_mask: Image.Image | None = None
    latent_resize: bool = False
    denoising_strength: float = 0.75
    inpainting_fill: int = 0
    noise_multiplier: float = 1.0
    fix_steps: bool = False
    mask_round: bool = True
