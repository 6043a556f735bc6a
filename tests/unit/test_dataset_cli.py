"""``sdapi preprocess`` and ``sdapi tag`` on the command line."""

from __future__ import annotations

import pytest

from sdapi.cli import main
from tests.unit.dataset_helpers import solid, write_tiny_wd14


@pytest.fixture()
def folders(tmp_path):
    src = tmp_path / "raw"
    src.mkdir()
    solid((255, 0, 0), (64, 64)).save(src / "a.png")
    solid((0, 0, 255), (64, 64)).save(src / "b.png")
    return src, tmp_path / "out", write_tiny_wd14(tmp_path / "tagger" / "tiny")


def test_sdapi_preprocess_with_tags_and_flip(folders, capsys):
    src, dst, tagger = folders
    main(["preprocess", str(src), str(dst), "--width", "32", "--height", "32", "--flip", "--tags",
          "--tagger", str(tagger.parent), "--rating"])
    assert sorted(p.name for p in dst.iterdir()) == [
        "00000-0-a.png", "00000-0-a.txt", "00000-1-a.png", "00000-1-a.txt",
        "00001-0-b.png", "00001-0-b.txt", "00001-1-b.png", "00001-1-b.txt"]
    assert (dst / "00001-0-b.txt").read_text(encoding="utf-8") == "general, blue eyes, 1girl, solo"
    out = capsys.readouterr()
    assert "2 images → 4 images and 4 captions" in out.out
    assert "100%" in out.err  # the tqdm bar


def test_sdapi_tag_writes_captions_beside_images(folders, capsys):
    src, _, tagger = folders
    (src / "a.txt").write_text("aki", encoding="utf-8")
    main(["tag", str(src), "--tagger", str(tagger), "--existing", "append", "--keep-underscores", "--escape",
          "--undesired", "solo"])
    assert (src / "a.txt").read_text(encoding="utf-8") == "aki, long_hair, ganyu_\\(genshin_impact\\), blue_eyes, ^_^"
    assert (src / "b.txt").read_text(encoding="utf-8") == "blue_eyes, 1girl"
    assert "tagged 2 images" in capsys.readouterr().out


def test_missing_models_and_folders_exit_with_the_reason(folders, tmp_path):
    src, dst, _ = folders
    with pytest.raises(SystemExit, match="No WD14 tagger is installed"):
        main(["tag", str(src), "--tagger", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="No BLIP captioning model"):
        main(["preprocess", str(src), str(dst), "--caption", "--blip", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="same directory"):
        main(["preprocess", str(src), str(src)])


def test_serve_flags_for_dataset_roots_and_model_folders():
    from sdapi.cli import build_parser, settings_from_args

    args, unknown = build_parser().parse_known_args(
        ["serve", "--data-dir", "/d", "--dataset-root", "/sets", "--dataset-root", "/more", "--tagger-dir", "/t"])
    settings = settings_from_args(args, unknown)
    assert [str(p) for p in settings.dataset_roots] == ["/sets", "/more"]
    assert str(settings.taggers_dir) == "/t" and str(settings.blip_models_dir) == "/d/models/BLIP"
    assert "--dataset-root" not in settings.ignored_flags
