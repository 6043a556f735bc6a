"""SDXL refiner prompt conditioning on the tiny refiner, checked against what A1111 v1.10.1 computes with sgm's
``sd_xl_refiner.yaml`` conditioner: bigG's penultimate layer alone as context, its pooled output then original size,
crop and the aesthetic score (high for prompts, low for negative prompts), zeros for an empty negative prompt; and the
UNet gets those five numbers as its time ids."""

from __future__ import annotations

import pytest
import torch

from sdapi.engine.conditioning import pad_after_end
from sdapi.engine.conditioning_sdxl import REFINER_TIME_IDS, SizeConditioning
from sdapi.engine.conditioning_sdxl_refiner import SdxlRefinerPromptEncoder
from sdapi.engine.demo_sdxl import BIGG_WIDTH
from sdapi.engine.demo_sdxl_refiner import build_tiny_sdxl_refiner_pipeline
from sdapi.engine.model import LoadedModel, prompt_encoder
from sdapi.engine.sampling.conds import ScheduleEncoder
from sdapi.engine.sampling.denoiser import unet_rows

SIZE = SizeConditioning(width=64, height=48, crop_top=3, crop_left=5, aesthetic_scores=(7.5, 1.5))


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_sdxl_refiner_pipeline()


@pytest.fixture(scope="module")
def model(pipe):
    return LoadedModel(pipe=pipe, encoder=prompt_encoder(pipe, torch.device("cpu")), device=torch.device("cpu"),
                       dtype=torch.float32)


def _bigg_ids(tokenizer, text: str) -> torch.Tensor:
    """One 77-token chunk as A1111 builds it for bigG: BOS, tokens, EOS, ``!`` padding."""
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = [tokenizer.bos_token_id] + tokens + [tokenizer.eos_token_id] * (76 - len(tokens))
    return torch.tensor([pad_after_end(ids, tokenizer.eos_token_id, 0)])


def test_a_refiner_model_gets_the_bigg_only_encoder_and_five_numbers(model):
    assert isinstance(model.encoder, SdxlRefinerPromptEncoder)
    assert model.sdxl and model.sdxl_refiner and model.time_ids == REFINER_TIME_IDS == 5
    assert model.encoder.bigg.pad_id == 0


def test_context_is_bigg_penultimate_and_the_vector_is_pooled_sizes_crop_and_high_score(pipe, model):
    context, vector = model.encoder.encode_sdxl(["a photo of a cat"], SIZE)
    assert context.shape == (1, 77, BIGG_WIDTH) and vector.shape == (1, BIGG_WIDTH + REFINER_TIME_IDS)
    with torch.no_grad():
        out = pipe.text_encoder_2(_bigg_ids(pipe.tokenizer_2, "a photo of a cat"), output_hidden_states=True)
    torch.testing.assert_close(context, out.hidden_states[-2])
    torch.testing.assert_close(vector[:, :BIGG_WIDTH], out.text_embeds)
    # sgm's order: original size (h, w), crop (top, left), aesthetic score; no target size.
    assert vector[0, BIGG_WIDTH:].tolist() == [48.0, 64.0, 3.0, 5.0, 7.5]


def test_negative_prompts_get_the_low_score_and_an_empty_one_zeros(model):
    _, positive = model.encoder.encode_sdxl(["ugly"], SIZE)
    context, negative = model.encoder.encode_sdxl(["ugly"], SIZE, negative=True)
    assert negative[0, BIGG_WIDTH:].tolist() == [48.0, 64.0, 3.0, 5.0, 1.5]
    torch.testing.assert_close(negative[:, :BIGG_WIDTH], positive[:, :BIGG_WIDTH])
    assert torch.count_nonzero(context) > 0
    empty_context, empty = model.encoder.encode_sdxl([""], SIZE, negative=True)
    assert torch.count_nonzero(empty_context) == 0 and torch.count_nonzero(empty[:, :BIGG_WIDTH]) == 0
    assert empty[0, BIGG_WIDTH:].tolist() == [48.0, 64.0, 3.0, 5.0, 1.5]


def test_schedules_encode_negatives_apart_with_their_score(model):
    schedules = ScheduleEncoder(model.encoder, 4, size=SIZE)
    conds = schedules.batch(["a cat"], ["a cat"])
    assert conds.cond_vectors_at(0)[0, -1].item() == 7.5 and conds.uncond_vectors_at(0)[0, -1].item() == 1.5


def test_the_refiner_unet_takes_the_five_numbers_as_time_ids(model):
    schedules = ScheduleEncoder(model.encoder, 4, size=SIZE)
    conds = schedules.batch(["a cat"], [""])
    cond, _ = conds.cond_at(0)
    vectors = torch.cat([conds.cond_vectors_at(0), conds.uncond_vectors_at(0)])
    x = torch.randn(2, 4, 6, 8)
    out = unet_rows(model, x, torch.tensor([500.0, 500.0]), cond, conds.uncond_at(0), vectors)
    assert out.shape == x.shape and torch.isfinite(out).all()
    # The score reaches the UNet: another high score gives another prediction for the prompt's row.
    other = vectors.clone()
    other[0, -1] = 2.0
    changed = unet_rows(model, x, torch.tensor([500.0, 500.0]), cond, conds.uncond_at(0), other)
    assert not torch.allclose(changed[0], out[0]) and torch.allclose(changed[1], out[1])
