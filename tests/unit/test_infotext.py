"""v1.2.1 infotext formatting."""

from __future__ import annotations

import pytest

from sdapi.infotext import create_infotext, format_params, generation_params, quote


@pytest.mark.parametrize("value, expected", [
    ("Latent", "Latent"), (7.0, "7.0"), (0, "0"), ("a, b", '"a, b"'), ('say "x", y', '"say \\"x\\", y"'),
    ("c:\\d, e", '"c:\\\\d, e"'), ("a: b", "a: b"),
])
def test_quote_only_quotes_commas(value, expected):
    assert quote(value) == expected


def test_none_values_are_left_out_and_equal_key_value_prints_key():
    assert format_params({"A": 1, "B": None, "C": "C", "D": 2.5}) == "A: 1, C, D: 2.5"


def base(**kw):
    args = dict(steps=20, sampler="Euler", cfg_scale=7.0, seed=1234, width=512, height=512, model_hash="6ce0161689",
                model_name="v1-5-pruned-emaonly", subseed=99, subseed_strength=0, seed_resize_from=(-1, -1),
                denoising_strength=0, clip_skip=1)
    args.update(kw)
    return generation_params(**args)


def test_reference_example_from_a1111():
    text = create_infotext("a cat", "blurry", base())
    assert text == ("a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler, CFG scale: 7.0, Seed: 1234, "
                    "Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Seed resize from: -1x-1, "
                    "Denoising strength: 0, Version: v1.2.1")


def test_extras_come_after_version_and_optional_keys_appear_in_order():
    params = base(subseed_strength=0.3, clip_skip=2, ensd=31337, randn_source="CPU",
                  extra={"Hires upscale": 2.0, "Hires upscaler": "Latent"})
    text = create_infotext("x", "", params)
    assert text.endswith("Variation seed: 99, Variation seed strength: 0.3, Seed resize from: -1x-1, "
                         "Denoising strength: 0, Clip skip: 2, ENSD: 31337, RNG: CPU, Version: v1.2.1, "
                         "Hires upscale: 2.0, Hires upscaler: Latent")


def test_empty_prompt_and_negative_give_params_line_only():
    assert create_infotext("", "", base()).startswith("Steps: 20,")


def test_seed_resize_left_out_only_for_zero():
    assert "Seed resize from" not in create_infotext("x", "", base(seed_resize_from=(0, 0)))
    assert "Seed resize from: 64x32" in create_infotext("x", "", base(seed_resize_from=(64, 32)))
