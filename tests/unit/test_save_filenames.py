"""A1111 v1.2.1's filename patterns (``modules/images.py``: ``FilenameGenerator``, ``sanitize_filename_part``,
``get_next_sequence_number``) as :mod:`sdapi.saving` rebuilds them."""

from __future__ import annotations

from datetime import datetime, timezone

from sdapi.saving.filenames import NamingContext, apply_pattern, sanitize_filename_part
from sdapi.saving.files import _shortened, next_sequence_number

NOON = datetime(2024, 5, 6, 12, 30, 15, tzinfo=timezone.utc)


def context(**values) -> NamingContext:
    return NamingContext(**{"seed": 1, "prompt": "a cat", "now": lambda: NOON, **values})


def test_sanitize_replaces_windows_characters_and_trims():
    # Spaces become "_" first, so only the unreplaced form loses its leading space and trailing dot.
    assert sanitize_filename_part(' a/b:c?*"d <e>|\n. ') == "_a_b_c___d__e___._"
    assert sanitize_filename_part(" a b. ", replace_spaces=False) == "a b"
    assert len(sanitize_filename_part("x" * 300)) == 128


def test_skipping_tags_drop_the_text_before_them():
    pattern = "[seed]-[batch_number]-[generation_number]-[denoising]"
    assert apply_pattern(pattern, context()) == "1"
    assert apply_pattern(pattern, context(batch_size=2, n_iter=3, batch_index=1, iteration=2,
                                          denoising_strength=0.4)) == "1-2-6-0.4"


def test_unknown_and_unfillable_tags_stay_as_written():
    # [model_hash] of an unhashed model is None; [hasprompt] without a prompt fails; both stay, args dropped.
    assert apply_pattern("[nope]-[model_hash]-[hasprompt<a>]", context(prompt=None)) == "[nope]-[model_hash]-[hasprompt]"


def test_dates_with_format_and_zone():
    assert apply_pattern("[date]", context()) == NOON.astimezone().strftime("%Y-%m-%d")
    assert apply_pattern("[datetime<%Y/%m><UTC>]", context()) == "2024_05"
    assert apply_pattern("[datetime<><No/Such_Zone>]", context()) == NOON.astimezone().strftime("%Y%m%d%H%M%S")


def test_prompt_variants():
    c = context(prompt="masterpiece, a cat, best quality", styles=["Nice", "None"],
                style_prompts=["masterpiece, {prompt}, best quality", ""])
    assert apply_pattern("[prompt_no_styles]|[styles]", c) == "a cat|Nice"
    assert apply_pattern("[prompt_words]", context(prompt="one, two; three four five six seven eight nine")) == (
        "one two three four five six seven eight")
    assert apply_pattern("[prompt_words]", context(prompt="!!")) == "empty"
    assert apply_pattern("[hasprompt<CAT><dog|no dog>]", context(prompt="A Cat")) == "catno_dog"


def test_sequence_numbers_follow_the_largest_leading_number(tmp_path):
    assert next_sequence_number(tmp_path, "") == 0
    for name in ("00003-1.png", "00010-x.txt", "grid-0007.png", "notes.txt"):
        (tmp_path / name).write_text("")
    assert next_sequence_number(tmp_path, "") == 11
    assert next_sequence_number(tmp_path, "grid") == 8


def test_long_names_are_cut_in_the_name_only():
    stem = _shortened("00001-" + "p" * 300, "outputs/txt2img-images", ".png", 255)
    assert len("outputs/txt2img-images/" + stem) == 251 and stem.startswith("00001-")
    assert len(_shortened("0" * 300, "x" * 400, ".png", 255)) >= 1
