"""Emphasis weights in the text-encoder output, BREAK chunks, and encoded prompt schedules (tiny CLIP)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sdapi.engine.conditioning import PromptEncoder, pad_after_end
from sdapi.engine.demo_models import build_tiny_sd15_pipeline
from sdapi.engine.sampling.conds import ScheduleEncoder, stack_padded


@pytest.fixture(scope="module")
def encoder() -> PromptEncoder:
    pipe = build_tiny_sd15_pipeline(7)
    return PromptEncoder(pipe.tokenizer, pipe.text_encoder, torch.device("cpu"))


def test_token_runs_carry_weights_and_break_markers(encoder):
    ids = encoder.tokenize
    assert encoder.token_runs("a (cat:1.5) BREAK dog") == [
        (ids("a "), 1.0), (ids("cat"), 1.5), ([], -1.0), (ids("dog"), 1.0)]


def test_emphasis_off_keeps_the_syntax_as_text(encoder):
    text = "a (cat:1.5) BREAK dog"
    assert encoder.token_runs(text, emphasis=False) == [(encoder.tokenize(text), 1.0)]
    assert len(encoder.chunks(text, emphasis=False)) == 1
    assert len(encoder.chunks(text)) == 2


def test_weights_multiply_hidden_states_and_the_mean_is_restored(encoder):
    plain = encoder.encode(["a cat"])
    weighted = encoder.encode(["a (cat:1.5)"])
    weights = torch.ones(1, 77, 1)
    weights[0, 2] = 1.5  # [BOS, a, cat, EOS...]
    scaled = plain * weights
    expected = scaled * (plain.mean() / scaled.mean())
    torch.testing.assert_close(weighted, expected)
    assert not torch.equal(weighted, plain)


def test_weight_one_is_exactly_the_plain_prompt(encoder):
    assert torch.equal(encoder.encode(["a (cat:1.0)"]), encoder.encode(["a cat"]))


def test_break_starts_a_new_chunk(encoder):
    assert encoder.encode(["a cat BREAK a dog"]).shape[1] == 154


def test_multiplicity_weighs_the_batch_mean_like_repeated_rows(encoder):
    repeated = encoder.encode(["a cat", "a cat", "a cat", "(a dog:1.6)"])
    counted = encoder.encode(["a cat", "(a dog:1.6)"], multiplicity=[3, 1])
    torch.testing.assert_close(counted, repeated[[0, 3]])


def test_zero_mean_output_does_not_give_nan(encoder):
    def zeros(input_ids, output_hidden_states=False):
        return SimpleNamespace(last_hidden_state=torch.zeros(input_ids.shape[0], input_ids.shape[1], 8))

    zero_encoder = PromptEncoder(encoder.tokenizer, zeros, torch.device("cpu"))
    out = zero_encoder.encode(["(cat:2) [dog]"])
    assert torch.isfinite(out).all()


def test_schedule_encodes_each_distinct_text_once(encoder):
    schedules = ScheduleEncoder(encoder, steps=4)
    edit = schedules.schedule("[a cat:a dog:0.5]")
    assert edit.end_steps == (2, 4) and edit.rows == (0, 1)
    torch.testing.assert_close(edit.conds, encoder.encode(["a cat", "a dog"]))
    assert torch.equal(edit.at(0), edit.conds[0]) and torch.equal(edit.at(3), edit.conds[1])
    alternation = schedules.schedule("[a cat|a dog]")
    assert alternation.end_steps == (1, 2, 3, 4) and alternation.rows == (0, 1, 0, 1)
    assert alternation.conds.shape[0] == 2
    assert schedules.schedule("[a cat:a dog:0.5]") is edit


def test_scheduled_texts_keep_their_emphasis(encoder):
    schedule = ScheduleEncoder(encoder, steps=4).schedule("[(a cat:1.4):a dog:1]")
    torch.testing.assert_close(schedule.conds, encoder.encode(["(a cat:1.4)", "a dog"]))


def test_batch_splits_and_with_weights(encoder):
    conds = ScheduleEncoder(encoder, steps=4).batch(["a cat AND a dog:0.5", "a cat"], ["", ""])
    rows, conds_list = conds.cond_at(0)
    assert conds_list == [[(0, 1.0), (1, 0.5)], [(2, 1.0)]]
    assert rows.shape == (3, 77, 32)
    torch.testing.assert_close(rows[0], rows[2])
    assert conds.uncond_at(0).shape == (2, 77, 32)
    assert conds.cond_at(0, weighted=False)[1] == [[(0, 1.0), (1, 1.0)], [(2, 1.0)]]


def test_shorter_conds_are_padded_with_their_last_vector():
    short, long = torch.rand(77, 4), torch.rand(154, 4)
    stacked = stack_padded([short, long])
    assert stacked.shape == (2, 154, 4)
    assert torch.equal(stacked[0, :77], short)
    assert torch.equal(stacked[0, 77:], short[-1:].expand(77, 4))


def test_sd2_padding_after_the_first_end_token():
    bos, eos, pad = 49406, 49407, 0
    chunk = [bos, 5, 6, eos, eos, eos]
    assert pad_after_end(chunk, eos, pad) == [bos, 5, 6, eos, pad, pad]
    assert pad_after_end(chunk, eos, eos) == chunk  # SD1 pads with EOS already
