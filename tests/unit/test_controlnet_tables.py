"""ControlNet's tables and pure parts, row by row: the preprocessor table, the resize modes, the unit reader and
the three ControlNet file layouts."""

from __future__ import annotations

import numpy as np
import pytest

from sdapi.controlnet.detect_map import RESIZE_MODES, fit_map, pixel_perfect_resolution, resize_mode_name
from sdapi.controlnet.preprocessors import PREPROCESSORS, AnnotatorMissing, detect, find_preprocessor
from sdapi.controlnet.units import read_units
from sdapi.errors import InvalidRequest


def picture() -> np.ndarray:
    image = np.full((48, 80, 3), 255, np.uint8)
    image[10:40, 20:60] = 0
    return image


@pytest.mark.parametrize("row", PREPROCESSORS, ids=lambda p: p.name)
def test_every_preprocessor_row(row):
    assert find_preprocessor(row.name) is row and find_preprocessor(row.shown) is row
    res, a, b = row.resolution.value, row.slider_1.value, row.slider_2.value
    if row.run is None:
        with pytest.raises(AnnotatorMissing, match=row.network.files[0].file.replace(".", r"\.")):
            detect(row, picture(), res, a, b)
        return
    out = detect(row, picture(), 64 if row.resolution.visible else res, a, b)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_fit_map_gives_the_target_size(mode):
    assert fit_map(picture(), mode, 64, 32).shape == (64, 32, 3)


def test_resize_mode_names_numbers_and_aliases():
    assert [resize_mode_name(v) for v in (0, 1, 2, 3)] == [*RESIZE_MODES, "Just Resize"]
    assert resize_mode_name("Inner Fit (Scale to Fit)") == "Crop and Resize"
    assert resize_mode_name("nope") is None


def test_pixel_perfect_resolution():
    assert pixel_perfect_resolution(picture(), 96, 160, "Crop and Resize") == 96
    assert pixel_perfect_resolution(picture(), 96, 96, "Resize and Fill") == 58


def test_read_units_defaults_and_checks():
    units = read_units({"ControlNet": {"args": [{"enabled": True, "module": "canny", "threshold_a": 500},
                                                {"module": "canny"}]}})
    assert len(units) == 1  # enabled defaults to false
    assert (units[0].threshold_a, units[0].processor_res, units[0].resize_mode) == (100, 512, "Crop and Resize")
    with pytest.raises(InvalidRequest, match="Conflict"):
        read_units({"controlnet": {"args": [{"enabled": True, "image": "a", "input_image": "b"}]}})
    with pytest.raises(InvalidRequest, match="control_mode"):
        read_units({"controlnet": {"args": [{"enabled": True, "control_mode": "Loud"}]}})


@pytest.mark.parametrize("layout", ["v1.0", "v1.1", "diffusers"])
def test_controlnet_file_layouts_load_identically(tmp_path, layout):
    import torch

    from sdapi.engine.controlnet_file import LDM_PREFIX, controlnet_to_ldm, demo_controlnet, read_controlnet
    from sdapi.engine.demo_models import build_tiny_sd15_pipeline
    from sdapi.engine.ldm_layout import write_safetensors

    config = build_tiny_sd15_pipeline(0).unet.config
    model = demo_controlnet(config)
    tensors = {"v1.0": controlnet_to_ldm(model),
               "v1.1": {k[len(LDM_PREFIX):]: v for k, v in controlnet_to_ldm(model).items()},
               "diffusers": model.state_dict()}[layout]
    path = write_safetensors(tensors, tmp_path / "cn.safetensors")
    loaded = read_controlnet(path, config, torch.device("cpu"), torch.float32).state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in model.state_dict().items())


def test_color_grid_averages_64_pixel_cells():
    image = np.zeros((128, 256, 3), np.uint8)
    image[:, 128:] = (200, 100, 50)
    grid = detect(find_preprocessor("t2ia_color_grid"), image, 128, 0, 0)
    assert grid.shape == (128, 256, 3)
    assert (grid[:, :64] == 0).all() and (grid[:, 192:] == (200, 100, 50)).all()


def test_recolor_keeps_lightness_with_gamma():
    image = np.full((8, 8, 3), 128, np.uint8)
    plain = detect(find_preprocessor("recolor_luminance"), image, 512, 1.0, 0)
    darker = detect(find_preprocessor("recolor_luminance"), image, 512, 2.0, 0)
    assert (plain[..., 0] == plain[..., 1]).all() and int(darker[0, 0, 0]) < int(plain[0, 0, 0])
    intensity = detect(find_preprocessor("recolor_intensity"), image, 512, 1.0, 0)
    assert (intensity == 128).all()  # HSV value of a grey is the grey
