"""The pure parts behind img2img, hires fix and upscaling: resize modes, masks, hires sizes, upscaler passes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from sdapi.hires_plan import old_first_pass_size, plan_hires
from sdapi.masking import crop_region, expand_crop_region, prepare_mask
from sdapi.resize import resize_image
from sdapi.engine.upscalers import UPSCALERS, enlarger, find_latent_mode, find_upscaler, upscale_by


def _image(width: int, height: int) -> Image.Image:
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    return Image.fromarray(np.stack([x % 256, y % 256, (x * y) % 256], axis=2).astype(np.uint8))


@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("source", [(100, 50), (50, 100), (64, 64)])
def test_resize_modes_give_the_box_size(mode, source):
    assert resize_image(mode, _image(*source), 80, 60).size == (80, 60)


def test_crop_and_resize_crops_and_resize_and_fill_stretches_the_edges():
    wide = _image(100, 50)
    cropped = np.asarray(resize_image(1, wide, 50, 50))  # scale to 100x50, crop the middle 50 columns
    assert np.array_equal(cropped, np.asarray(wide)[:, 25:75])
    filled = np.asarray(resize_image(2, wide, 100, 100))  # 100x50 in the middle, bands above and below
    assert np.array_equal(filled[25:75], np.asarray(wide))
    assert np.abs(filled[0].astype(int) - np.asarray(wide)[0].astype(int)).max() <= 2


def test_crop_region_and_its_expansion_to_the_processing_ratio():
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:20, 30:34] = 255
    assert crop_region(mask) == (30, 10, 34, 20)
    assert crop_region(mask, pad=4) == (26, 6, 38, 24)
    assert expand_crop_region((30, 10, 34, 20), 64, 64, 64, 64) == (27, 10, 37, 20)
    assert expand_crop_region((0, 0, 64, 8), 64, 64, 64, 64) == (0, 0, 64, 64)


def test_only_masked_crop_and_whole_picture_masks():
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 16, 48, 32))
    only = prepare_mask(mask, 64, 64, 0, blur=0, invert=False, full_res=True, padding=8)
    assert only.crop == (24, 8, 56, 40) and only.paste_to == (24, 8, 32, 32) and only.mask.size == (64, 64)
    whole = prepare_mask(mask, 64, 64, 0, blur=0, invert=True, full_res=False, padding=0)
    assert whole.crop is None and np.asarray(whole.mask)[0, 0] == 255 and np.asarray(whole.mask)[20, 40] == 0


def test_a_blank_mask_in_only_masked_mode_works_on_the_whole_picture():
    blank = prepare_mask(Image.new("L", (64, 64), 0), 64, 64, 0, blur=0, invert=False, full_res=True, padding=8)
    assert blank.crop is None and not np.asarray(blank.mask).any()


def _req(**fields):
    base = dict(enable_hr=True, width=64, height=64, hr_scale=2.0, hr_resize_x=0, hr_resize_y=0,
                firstphase_width=0, firstphase_height=0, hr_second_pass_steps=0, hr_upscaler=None,
                denoising_strength=0.7)
    return SimpleNamespace(**{**base, **fields})


def test_hires_plan_sizes():
    plan = plan_hires(_req(hr_scale=1.5))
    assert (plan.target_width, plan.target_height, plan.extra) == (96, 96, {"Hires upscale": 1.5})
    plan = plan_hires(_req(width=64, height=128, hr_resize_x=128, hr_resize_y=128))
    assert (plan.target_width, plan.target_height, plan.truncate_x, plan.truncate_y) == (128, 256, 0, 16)
    plan = plan_hires(_req(width=128, height=64, hr_resize_y=128, hr_upscaler="Lanczos", hr_second_pass_steps=5))
    assert (plan.target_width, plan.target_height) == (256, 128)
    assert plan.extra == {"Hires resize": "0x128", "Hires steps": 5, "Hires upscaler": "Lanczos"}
    assert not plan_hires(_req(hr_scale=1)).enabled
    assert plan_hires(_req(enable_hr=False, firstphase_width=32, firstphase_height=32)).width == 32


def test_old_hires_sizes():
    assert old_first_pass_size(1024, 1024) == (512, 512)
    assert old_first_pass_size(1024, 512) == (768, 384)
    plan = plan_hires(_req(width=1024, height=1024), use_old_sizes=True)
    assert (plan.width, plan.target_width, plan.extra["Hires resize"]) == (512, 1024, "1024x1024")


def test_latent_modes_and_pixel_upscale_passes():
    assert find_latent_mode(None).name == "Latent" and find_latent_mode("Latent (bicubic antialiased)").antialias
    assert find_latent_mode("Lanczos") is None
    lanczos = find_upscaler("Lanczos", UPSCALERS)
    assert upscale_by(lanczos, _image(10, 10), 2.5).size == (25, 25)
    assert upscale_by(find_upscaler("None"), _image(10, 10), 2).size == (20, 20)  # A1111: plain Lanczos at the end
    assert enlarger(find_upscaler("None")) is None
    calls = []

    def x2_model(spec, image):
        calls.append(image.size)
        return image.resize((image.width * 2, image.height * 2))

    model_row = type(lanczos)("x2", None, 2.0, model_path="/x2.pth")
    assert upscale_by(model_row, _image(10, 10), 3, x2_model).size == (30, 30)
    assert calls == [(10, 10), (20, 20)]  # passes until the target is reached, then Lanczos down to it


def test_esrgan_layouts_build_the_same_network():
    from sdapi.engine.sr_arch import build_network
    from tests.api.test_model_files import esrgan_state_dict

    original = esrgan_state_dict()
    rename = {"model.0": "conv_first", "model.1.sub.1": "conv_body", "model.3": "conv_up1", "model.6": "conv_up2",
              "model.8": "conv_hr", "model.10": "conv_last"}
    basicsr = {}
    for key, value in original.items():
        stem, kind = key.rsplit(".", 1)
        if stem in rename:
            basicsr[f"{rename[stem]}.{kind}"] = value
        else:  # model.1.sub.0.RDB2.conv3.0 -> body.0.rdb2.conv3
            parts = stem.split(".")
            basicsr[f"body.{parts[3]}.{parts[4].lower()}.{parts[5]}.{kind}"] = value
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        a, b = build_network(original)(x), build_network(basicsr)(x)
    assert a.shape == (1, 3, 48, 48) and torch.equal(a, b)
