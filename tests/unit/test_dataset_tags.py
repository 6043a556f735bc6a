"""Tag pruning: the edit operations, kohya's tag frequencies, and atomic, dry-runnable edits of a folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sdapi.dataset.edit import plan_changes, write_changes
from sdapi.dataset.folder import image_folders, read_caption, scan_dataset, tag_frequency
from sdapi.dataset.tag_format import tag_key
from sdapi.dataset.tagging import merged_caption, tag_dataset
from sdapi.dataset.tags import (AddTags, DedupeTags, RemoveTags, ReplaceTag, SortTags, apply_operations, join_tags,
                                split_tags)
from tests.unit.dataset_helpers import solid


def _dataset(root: Path, captions: dict[str, str | None], folder: str = "10_aki") -> Path:
    """Images ``<name>.png`` in ``root/folder``, each with ``<name>.txt`` holding its caption (None: no file)."""
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    for name, caption in captions.items():
        solid((1, 2, 3), (8, 8)).save(target / f"{name}.png")
        if caption is not None:
            (target / f"{name}.txt").write_text(caption, encoding="utf-8")
    return target


def test_split_and_join():
    assert split_tags(" a, b ,,c , ") == ["a", "b", "c"]
    assert join_tags(["a", "b"]) == "a, b"


def test_operations_one_by_one():
    tags = ["1girl", "Long_Hair", "blue eyes", "smile", "long hair"]
    no_counts = Counter()
    assert AddTags(("akichan",)).apply(tags, no_counts)[0] == "akichan"
    assert AddTags(("smile",), "last").apply(tags, no_counts) == ["1girl", "Long_Hair", "blue eyes", "long hair", "smile"]
    assert AddTags(("1girl",)).apply(tags, no_counts) == tags  # already first: moved nowhere, not repeated
    assert RemoveTags(("long hair", "BLUE_EYES")).apply(tags, no_counts) == ["1girl", "smile"]
    assert ReplaceTag("smile", "grin, open mouth").apply(tags, no_counts) == [
        "1girl", "Long_Hair", "blue eyes", "grin", "open mouth", "long hair"]
    assert DedupeTags().apply(tags, no_counts) == ["1girl", "Long_Hair", "blue eyes", "smile"]
    counts = Counter({"smile": 9, "blue eyes": 5, "1girl": 2})
    assert SortTags().apply(["1girl", "blue eyes", "smile"], counts) == ["smile", "blue eyes", "1girl"]
    assert SortTags(keep_first=1).apply(["1girl", "blue eyes", "smile"], counts) == ["1girl", "smile", "blue eyes"]
    assert SortTags("alpha").apply(["b", "A", "c"], counts) == ["A", "b", "c"]


def test_the_pruning_recipe_in_order():
    ops = [RemoveTags(("long hair", "blue eyes")), DedupeTags(), AddTags(("akichan",))]
    assert apply_operations(["1girl", "long hair", "smile", "blue eyes", "smile"], ops, Counter()) == [
        "akichan", "1girl", "smile"]


def test_tag_frequency_counts_as_kohya(tmp_path):
    root = tmp_path / "train"
    _dataset(root, {"a": "1girl, Solo, smile", "b": "1girl, solo, solo\nsecond line, ignored", "c": None})
    _dataset(root, {"d": "1girl, hat"}, folder="5_aki outfit")
    (root / "not_a_repeat_folder").mkdir()
    _dataset(root / "not_a_repeat_folder", {"x": "ignored"}, folder=".")
    dirs = scan_dataset(root)
    assert [d.name for d in dirs] == ["10_aki", "5_aki outfit"]
    assert tag_frequency(dirs) == {
        "10_aki": {"1girl": 2, "solo": 3, "smile": 1, "aki": 1},  # c has no caption: the class tokens
        "5_aki outfit": {"1girl": 1, "hat": 1},
    }
    plain = _dataset(tmp_path, {"p": "a, b"}, folder="plain")
    assert image_folders(plain) == [(plain, None)]
    assert tag_frequency(scan_dataset(plain)) == {"plain": {"a": 1, "b": 1}}


def test_only_kohyas_image_extensions_count(tmp_path):
    folder = tmp_path / "1_x"
    folder.mkdir()
    for name in ("a.png", "b.JPG", "c.Png", "d.gif", "e.webp"):
        (folder / name).write_bytes(b"")
    assert [e.image.name for e in scan_dataset(tmp_path)[0].images] == ["a.png", "b.JPG", "e.webp"]


def test_dry_run_plans_and_write_applies_atomically(tmp_path):
    folder = _dataset(tmp_path, {"a": "1girl, long hair, smile\nkept line\n", "b": "1girl, hat", "c": None})
    dirs = scan_dataset(tmp_path)
    changes = plan_changes(dirs, [RemoveTags(("long_hair",)), AddTags(("akichan",))])
    assert [(c.file.name, c.before, c.after, c.added, c.removed) for c in changes] == [
        ("a.txt", "1girl, long hair, smile", "akichan, 1girl, smile", ("akichan",), ("long hair",)),
        ("b.txt", "1girl, hat", "akichan, 1girl, hat", ("akichan",), ()),
    ]
    assert read_caption(folder / "a.txt") == "1girl, long hair, smile"  # planning wrote nothing
    write_changes(changes)
    assert (folder / "a.txt").read_text(encoding="utf-8") == "akichan, 1girl, smile\nkept line\n"
    assert (folder / "b.txt").read_text(encoding="utf-8") == "akichan, 1girl, hat"
    assert not (folder / "c.txt").exists()  # uncaptioned images keep their class-token caption
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no temp files left
    assert plan_changes(scan_dataset(tmp_path), [AddTags(("akichan",))]) == []  # nothing left to do


def test_an_edit_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path):
    folder = _dataset(tmp_path, {"a": None})
    victim = tmp_path / "victim.txt"
    victim.write_text("1girl")
    (folder / "a.txt").symlink_to(victim)
    changes = plan_changes(scan_dataset(tmp_path), [AddTags(("akichan",))])
    write_changes(changes)
    assert victim.read_text() == "1girl" and not (folder / "a.txt").is_symlink()


class _Silent:
    def start(self, total): pass
    def describe(self, text): pass
    def advance(self): pass
    def should_stop(self): return False
    def finish(self): pass


@pytest.mark.parametrize("mode, expected_a, expected_b", [
    ("overwrite", "new, tags", "new, tags"),
    ("append", "old, New, tags", "new, tags"),
    ("skip", "old, New", "new, tags"),
])
def test_tagging_a_folder_respects_existing_captions(tmp_path, mode, expected_a, expected_b):
    folder = _dataset(tmp_path, {"a": "old, New", "b": None})
    report = tag_dataset(scan_dataset(tmp_path), lambda image: "new, tags", _Silent(), mode)
    assert read_caption(folder / "a.txt") == expected_a and read_caption(folder / "b.txt") == expected_b
    assert report.tagged == (1 if mode == "skip" else 2) and report.skipped == (1 if mode == "skip" else 0)


def test_merged_caption_and_keys():
    assert merged_caption("a, b", None, "append") == "a, b"
    assert merged_caption("a, long_hair", "long hair", "append") == "long hair, a"
    assert tag_key("A_B") == "a b"
