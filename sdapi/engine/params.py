"""Engine-neutral generation parameters, produced by ``sdapi.translate`` from an A1111 request."""

from __future__ import annotations

from dataclasses import dataclass, field

from sdapi.engine.samplers import SamplerSpec


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
    extra: dict = field(default_factory=dict)

    def batches(self) -> list[slice]:
        """Index ranges of each batch."""
        return [slice(i * self.batch_size, (i + 1) * self.batch_size) for i in range(self.n_iter)]
