"""``/controlnet/control_types``'s filter, tag by tag, as the extension's ``select_control_type`` picks."""

from __future__ import annotations

from sdapi.controlnet.control_types import all_tags, control_types, model_filters, select_control_type

MODELS = ["demo-control [0a1b2c3d]", "control_v11p_sd15_canny [d14c016b]", "control_sd15_canny [fef5e48e]",
          "control_sd15_depth [fef5e48e]", "control_v11p_sd15_normalbae [316696f1]",
          "controlnet-union-sdxl [aaaa1111]", "t2iadapter_sketch [12345678]"]


def test_tags_are_all_then_sorted():
    tags = all_tags()
    assert tags[0] == "All" and tags[1:] == sorted(tags[1:]) and {"Canny", "Depth", "OpenPose"} <= set(tags)


def test_all_lists_everything_with_none_defaults():
    entry = select_control_type("All", MODELS)
    assert entry["model_list"] == ["None", *MODELS]
    assert entry["module_list"][0] == "none" and "depth_midas" in entry["module_list"]
    assert (entry["default_option"], entry["default_model"]) == ("none", "None")


def test_canny_prefers_a_v11_model_and_takes_union_models():
    entry = select_control_type("Canny", MODELS)
    assert entry["model_list"] == ["None", "control_v11p_sd15_canny [d14c016b]", "control_sd15_canny [fef5e48e]",
                                   "controlnet-union-sdxl [aaaa1111]"]
    assert entry["default_model"] == "control_v11p_sd15_canny [d14c016b]"
    assert entry["module_list"][:2] == ["none", "canny"] and entry["default_option"] == "canny"


def test_aliases_match_model_names():
    assert model_filters("NormalMap") == {"normalmap", "normal", "union"}
    assert "control_v11p_sd15_normalbae [316696f1]" in select_control_type("NormalMap", MODELS)["model_list"]
    assert "t2iadapter_sketch [12345678]" in select_control_type("Scribble", MODELS)["model_list"]


def test_without_a_match_the_default_model_is_none():
    entry = select_control_type("Segmentation", ["demo-control [0a1b2c3d]"])
    assert entry["model_list"] == ["None"] and entry["default_model"] == "None"


def test_body_has_every_tag():
    assert list(control_types(MODELS)["control_types"]) == all_tags()
