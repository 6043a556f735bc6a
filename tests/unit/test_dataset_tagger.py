"""The WD14 tagger code path, driven by a tiny self-made ONNX model + ``selected_tags.csv``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdapi.dataset.models import CaptionModels, NoCaptionModel
from sdapi.dataset.tag_format import TagFormat, a1111_deepbooru_format, escaped, select_tags, spaced, tag_key
from sdapi.dataset.tagger import TaggerError, WD14Tagger, prepare_image, read_labels
from sdapi.options import Options
from tests.unit.dataset_helpers import LABELS, RED_SCORES, solid, write_tiny_wd14

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> WD14Tagger:
    return WD14Tagger(write_tiny_wd14(tmp_path_factory.mktemp("tagger") / "tiny"))


def test_input_is_bgr_float_on_a_white_square():
    wide = Image.new("RGB", (40, 20), RED)
    pixels = prepare_image(wide, 40)
    assert pixels.shape == (40, 40, 3) and pixels.dtype == np.float32
    assert pixels[20, 20].tolist() == [0.0, 0.0, 255.0]            # red as BGR
    assert pixels[2, 20].tolist() == [255.0, 255.0, 255.0]         # white padding above and below
    assert pixels[38, 20].tolist() == [255.0, 255.0, 255.0]
    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert prepare_image(transparent, 8).min() == 255.0            # alpha becomes white, not black
    assert prepare_image(Image.new("RGB", (600, 600), BLUE), 448).shape == (448, 448, 3)
    assert prepare_image(Image.new("RGB", (600, 600), BLUE), 448)[100, 100].tolist() == [255.0, 0.0, 0.0]


def test_scores_come_from_the_model_in_csv_order(tagger):
    result = tagger.predict(solid(RED))
    assert [label.name for label in result.labels] == [name for name, _ in LABELS]
    assert result.scores.tolist() == pytest.approx(RED_SCORES, abs=0.01)
    assert tagger.size == 448 and tagger.input_name == "input_1:0"


def test_thresholds_split_general_and_character(tagger):
    red = tagger.predict(solid(RED))
    # general >= 0.35: solo .95, long_hair .90, blue_eyes .40, ^_^ .36 (1girl .30 is out); character .86 >= .85.
    assert select_tags(red, TagFormat()) == ["solo", "long hair", "ganyu (genshin impact)", "blue eyes", "^_^"]
    assert "ganyu (genshin impact)" not in select_tags(red, TagFormat(character_threshold=0.9))
    assert select_tags(red, TagFormat(general_threshold=0.5, character_threshold=0.9)) == ["solo", "long hair"]
    blue = tagger.predict(solid(BLUE))
    assert select_tags(blue, TagFormat()) == ["blue eyes", "1girl", "solo"]  # character .50 is below .85


def test_rating_is_optional_and_first(tagger):
    red = tagger.predict(solid(RED))
    assert not {"general", "sensitive"} & set(select_tags(red, TagFormat()))
    assert select_tags(red, TagFormat(rating=True))[0] == "sensitive"
    assert select_tags(tagger.predict(solid(BLUE)), TagFormat(rating=True))[0] == "general"
    assert "sensitive" not in select_tags(red, TagFormat(rating=True, undesired=frozenset({"Sensitive"})))


def test_underscores_escaping_order_and_ranks(tagger):
    red = tagger.predict(solid(RED))
    raw = select_tags(red, TagFormat(replace_underscores=False, order="model"))
    assert raw == ["long_hair", "blue_eyes", "^_^", "ganyu_(genshin_impact)", "solo"]
    assert select_tags(red, TagFormat(escape_brackets=True, order="alpha")) == [
        "^_^", "blue eyes", "ganyu \\(genshin impact\\)", "long hair", "solo"]
    assert select_tags(red, TagFormat(character_first=True))[0] == "ganyu (genshin impact)"
    assert select_tags(red, TagFormat(undesired=frozenset({"long hair", "BLUE_EYES"}))) == [
        "solo", "ganyu (genshin impact)", "^_^"]
    assert select_tags(red, TagFormat(ranks=True))[:2] == ["(solo:0.951)", "(long hair:0.902)"]


def test_tag_text_rules():
    assert spaced("long_hair") == "long hair"
    assert spaced("^_^") == "^_^" and spaced("blue_eyes") == "blue eyes"
    assert spaced("(o)_(o)") == "(o)_(o)" and spaced("x_x") == "x_x" and spaced("o_o") == "o_o"
    assert escaped("a (b)") == "a \\(b\\)" and escaped("back\\slash") == "back\\\\slash"
    assert tag_key(" Long_Hair ") == tag_key("long hair") == "long hair"
    assert tag_key("ganyu \\(genshin impact\\)") == "ganyu (genshin impact)"


def test_a1111_options_give_deepbooru_style_output(tagger):
    options = Options(None)
    fmt = a1111_deepbooru_format(options)
    red = tagger.predict(solid(RED))
    # threshold 0.5, alphabetical, underscores kept, brackets escaped (A1111 v1.2.1 defaults).
    assert select_tags(red, fmt) == ["ganyu_\\(genshin_impact\\)", "long_hair", "solo"]
    options.set("deepbooru_use_spaces", True)
    options.set("deepbooru_sort_alpha", False)
    options.set("deepbooru_filter_tags", "solo, nothing")
    options.set("interrogate_return_ranks", True)
    assert select_tags(red, a1111_deepbooru_format(options)) == ["(long hair:0.902)", "(ganyu \\(genshin impact\\):0.862)"]


def test_broken_tagger_folders_are_reported(tmp_path, tagger):
    with pytest.raises(TaggerError, match="needs model.onnx"):
        WD14Tagger(tmp_path)
    (tmp_path / "selected_tags.csv").write_text("id,tag\n1,x\n")
    with pytest.raises(TaggerError, match="header"):
        read_labels(tmp_path / "selected_tags.csv")
    short = tmp_path / "short"
    write_tiny_wd14(short)
    lines = (short / "selected_tags.csv").read_text().splitlines()
    (short / "selected_tags.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(TaggerError, match="gives 11 scores but selected_tags.csv lists 10"):
        WD14Tagger(short).predict(solid(RED))


def test_caption_models_find_load_once_and_say_what_is_missing(tmp_path):
    models = CaptionModels(tmp_path / "tagger", tmp_path / "BLIP", engine=lambda: None)
    with pytest.raises(NoCaptionModel, match="No WD14 tagger is installed") as caught:
        models.tagger()
    # The folder is named by its last two parts: an answer never shows the server's full paths.
    assert caught.value.status_code == 422 and f"in {tmp_path.name}/tagger" in caught.value.detail
    assert str(tmp_path) not in caught.value.detail
    with pytest.raises(NoCaptionModel, match="No BLIP captioning model"):
        models.captioner_folder()
    write_tiny_wd14(tmp_path / "tagger" / "b-second")
    write_tiny_wd14(tmp_path / "tagger" / "a-first")
    (tmp_path / "tagger" / "empty").mkdir()
    assert list(models.taggers()) == ["a-first", "b-second"]
    first = models.tagger()
    assert first.folder.name == "a-first" and models.tagger("a-first") is first
    assert models.tagger("b-second").folder.name == "b-second"
    with pytest.raises(NoCaptionModel, match="'nope' not found.*a-first, b-second"):
        models.tagger("nope")
    single = CaptionModels(tmp_path / "tagger" / "a-first", tmp_path / "BLIP", engine=lambda: None)
    assert list(single.taggers()) == ["a-first"]  # the folder itself may be the tagger
