"""The conditioning of one batch as A1111 v1.2.1's CFG denoiser sees it, call by call.

Each positive prompt is split on ``AND`` into weighted sub-prompts, each sub-prompt and each negative prompt gets a
prompt schedule (prompt editing, alternation), and each schedule's texts are encoded together once. At every UNet
evaluation the denoiser's step counter picks one entry of every schedule (``reconstruct_multicond_batch`` /
``reconstruct_cond_batch``).

A1111's k-diffusion counter counts *denoiser calls* from 0, not sampler steps: a second-order sampler (Heun, DPM2,
DPM++ 2S a, DPM++ SDE) calls it twice per step but the last, so A1111 doubles the schedule length for those (unless
``dont_fix_second_order_samplers_schedule``). The CompVis samplers count their updates instead.

SDXL conditioning has a second part besides the cross-attention context: the UNet's added vector (pooled text and
size numbers, :mod:`sdapi.engine.conditioning_sdxl`). It is scheduled with its context, row for row; a negative
prompt is encoded apart from the same positive text there, because an empty negative prompt is zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from sdapi.engine.conditioning import PromptEncoder
from sdapi.engine.conditioning_sdxl import SizeConditioning
from sdapi.engine.sampling.registry import SamplerSpec
from sdapi.prompts.composable import composable_batch
from sdapi.prompts.scheduling import prompt_schedule, schedule_index


def schedule_length(spec: SamplerSpec, steps: int, fix_second_order: bool = True) -> int:
    """The step count A1111 builds prompt schedules for.

    Args:
        spec: the sampler.
        steps: the requested sampling steps (``p.steps``).
        fix_second_order: ``not opts.dont_fix_second_order_samplers_schedule``.

    Returns:
        ``steps``, doubled for the second-order samplers A1111 lists when the fix is on.
    """
    return steps * 2 if spec.doubles_prompt_schedule and fix_second_order else steps


@dataclass(frozen=True)
class CondSchedule:
    """One prompt's conditionings over the steps.

    Args:
        end_steps: ``end_at_step`` of each schedule entry, ascending.
        rows: the row of ``conds`` each entry uses (entries with the same text share a row).
        conds: ``(distinct texts, tokens, hidden)``.
        vectors: SDXL's added vectors ``(distinct texts, width)``, or ``None``.
    """

    end_steps: tuple[int, ...]
    rows: tuple[int, ...]
    conds: torch.Tensor
    vectors: torch.Tensor | None = None

    def at(self, step: int) -> torch.Tensor:
        """The ``(tokens, hidden)`` conditioning in force at denoiser step ``step``."""
        return self.conds[self.row_at(step)]

    def vector_at(self, step: int) -> torch.Tensor | None:
        """The added vector in force at denoiser step ``step`` (``None`` for models without one)."""
        return None if self.vectors is None else self.vectors[self.row_at(step)]

    def row_at(self, step: int) -> int:
        """The row of ``conds`` (and ``vectors``) in force at denoiser step ``step``."""
        return self.rows[schedule_index(list(self.end_steps), step)]


@dataclass(frozen=True)
class BatchConds:
    """Every image's sub-prompt schedules (with their ``AND`` weights) and negative schedule.

    Args:
        subprompts: per image, ``(schedule, weight)`` for each ``AND`` part.
        negatives: per image, the negative prompt's schedule.
    """

    subprompts: tuple[tuple[tuple[CondSchedule, float], ...], ...]
    negatives: tuple[CondSchedule, ...]

    @classmethod
    def fixed(cls, cond: torch.Tensor, uncond: torch.Tensor) -> "BatchConds":
        """Constant conditioning from ready tensors (one row per image, weight 1)."""
        def constant(row: torch.Tensor) -> CondSchedule:
            return CondSchedule((0,), (0,), row.unsqueeze(0))

        return cls(tuple(((constant(c), 1.0),) for c in cond), tuple(constant(u) for u in uncond))

    @classmethod
    def joined(cls, parts: list["BatchConds"]) -> "BatchConds":
        """Several batches' conditioning as one batch (jobs sampled together), images in order."""
        if len(parts) == 1:
            return parts[0]
        return cls(tuple(row for part in parts for row in part.subprompts),
                   tuple(row for part in parts for row in part.negatives))

    def token_lengths(self) -> set[int]:
        """Every token length any of its schedules has (one length means nothing is ever padded)."""
        schedules = [schedule for parts in self.subprompts for schedule, _ in parts] + list(self.negatives)
        return {schedule.conds.shape[1] for schedule in schedules}

    @property
    def composable(self) -> bool:
        """Whether any image has more than one ``AND`` part."""
        return any(len(parts) > 1 for parts in self.subprompts)

    def cond_at(self, step: int, weighted: bool = True) -> tuple[torch.Tensor, list[list[tuple[int, float]]]]:
        """All sub-prompt conditionings at ``step`` and, per image, ``(row, weight)`` of its parts.

        Args:
            step: A1111's denoiser step counter.
            weighted: use the ``AND`` weights (A1111's CompVis samplers ignore them).

        Returns:
            ``(rows, tokens, hidden)`` (shorter ones padded by repeating their last vector, as A1111 does) and
            the per-image list.
        """
        tensors: list[torch.Tensor] = []
        conds_list = []
        for parts in self.subprompts:
            pairs = []
            for schedule, weight in parts:
                pairs.append((len(tensors), weight if weighted else 1.0))
                tensors.append(schedule.at(step))
            conds_list.append(pairs)
        return stack_padded(tensors), conds_list

    def uncond_at(self, step: int) -> torch.Tensor:
        """The negative conditionings at ``step``: ``(images, tokens, hidden)``."""
        return stack_padded([schedule.at(step) for schedule in self.negatives])

    def cond_vectors_at(self, step: int) -> torch.Tensor | None:
        """The added vectors of :meth:`cond_at`'s rows (``AND`` parts included), or ``None`` without them."""
        vectors = [schedule.vector_at(step) for parts in self.subprompts for schedule, _ in parts]
        return None if vectors[0] is None else torch.stack(vectors)

    def uncond_vectors_at(self, step: int) -> torch.Tensor | None:
        """The added vectors of :meth:`uncond_at`'s rows, or ``None`` without them."""
        vectors = [schedule.vector_at(step) for schedule in self.negatives]
        return None if vectors[0] is None else torch.stack(vectors)


def stack_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack ``(tokens, hidden)`` tensors, repeating the last vector of shorter ones to the longest length."""
    length = max(t.shape[0] for t in tensors)
    padded = [t if t.shape[0] == length else torch.cat([t, t[-1:].expand(length - t.shape[0], -1)]) for t in tensors]
    return torch.stack(padded)


class ScheduleEncoder:
    """Encodes prompt schedules for one job, each distinct prompt text once (across batches too).

    Args:
        encoder: the model's prompt encoder.
        steps: schedule length (:func:`schedule_length`).
        clip_skip, backtrack, emphasis: A1111's ``CLIP_stop_at_last_layers``, ``comma_padding_backtrack`` and
            ``enable_emphasis``.
        stop: asked between text-encoder calls (raises ``SamplingInterrupted`` when it says so).
        size: SDXL's size conditioning for an SDXL encoder (``encode_sdxl``); ``None`` for SD 1.x/2.x.
    """

    def __init__(self, encoder: PromptEncoder, steps: int, clip_skip: int = 1, backtrack: int = 20,
                 emphasis: bool = True, stop: Callable[[], bool] | None = None,
                 size: SizeConditioning | None = None):
        self.encoder = encoder
        self.stop = stop
        self.steps = steps
        self.clip_skip = clip_skip
        self.backtrack = backtrack
        self.emphasis = emphasis
        self.size = size
        self._schedules: dict[tuple[str, bool, bool], CondSchedule] = {}

    def schedule(self, prompt: str, negative: bool = False, zero_empty: bool = True) -> CondSchedule:
        """The encoded schedule of one prompt (sub-prompt or negative).

        Args:
            zero_empty: for a negative prompt, whether an empty one is zeros (SDXL; see :meth:`batch`).
        """
        # Only SDXL encodes a negative prompt differently (an empty one is zeros, the refiner's score is lower).
        sdxl_negative = negative and self.size is not None
        key = (prompt, sdxl_negative, sdxl_negative and zero_empty)
        if key not in self._schedules:
            self._schedules[key] = self._encode(*key)
        return self._schedules[key]

    def batch(self, prompts: list[str], negative_prompts: list[str]) -> BatchConds:
        """Conditioning for one batch: positives split on ``AND``, negatives as they are.

        Args:
            prompts, negative_prompts: one per image.
        """
        # SDXL zeros empty negative prompts only when the whole batch's are empty (A1111's force_zero_negative_prompt).
        zero_empty = all(prompt == "" for prompt in negative_prompts)
        negatives = tuple(self.schedule(prompt, negative=True, zero_empty=zero_empty) for prompt in negative_prompts)
        per_image, texts = composable_batch(prompts)
        schedules = [self.schedule(text) for text in texts]
        subprompts = tuple(tuple((schedules[index], weight) for index, weight in pairs) for pairs in per_image)
        return BatchConds(subprompts, negatives)

    def _encode(self, prompt: str, negative: bool, zero_empty: bool) -> CondSchedule:
        entries = prompt_schedule(prompt, self.steps)
        texts = [text for _, text in entries]
        distinct = list(dict.fromkeys(texts))
        counts = [texts.count(text) for text in distinct]
        multiplicity = counts if max(counts) > 1 else None
        vectors = None
        if self.size is None:
            conds = self.encoder.encode(distinct, self.clip_skip, self.backtrack, self.emphasis,
                                        multiplicity=multiplicity, stop=self.stop)
        else:
            conds, vectors = self.encoder.encode_sdxl(distinct, self.size, self.clip_skip, self.backtrack,
                                                      self.emphasis, multiplicity, self.stop, negative, zero_empty)
        rows = tuple(distinct.index(text) for text in texts)
        return CondSchedule(tuple(end for end, _ in entries), rows, conds, vectors)
