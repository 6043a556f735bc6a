"""A1111's preprocess over synthetic folders: output names, caption actions, flips, splits, focal crops, progress."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from sdapi.dataset.faces import face_points
from sdapi.dataset.paths import PathGuard, PathNotAllowed
from sdapi.dataset.preprocess import PreprocessError, PreprocessPlan, combine_caption, list_sources, preprocess
from sdapi.dataset.resize import MulticropBounds
from tests.unit.dataset_helpers import face_picture, solid


class RecordedProgress:
    """Records what the run reports; stops after ``stop_after`` images when given."""

    def __init__(self, stop_after: int | None = None):
        self.total, self.texts, self.done, self.finished = None, [], 0, False
        self.stop_after = stop_after

    def start(self, total):
        self.total = total

    def describe(self, text):
        self.texts.append(text)

    def advance(self):
        self.done += 1

    def should_stop(self):
        return self.stop_after is not None and self.done >= self.stop_after

    def finish(self):
        self.finished = True


@pytest.fixture()
def src(tmp_path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    solid((255, 0, 0), (96, 64)).save(folder / "a.png")
    (folder / "a.txt").write_text("red thing", encoding="utf-8")
    solid((0, 0, 255), (64, 64)).save(folder / "b.jpg")
    (folder / "notes.md").write_text("not an image")
    return folder


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_names_count_every_entry_and_captions_follow_the_txt_action(src, tmp_path):
    dst = tmp_path / "out"
    progress = RecordedProgress()
    report = preprocess(PreprocessPlan(src=src, dst=dst, width=32, height=32, txt_action="copy"),
                        None, progress)
    # Sorted entries: a.png (0), a.txt (1), b.jpg (2), notes.md (3); only images give outputs.
    assert _names(dst) == ["00000-0-a.png", "00000-0-a.txt", "00002-0-b.png"]
    assert (dst / "00000-0-a.txt").read_text(encoding="utf-8") == "red thing"
    assert Image.open(dst / "00002-0-b.png").size == (32, 32)
    assert (report.images, report.outputs, report.captions) == (2, 2, 1)
    assert progress.total == 2 and progress.done == 2 and progress.finished
    assert progress.texts == ["Preprocessing [Image 0/4]", "Preprocessing [Image 2/4]"]


@pytest.mark.parametrize("action, expected", [
    ("ignore", "tag1, tag2"), ("copy", "red thing"), ("prepend", "red thing tag1, tag2"),
    ("append", "tag1, tag2 red thing"),
])
def test_txt_actions_join_with_a_space_as_a1111(src, tmp_path, action, expected):
    dst = tmp_path / action
    preprocess(PreprocessPlan(src=src, dst=dst, width=32, height=32, txt_action=action),
               lambda image: "tag1, tag2", RecordedProgress())
    assert (dst / "00000-0-a.txt").read_text(encoding="utf-8") == expected
    assert (dst / "00002-0-b.txt").read_text(encoding="utf-8") == "tag1, tag2"  # b has no existing caption


def test_combine_caption_writes_nothing_when_empty():
    assert combine_caption("", None, "ignore") == ""
    assert combine_caption("", "  old ", "prepend") == "old"
    assert combine_caption("new", "", "copy") == "new"


def test_flip_doubles_the_set_with_mirrored_copies(src, tmp_path):
    dst = tmp_path / "flip"
    preprocess(PreprocessPlan(src=src, dst=dst, width=32, height=32, flip=True), None, RecordedProgress())
    assert _names(dst) == ["00000-0-a.png", "00000-1-a.png", "00002-0-b.png", "00002-1-b.png"]
    half = Image.new("RGB", (64, 64), "white")
    half.paste((0, 0, 0), (0, 0, 32, 64))
    half.save(src / "c.png")  # sorted after b.jpg: index 3
    preprocess(PreprocessPlan(src=src, dst=dst, width=64, height=64, flip=True), None, RecordedProgress())
    original, mirrored = Image.open(dst / "00003-0-c.png"), Image.open(dst / "00003-1-c.png")
    assert original.getpixel((2, 2)) == (0, 0, 0) and mirrored.getpixel((2, 2)) == (255, 255, 255)


def test_split_cuts_oversized_images_and_keeps_others_whole(tmp_path):
    src = tmp_path / "tall"
    src.mkdir()
    solid((0, 255, 0), (32, 128)).save(src / "tall.png")   # ratio 0.25: split
    solid((0, 255, 0), (60, 64)).save(src / "near.png")    # ratio ~0.94: above the threshold, resized
    dst = tmp_path / "split"
    preprocess(PreprocessPlan(src=src, dst=dst, width=64, height=64, split=True, split_threshold=0.5,
                              overlap_ratio=0.2), None, RecordedProgress())
    assert _names(dst) == ["00000-0-near.png"] + [f"00001-{i}-tall.png" for i in range(5)]
    assert {Image.open(p).size for p in dst.iterdir()} == {(64, 64)}


def test_focal_crop_keeps_the_subject_and_debug_lands_in_the_dataset(tmp_path):
    src = tmp_path / "faces"
    src.mkdir()
    face_picture(192, 64, face_x=160, face_width=44).save(src / "wide.png")
    solid((9, 9, 9), (64, 64)).save(src / "square.png")  # square: focal crop does not apply, plain resize
    dst = tmp_path / "focal"
    seen = []
    preprocess(PreprocessPlan(src=src, dst=dst, width=64, height=64, focal_crop=True, focal_debug=True),
               lambda image: seen.append(image.size) or "face", RecordedProgress(),
               find_faces=face_points)
    assert _names(dst) == ["00000-0-square.png", "00000-0-square.txt", "00001-0-wide.png", "00001-0-wide.txt",
                           "00001-1-wide.png", "00001-1-wide.txt"]
    crop = Image.open(dst / "00001-0-wide.png")
    assert crop.size == (64, 64)
    # The face's skin tone fills the crop's middle (the face was drawn at x=160 of 192).
    r, g, b = crop.getpixel((32, 40))
    assert r > g > b and r > 180
    assert Image.open(dst / "00001-1-wide.png").size == (192, 64)  # the debug image, captioned too
    assert (64, 64) in seen and (192, 64) in seen


def test_multicrop_and_keep_original_size_add_outputs(tmp_path):
    src = tmp_path / "m"
    src.mkdir()
    solid((1, 2, 3), (400, 300)).save(src / "photo.png")
    solid((1, 2, 3), (1000, 100)).save(src / "strip.png")
    dst = tmp_path / "mout"
    report = preprocess(PreprocessPlan(
        src=src, dst=dst, width=64, height=64, keep_original_size=True,
        multicrop=MulticropBounds(min_dim=64, max_dim=256, max_area=256 * 192)), None, RecordedProgress())
    assert Image.open(dst / "00000-0-photo.png").size == (256, 192)
    assert Image.open(dst / "00000-1-photo.png").size == (400, 300)
    assert Image.open(dst / "00001-0-strip.png").size == (1000, 100)  # no crop fits: only the original
    assert len(report.skipped) == 1 and "strip.png" in report.skipped[0]


def test_stop_between_images(src, tmp_path):
    progress = RecordedProgress(stop_after=1)
    report = preprocess(PreprocessPlan(src=src, dst=tmp_path / "stop", width=32, height=32), None, progress)
    assert report.interrupted and report.images == 1 and progress.finished


def test_a1111_errors(src, tmp_path):
    with pytest.raises(PreprocessError, match="same directory specified as source and destination"):
        preprocess(PreprocessPlan(src=src, dst=src), None, RecordedProgress())
    with pytest.raises(PreprocessError, match="No such file or directory"):
        preprocess(PreprocessPlan(src=tmp_path / "missing", dst=tmp_path / "x"), None, RecordedProgress())


def test_symlinked_entries_outside_the_roots_stop_the_run_before_any_work(src, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (src / "z.txt").symlink_to(outside / "secret.txt")
    guard = PathGuard.for_roots(src)
    with pytest.raises(PathNotAllowed):
        list_sources(src, guard)
    with pytest.raises(PathNotAllowed):
        preprocess(PreprocessPlan(src=src, dst=src / "out"), None, RecordedProgress(), guard=guard)
    assert not (src / "out").exists()  # not even the empty output folder
