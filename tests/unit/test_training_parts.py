"""LoRA training's pure-Python parts: buckets, kohya's step arithmetic, captions, prompts, options, event files."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from PIL import Image

from sdapi.dataset.paths import PathGuard
from sdapi.engine.training.buckets import BucketSpec, assign_bucket, bucket_resolutions, cover_and_crop_box
from sdapi.engine.training.captions import CaptionRules, process_caption
from sdapi.training.config_file import flatten
from sdapi.training.dataset import flat_folder_repeats, scan_dataset
from sdapi.engine.training.plan import tag_frequency
from sdapi.training.errors import ConfigError
from sdapi.training.options import check_optimizer, parse_kv_args, warmup_steps
from sdapi.training.plan import build_entries, regularisation_repeats, schedule, steps_per_epoch
from sdapi.engine.training.plan import epoch_batches
from sdapi.training.sample_prompts import parse_prompts
from sdapi.engine.training.plan import SamplePrompt
from sdapi.training.tb_events import crc32c, event_bytes, masked_crc, record


def make_images(folder: Path, sizes: list[tuple[int, int]], caption: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(sizes):
        Image.new("RGB", size, (i * 40 % 255, 90, 160)).save(folder / f"img{i}.png")
        if caption is not None:
            (folder / f"img{i}.txt").write_text(f"{caption}\nsecond line is ignored", encoding="utf-8")


def test_bucket_resolutions_follow_kohyas_rule():
    spec = BucketSpec((512, 512), min_size=256, max_size=1024, step=64, no_upscale=False)
    sizes = bucket_resolutions(spec)
    assert (512, 512) in sizes and (256, 1024) in sizes and (1024, 256) in sizes and (576, 448) in sizes
    assert all(w * h <= 512 * 512 and w % 64 == 0 and h % 64 == 0 for w, h in sizes)
    assert assign_bucket(1000, 500, spec) == (704, 320)  # aspect 2.0: 704x320 (2.2) beats 640x384 (1.67)
    assert assign_bucket(300, 300, spec) == (512, 512)


def test_no_upscale_keeps_small_images_at_their_own_size():
    spec = BucketSpec((512, 512), step=64, no_upscale=True)
    assert assign_bucket(200, 130, spec) == (192, 128)
    assert assign_bucket(2000, 1000, spec) == (704, 320)  # scaled into the base area (724x362), rounded down


def test_cover_and_crop_fills_the_bucket_exactly():
    resized, box = cover_and_crop_box(300, 200, (128, 128))
    assert resized[1] == 128 and resized[0] >= 128
    assert box[2] - box[0] == 128 and box[3] - box[1] == 128


def test_kohya_step_count_with_buckets_and_regularisation(tmp_path):
    make_images(tmp_path / "train" / "3_cat", [(128, 64), (128, 64), (64, 128), (64, 64)], caption="cat, sitting")
    make_images(tmp_path / "reg" / "1_animal", [(64, 64), (64, 64)])
    guard = PathGuard.for_roots(tmp_path)
    subsets = scan_dataset(tmp_path / "train", extension=".txt", guard=guard, field_name="train_data_dir",
                           repeats=None, class_tokens="x")
    reg = scan_dataset(tmp_path / "reg", extension=".txt", guard=guard, field_name="reg_data_dir", repeats=1,
                       class_tokens="x", is_reg=True)
    spec = BucketSpec((128, 128), min_size=64, max_size=256, step=64, no_upscale=True)
    entries = build_entries(subsets, reg, spec)
    # 4 images x 3 repeats = 12 train; reg cycled up to 12; buckets: 128x64: 6, 64x128: 3, 64x64: 3 + 12.
    assert sum(e.repeats for e in entries if e.is_reg) == 12
    assert steps_per_epoch(entries, 2) == 3 + 2 + 8
    plan = schedule(entries, 2, 2, max_epochs=4, max_steps=None)
    assert (plan.steps_per_epoch, plan.updates_per_epoch, plan.total_steps) == (13, 7, 28)
    batches = epoch_batches(entries, 2, random.Random(0))
    assert len(batches) == 13 and all(len({e.bucket for e in b}) == 1 for b in batches)
    assert subsets[0].images[0].caption == "cat, sitting" and reg[0].images[0].caption == "animal"


def test_regularisation_images_are_cycled_like_kohya():
    class S:
        def __init__(self, images, repeats):
            self.images, self.repeats = images, repeats

    balanced = regularisation_repeats([S(["a", "b", "c"], 1)], 7)
    assert [r for _, r in balanced] == [3, 2, 2]
    assert regularisation_repeats([S(["a", "b"], 5)], 3) == [("a", 5)]


def test_flat_folder_uses_the_repeats_field_or_lora_scripts_heuristic(tmp_path):
    make_images(tmp_path / "flat", [(64, 64)] * 3)
    guard = PathGuard.for_roots(tmp_path)
    (subset,) = scan_dataset(tmp_path / "flat", extension=".txt", guard=guard, field_name="train_data_dir",
                             repeats=None, class_tokens="aki")
    assert subset.repeats == 7 and subset.name == "7_aki" and subset.images[0].caption == "aki"
    (subset,) = scan_dataset(tmp_path / "flat", extension=".txt", guard=guard, field_name="train_data_dir",
                             repeats=2, class_tokens="aki")
    assert subset.repeats == 2
    assert [flat_folder_repeats(n) for n in (10, 11, 50, 100, 101)] == [7, 5, 5, 3, 1]
    assert not (tmp_path / "flat" / "7_aki").exists()  # files are never moved


def test_unreadable_image_names_the_field(tmp_path):
    folder = tmp_path / "d" / "1_x"
    folder.mkdir(parents=True)
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError) as info:
        scan_dataset(tmp_path / "d", extension=".txt", guard=PathGuard.for_roots(tmp_path),
                     field_name="train_data_dir", repeats=None, class_tokens="x")
    assert info.value.field == "train_data_dir" and "broken.png" in info.value.message


def test_tag_frequency_counts_lowercased_tags_per_folder(tmp_path):
    make_images(tmp_path / "t" / "2_a", [(64, 64)] * 2, caption="Red, square ,red")
    subsets = scan_dataset(tmp_path / "t", extension=".txt", guard=PathGuard.for_roots(tmp_path),
                           field_name="train_data_dir", repeats=None, class_tokens="x")
    assert tag_frequency(subsets) == {"2_a": {"red": 4, "square": 2}}


def test_captions_keep_tokens_shuffle_and_dropout():
    rules = CaptionRules(shuffle=True, keep_tokens=1)
    rng = random.Random(1)
    seen = {process_caption("aki, a, b, c, d", rules, rng, 1) for _ in range(30)}
    assert all(s.startswith("aki, ") for s in seen) and len(seen) > 3
    assert sorted(next(iter(seen)).split(", ")) == ["a", "aki", "b", "c", "d"]
    separator = CaptionRules(shuffle=True, keep_tokens_separator="|||")
    assert process_caption("aki, x ||| a", separator, rng, 1) == "aki, x, a"
    assert process_caption("aki, a", CaptionRules(dropout_rate=1.0), rng, 1) == ""
    assert process_caption("aki, a", CaptionRules(dropout_every_n_epochs=2), rng, 2) == ""
    assert process_caption("aki, a", CaptionRules(dropout_every_n_epochs=2), rng, 3) == "aki, a"
    dropped = process_caption("k, a, b, c, d, e, f", CaptionRules(keep_tokens=1, tag_dropout_rate=0.999), rng, 1)
    assert dropped == "k"
    assert process_caption("a", CaptionRules(prefix="p", suffix="s"), rng, 1) == "p a s"


def test_sample_prompt_lines_use_kohya_options():
    defaults = SamplePrompt(prompt="", negative_prompt="bad", width=512, height=512)
    first, second = parse_prompts("# comment\n1girl, solo --n lowres --w 64 --h 128 --l 5.5 --s 4 --d 9 --ss k_euler"
                                  "\n\nplain prompt", defaults)
    assert (first.prompt, first.negative_prompt, first.width, first.height) == ("1girl, solo", "lowres", 64, 128)
    assert (first.cfg_scale, first.steps, first.seed, first.sampler) == (5.5, 4, 9, "Euler")
    assert second.prompt == "plain prompt" and second.negative_prompt == "bad"
    for bad in ("x --w 65", "x --q 3", "x --s lots"):
        with pytest.raises(ConfigError):
            parse_prompts(bad, defaults)


def test_option_lists_and_optimizer_names():
    assert parse_kv_args(["weight_decay=0.01", "betas=0.9,0.999", "decouple=True", "name=abc"], "f") == {
        "weight_decay": 0.01, "betas": (0.9, 0.999), "decouple": True, "name": "abc"}
    with pytest.raises(ConfigError):
        parse_kv_args(["novalue"], "optimizer_args")
    assert check_optimizer("adamw8bit") == "AdamW8bit" and check_optimizer("Lion") == "Lion"
    for bad in ("Adam9000", "os.system"):
        with pytest.raises(ConfigError):
            check_optimizer(bad)
    assert warmup_steps(0.1, 200) == 20 and warmup_steps(5, 200) == 5


def test_config_files_are_flattened_like_kohya():
    assert flatten({"model": {"a": 1}, "train": {"b": 2, "a": 3}, "c": 4}) == {"a": 3, "b": 2, "c": 4}


def test_tfrecord_framing_and_crc32c():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    data = event_bytes(1.5, step=3, scalars={"loss/current": 0.25})
    framed = record(data)
    (length,) = struct.unpack("<Q", framed[:8])
    assert length == len(data) and struct.unpack("<I", framed[8:12])[0] == masked_crc(framed[:8])
    assert framed[12:12 + length] == data and struct.unpack("<I", framed[-4:])[0] == masked_crc(data)
    assert b"loss/current" in data and struct.pack("<f", 0.25) in data
