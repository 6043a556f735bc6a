"""Engine-neutral generation parameters, produced by ``sdapi.translate`` from an A1111 request."""

from __future__ import annotations

from dataclasses import dataclass, field

from sdapi.engine.samplers import SamplerSpec


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

    def batches(self) -> list[slice]:
        """Index ranges of each batch."""
        return [slice(i * self.batch_size, (i + 1) * self.batch_size) for i in range(self.n_iter)]
