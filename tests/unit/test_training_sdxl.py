"""The SDXL trainer's conditioning: kohya's size numbers and crop rule, and captions encoded as diffusers'
SDXL pipeline encodes a prompt (both penultimate layers side by side, bigG's pooled output)."""

from __future__ import annotations

import pytest
import torch

from sdapi.engine.demo_sdxl import build_tiny_sdxl_pipeline
from sdapi.engine.training.text_sdxl import SdxlCaptionEncoder, crop_top_left, time_ids


@pytest.fixture(scope="module")
def sdxl_pipe():
    return build_tiny_sdxl_pipeline(0)


@pytest.mark.parametrize("bucket, image, flip, expected", [
    ((64, 64), (64, 64), False, (0, 0)),
    ((64, 64), (128, 64), False, (16, 0)),     # wider image: kohya's margin is at the top
    ((128, 64), (100, 100), False, (0, 32)),   # taller image: at the left
    ((128, 64), (100, 60), False, (0, 10)),    # 106.67 wide fitted: left (128 - 106.67) // 2
    ((128, 64), (100, 60), True, (0, 11)),     # flipped: measured from the right edge
])
def test_crop_numbers_follow_kohyas_get_crop_ltrb(bucket, image, flip, expected):
    assert crop_top_left(bucket, image, flip) == expected


def test_time_ids_are_original_crop_target_each_height_first():
    assert time_ids((128, 64), (100, 60), False) == [60.0, 100.0, 0.0, 10.0, 64.0, 128.0]


def test_a_caption_is_encoded_as_diffusers_encodes_an_sdxl_prompt(sdxl_pipe):
    encoder = SdxlCaptionEncoder(sdxl_pipe, None, torch.device("cpu"))
    with torch.no_grad():
        context, pooled = encoder.encode(["a red cat", "blue"])
        expected, _, expected_pooled, _ = sdxl_pipe.encode_prompt(["a red cat", "blue"], device="cpu",
                                                                  do_classifier_free_guidance=False)
    assert torch.allclose(context, expected, atol=1e-5) and torch.allclose(pooled, expected_pooled, atol=1e-5)


def test_long_captions_join_chunks_and_pool_the_first(sdxl_pipe):
    long = "a red cat, " * 40
    with torch.no_grad():
        context, pooled = SdxlCaptionEncoder(sdxl_pipe, 225, torch.device("cpu")).encode([long])
        _, first_pooled = SdxlCaptionEncoder(sdxl_pipe, None, torch.device("cpu")).encode([long])
    width = sdxl_pipe.text_encoder.config.hidden_size + sdxl_pipe.text_encoder_2.config.hidden_size
    assert context.shape == (1, 227, width)
    assert torch.allclose(pooled, first_pooled, atol=1e-5)
