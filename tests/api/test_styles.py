"""``styles.csv``: listed by ``/prompt-styles`` and applied by ``styles`` in txt2img, as A1111 does."""

from __future__ import annotations

import json

import pytest

from sdapi.styles import merge_prompts
from tests.conftest import txt2img

STYLES_CSV = ('name,prompt,negative_prompt\n'
              '"cinematic","{prompt}, cinematic lighting","cartoon"\n'
              'plain,"oil painting",\n')


@pytest.fixture()
def styles_file(settings):
    path = settings.styles_path
    path.write_text(STYLES_CSV, encoding="utf-8")
    yield path
    path.unlink()


def test_prompt_styles_lists_the_csv(client, styles_file):
    assert client.get("/sdapi/v1/prompt-styles").json() == [
        {"name": "cinematic", "prompt": "{prompt}, cinematic lighting", "negative_prompt": "cartoon"},
        {"name": "plain", "prompt": "oil painting", "negative_prompt": ""},
    ]


def test_styles_are_applied_to_all_prompts_and_the_image(client, styles_file):
    styled = txt2img(client, prompt="a cat", negative_prompt="ugly", styles=["cinematic", "plain", "unknown"],
                     seed=4)
    info = json.loads(styled["info"])
    assert info["all_prompts"] == ["a cat, cinematic lighting, oil painting"]
    assert info["all_negative_prompts"] == ["ugly, cartoon"]
    assert info["prompt"] == "a cat" and info["styles"] == ["cinematic", "plain", "unknown"]
    assert info["infotexts"][0].startswith("a cat, cinematic lighting, oil painting\nNegative prompt: ugly, cartoon")
    same_text = txt2img(client, prompt="a cat, cinematic lighting, oil painting", negative_prompt="ugly, cartoon",
                        seed=4)
    assert styled["images"] == same_text["images"]


@pytest.mark.parametrize("style, prompt, expected", [
    ("{prompt}, x", "a", "a, x"),
    ("x", "a", "a, x"),
    ("x", "", "x"),
    ("", "a", "a"),
    ("pre {prompt} post", "", "pre  post"),
])
def test_merge_prompts(style, prompt, expected):
    assert merge_prompts(style, prompt) == expected
