"""Per-call conditioning selection in the sampling loop, following A1111 v1.2.1's CFG-denoiser step counter.

A1111 counts denoiser calls from 0 and builds schedules for ``steps`` (first-order samplers) or ``2 * steps``
(second-order ones, which call the denoiser ``2 * steps - 1`` times). A schedule entry applies while
``counter <= end_at_step``; past the last entry the first applies again. The expected label sequences below are
worked out from that by hand.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sdapi.engine.demo_models import build_tiny_sd15_pipeline
from sdapi.engine.sampling.conds import BatchConds, ScheduleEncoder, schedule_length
from sdapi.engine.sampling.core import SamplingStart, sample
from sdapi.engine.sampling.noise import SamplerNoise
from sdapi.engine.sampling.registry import find_sampler

LABELS = {"cat": 1.0, "dog": 2.0, "": -1.0, "x": 3.0, "y": 4.0}


class LabelEncoder:
    """Encodes each known text as a constant (77, 32) tensor whose value names the text."""

    def encode(self, texts, clip_skip=1, backtrack=20, emphasis=True, multiplicity=None, stop=None):
        return torch.stack([torch.full((77, 32), LABELS[t.strip()]) for t in texts])


class RecordingUnet:
    """Runs the real UNet and records the label of every conditioning row of every call."""

    def __init__(self, unet):
        self.unet = unet
        self.calls: list[list[float]] = []

    def __call__(self, x, t, encoder_hidden_states):
        self.calls.append(encoder_hidden_states[:, 0, 0].tolist())
        return self.unet(x, t, encoder_hidden_states=encoder_hidden_states)


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_sd15_pipeline(5)


def labels_per_call(pipe, sampler: str, prompt: str, negative: str = "", steps: int = 4, fix: bool = True):
    """The ``(cond labels, uncond label)`` of each UNet call when sampling one image."""
    spec = find_sampler(sampler)
    unet = RecordingUnet(pipe.unet)
    model = SimpleNamespace(pipe=pipe, unet=unet, device=torch.device("cpu"), dtype=torch.float32,
                            v_prediction=False, sdxl=False)
    schedules = ScheduleEncoder(LabelEncoder(), schedule_length(spec, steps, fix))
    conds = schedules.batch([prompt], [negative])
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(1, 4, 8, 8, generator=generator)
    sample(model, spec, SamplingStart(steps), noise, conds, 7.0, SamplerNoise([generator], steps, (4, 8, 8), False),
           [1])
    if spec.kdiffusion:
        return [(call[:-1], call[-1]) for call in unet.calls]
    return [(call[1:], call[0]) for call in unet.calls]  # ldm puts the uncond row first


def names(calls):
    by_value = {v: k for k, v in LABELS.items()}
    return [by_value[conds[0]] for conds, _ in calls]


def test_euler_switches_after_half_the_steps(pipe):
    # 4 calls, schedule for 4 steps: [cat:dog:0.5] -> cat while counter <= 2.
    assert names(labels_per_call(pipe, "Euler", "[cat:dog:0.5]")) == ["cat", "cat", "cat", "dog"]


def test_heun_counts_denoiser_calls_on_a_doubled_schedule(pipe):
    # 7 calls (2 per step, 1 for the last), schedule for 8 steps: cat while counter <= 4.
    assert names(labels_per_call(pipe, "Heun", "[cat:dog:0.5]")) == ["cat"] * 5 + ["dog"] * 2


def test_heun_without_the_fix_falls_back_to_the_first_entry(pipe):
    # Schedule for 4 steps: cat <= 2, dog <= 4, then counters 5 and 6 are past the end -> first entry.
    calls = labels_per_call(pipe, "Heun", "[cat:dog:0.5]", fix=False)
    assert names(calls) == ["cat", "cat", "cat", "dog", "dog", "cat", "cat"]


def test_alternation_follows_the_counter(pipe):
    # Entries end at steps 1, 2, 3...: counters 0 and 1 both pick the first option.
    assert names(labels_per_call(pipe, "Euler", "[cat|dog]")) == ["cat", "cat", "dog", "cat"]
    assert names(labels_per_call(pipe, "Heun", "[cat|dog]")) == ["cat", "cat", "dog", "cat", "dog", "cat", "dog"]


def test_negative_prompt_is_scheduled_too(pipe):
    calls = labels_per_call(pipe, "Euler", "cat", negative="[x:y:0.5]")
    assert [uncond for _, uncond in calls] == [LABELS["x"]] * 3 + [LABELS["y"]]


def test_and_parts_are_batched_with_the_uncond(pipe):
    # One UNet call per denoiser call: both parts (the second one edited at step 1), then the uncond.
    calls = labels_per_call(pipe, "Euler", "cat AND [x:dog:1]")
    assert calls == [([1.0, 3.0], -1.0)] * 2 + [([1.0, 2.0], -1.0)] * 2


def test_and_with_a_compvis_sampler_is_refused_like_a1111(pipe):
    with pytest.raises(AssertionError, match="composition via AND is not supported for DDIM/PLMS samplers"):
        labels_per_call(pipe, "DDIM", "cat AND dog")


def test_plms_counts_its_updates_and_its_first_step_calls_twice(pipe):
    # A1111's hook counts p_sample calls: PLMS's first step evaluates the model twice with the same conditioning.
    assert names(labels_per_call(pipe, "PLMS", "[cat:dog:0.5]")) == ["cat", "cat", "cat", "cat", "dog"]


def test_ddim_counts_its_steps(pipe):
    assert names(labels_per_call(pipe, "DDIM", "[cat:dog:0.5]")) == ["cat", "cat", "cat", "dog"]


def test_unipc_counts_updates_not_model_calls(pipe):
    # 4 steps, order 3: one call at the start (counter 0), then a corrector call before each update but the last
    # (counters 0, 1, 2). [cat:dog:0.25] is cat while the counter is <= 1.
    calls = labels_per_call(pipe, "UniPC", "[cat:dog:0.25]")
    assert names(calls) == ["cat", "cat", "cat", "dog"]


def test_fixed_tensors_still_work():
    cond, uncond = torch.rand(2, 77, 8), torch.rand(2, 77, 8)
    conds = BatchConds.fixed(cond, uncond)
    rows, conds_list = conds.cond_at(5)
    assert torch.equal(rows, cond) and conds_list == [[(0, 1.0)], [(1, 1.0)]]
    assert torch.equal(conds.uncond_at(5), uncond)
