"""SDXL prompt conditioning on the tiny SDXL pipeline, checked against what A1111 v1.10.1's SDXL path computes:
CLIP-L and bigG penultimate layers side by side, bigG's pooled output from the first chunk, emphasis on both
context parts (not on the pooled output), zeros for an empty negative prompt, and the six size numbers."""

from __future__ import annotations

import json

import pytest
import torch

from sdapi.engine.checkpoint_loader import CONFIGS_DIR
from sdapi.engine.conditioning import pad_after_end
from sdapi.engine.conditioning_sdxl import TIME_IDS, SdxlPromptEncoder, SizeConditioning
from sdapi.engine.demo_sdxl import BIGG_WIDTH, CLIP_L_WIDTH, build_tiny_sdxl_pipeline
from sdapi.engine.sampling.conds import ScheduleEncoder

SIZE = SizeConditioning(width=64, height=48, crop_top=3, crop_left=5)


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_sdxl_pipeline(0)


@pytest.fixture(scope="module")
def encoder(pipe):
    return SdxlPromptEncoder(pipe, torch.device("cpu"))


def _ids(tokenizer, text: str, pad_id: int) -> torch.Tensor:
    """One 77-token chunk as A1111 builds it: BOS, tokens, EOS padding (bigG: ``!`` after the first EOS)."""
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = [tokenizer.bos_token_id] + tokens + [tokenizer.eos_token_id] * (76 - len(tokens))
    return torch.tensor([pad_after_end(ids, tokenizer.eos_token_id, pad_id)])


def test_context_is_both_penultimate_layers_and_the_vector_is_pooled_bigg_and_sizes(pipe, encoder):
    context, vector = encoder.encode_sdxl(["a photo of a cat"], SIZE)
    assert context.shape == (1, 77, CLIP_L_WIDTH + BIGG_WIDTH)
    assert vector.shape == (1, BIGG_WIDTH + TIME_IDS)
    with torch.no_grad():
        out_l = pipe.text_encoder(_ids(pipe.tokenizer, "a photo of a cat", pipe.tokenizer.eos_token_id),
                                  output_hidden_states=True)
        out_g = pipe.text_encoder_2(_ids(pipe.tokenizer_2, "a photo of a cat", 0), output_hidden_states=True)
    torch.testing.assert_close(context[..., :CLIP_L_WIDTH], out_l.hidden_states[-2])
    torch.testing.assert_close(context[..., CLIP_L_WIDTH:], out_g.hidden_states[-2])
    torch.testing.assert_close(vector[:, :BIGG_WIDTH], out_g.text_embeds)
    assert vector[0, BIGG_WIDTH:].tolist() == [48.0, 64.0, 3.0, 5.0, 48.0, 64.0]
    # Not the last layer, nor the final LayerNorm of the penultimate one (the SD 1.x clip-skip rule).
    assert not torch.allclose(context[..., :CLIP_L_WIDTH], out_l.last_hidden_state)


def test_the_bigg_encoder_pads_with_its_own_pad_token(encoder):
    assert encoder.bigg.pad_id == 0 and encoder.clip_l.pad_id == encoder.clip_l.end_id


def test_clip_l_follows_clip_skip_only_with_sdxl_clip_l_skip(pipe, encoder):
    skip = SizeConditioning(64, 48, clip_l_skip=True)
    penultimate, _ = encoder.encode_sdxl(["a cat"], SIZE, clip_skip=3)
    skipped, _ = encoder.encode_sdxl(["a cat"], skip, clip_skip=3)
    with torch.no_grad():
        out = pipe.text_encoder(_ids(pipe.tokenizer, "a cat", pipe.tokenizer.eos_token_id), output_hidden_states=True)
    torch.testing.assert_close(penultimate[..., :CLIP_L_WIDTH], out.hidden_states[-2])
    torch.testing.assert_close(skipped[..., :CLIP_L_WIDTH], out.hidden_states[-3])
    torch.testing.assert_close(skipped[..., CLIP_L_WIDTH:], penultimate[..., CLIP_L_WIDTH:])


def test_emphasis_weighs_both_context_parts_but_not_the_pooled_output(encoder):
    plain, plain_vector = encoder.encode_sdxl(["a cat"], SIZE)
    weighted, weighted_vector = encoder.encode_sdxl(["a (cat:1.5)"], SIZE)
    assert not torch.allclose(plain[..., :CLIP_L_WIDTH], weighted[..., :CLIP_L_WIDTH])
    assert not torch.allclose(plain[..., CLIP_L_WIDTH:], weighted[..., CLIP_L_WIDTH:])
    torch.testing.assert_close(plain_vector, weighted_vector)
    unweighted, _ = encoder.encode_sdxl(["a (cat:1.5)"], SIZE, emphasis=False)
    assert not torch.allclose(unweighted, weighted)


def test_break_and_long_prompts_make_77_token_chunks_and_pooled_comes_from_the_first(encoder):
    first, first_vector = encoder.encode_sdxl(["a cat"], SIZE)
    broken, broken_vector = encoder.encode_sdxl(["a cat BREAK a dog"], SIZE)
    assert broken.shape[1] == 154
    torch.testing.assert_close(broken[:, :77], first)
    torch.testing.assert_close(broken_vector, first_vector)
    long, _ = encoder.encode_sdxl([", ".join(["a red fox"] * 40)], SIZE)
    assert long.shape[1] == 77 * 3


def test_an_empty_negative_prompt_is_zeros_but_keeps_its_size_numbers(encoder):
    context, vector = encoder.encode_sdxl([""], SIZE, negative=True)
    assert torch.count_nonzero(context) == 0 and torch.count_nonzero(vector[:, :BIGG_WIDTH]) == 0
    assert vector[0, BIGG_WIDTH:].tolist() == SIZE.time_ids()
    positive, positive_vector = encoder.encode_sdxl([""], SIZE)
    assert torch.count_nonzero(positive) > 0 and torch.count_nonzero(positive_vector[:, :BIGG_WIDTH]) > 0
    words, _ = encoder.encode_sdxl(["ugly"], SIZE, negative=True)
    assert torch.count_nonzero(words) > 0


def test_prompt_editing_schedules_context_and_vector_together(encoder):
    schedules = ScheduleEncoder(encoder, steps=4, size=SIZE)
    edit = schedules.schedule("[a cat:a dog:2]")
    assert edit.conds.shape[0] == 2 and edit.vectors.shape == (2, BIGG_WIDTH + TIME_IDS)
    cat, cat_vector = encoder.encode_sdxl(["a cat"], SIZE)
    dog, dog_vector = encoder.encode_sdxl(["a dog"], SIZE)
    torch.testing.assert_close(edit.at(0), cat[0])
    torch.testing.assert_close(edit.vector_at(0), cat_vector[0])
    torch.testing.assert_close(edit.at(3), dog[0])
    torch.testing.assert_close(edit.vector_at(3), dog_vector[0])


def test_and_parts_and_negatives_each_get_their_vector_rows(encoder):
    conds = ScheduleEncoder(encoder, steps=4, size=SIZE).batch(["a cat AND a dog:0.5"], [""])
    cond, parts = conds.cond_at(0)
    assert cond.shape[0] == 2 and parts == [[(0, 1.0), (1, 0.5)]]
    assert conds.cond_vectors_at(0).shape == (2, BIGG_WIDTH + TIME_IDS)
    assert torch.count_nonzero(conds.uncond_vectors_at(0)[:, :BIGG_WIDTH]) == 0


def _config(model_type: str, component: str) -> dict:
    return json.loads((CONFIGS_DIR / model_type / component / "config.json").read_text())


def test_the_shipped_sdxl_config_widths_add_up_to_2048_context_and_1280_pooled():
    unet, clip_l, bigg = _config("sdxl", "unet"), _config("sdxl", "text_encoder"), _config("sdxl", "text_encoder_2")
    assert clip_l["hidden_size"] + bigg["hidden_size"] == unet["cross_attention_dim"] == 2048
    assert bigg["projection_dim"] == 1280
    assert bigg["projection_dim"] + TIME_IDS * unet["addition_time_embed_dim"] == \
        unet["projection_class_embeddings_input_dim"]
    refiner = _config("sdxl-refiner", "unet")
    assert refiner["cross_attention_dim"] == bigg["hidden_size"]  # the refiner has bigG only


def test_an_sdxl_embedding_writes_each_part_into_its_own_encoder(pipe, encoder):
    """Later A1111's ``textual_inversion_key``: CLIP-L takes ``clip_l``, bigG ``clip_g``, at the same places; an
    SD 1.x-layout file is skipped on SDXL."""
    from sdapi.engine.embedding_file import EmbeddingData
    from sdapi.engine.embeddings import build_database

    parts = {"clip_l": torch.randn(2, CLIP_L_WIDTH), "clip_g": torch.randn(2, BIGG_WIDTH)}
    files = [("/e/xl.safetensors", EmbeddingData("xl-style", parts)),
             ("/e/sd1.safetensors", EmbeddingData("sd1-style", torch.randn(2, CLIP_L_WIDTH)))]
    database = build_database(files, encoder.widths(), encoder.tokenize)
    assert list(database.loaded) == ["xl-style"] and list(database.skipped) == ["sd1-style"]
    plain = encoder.encode_sdxl(["a cat xl-style"], SIZE)[0]
    encoder.embeddings = database
    try:
        context = encoder.encode_sdxl(["a cat xl-style"], SIZE)[0]
        (chunk,) = encoder.clip_l.chunks("a cat xl-style")
        assert chunk.fixes == [(2, database.loaded["xl-style"])]  # "a", "cat", then 2 places
        with torch.no_grad():
            ids = torch.tensor([chunk.tokens])
            embeds_l = pipe.text_encoder.get_input_embeddings()(ids)
            embeds_l[0, 3:5] = parts["clip_l"]
    finally:
        encoder.embeddings = None
    assert not torch.equal(context[..., :CLIP_L_WIDTH], plain[..., :CLIP_L_WIDTH])
    assert not torch.equal(context[..., CLIP_L_WIDTH:], plain[..., CLIP_L_WIDTH:])
    handle = pipe.text_encoder.get_input_embeddings().register_forward_hook(lambda *_: embeds_l)
    try:
        with torch.no_grad():
            expected_l = pipe.text_encoder(input_ids=ids, output_hidden_states=True)
    finally:
        handle.remove()
    torch.testing.assert_close(context[..., :CLIP_L_WIDTH], expected_l.hidden_states[-2])


def test_an_empty_negative_is_zeros_only_when_the_whole_batch_s_negatives_are_empty(encoder):
    # A1111 v1.10 sd_models_xl: force_zero_negative_prompt = is_negative_prompt and all(x == '' for x in batch).
    schedules = ScheduleEncoder(encoder, steps=4, size=SIZE)
    mixed = schedules.batch(["a cat", "a cat"], ["", "blurry"])
    empty_row = mixed.uncond_vectors_at(0)[0, :BIGG_WIDTH]
    assert torch.count_nonzero(empty_row) > 0
    text, text_vector = encoder.encode_sdxl([""], SIZE)
    torch.testing.assert_close(mixed.uncond_at(0)[0], text[0])
    all_empty = schedules.batch(["a cat", "a cat"], ["", ""])
    assert torch.count_nonzero(all_empty.uncond_vectors_at(0)[:, :BIGG_WIDTH]) == 0
