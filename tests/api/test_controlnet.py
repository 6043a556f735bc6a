"""ControlNet through ``alwayson_scripts`` and the extension's ``/controlnet/*`` endpoints, end to end over HTTP
on the demo checkpoint and the tiny demo ControlNet (original lllyasviel layout)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sdapi.files import legacy_hash
from tests.conftest import decode_png, txt2img


@pytest.fixture(scope="module")
def control_model(data_dir, client) -> str:
    """The demo ControlNet in the session's ``models/ControlNet``, by its listed name."""
    from sdapi.engine.demo_files import write_demo_controlnet_file

    path = write_demo_controlnet_file(data_dir)
    return f"demo-control [{legacy_hash(path)}]"


def b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def drawing() -> str:
    """A black shape on white: canny finds its edges."""
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).rectangle([16, 12, 44, 52], fill="black")
    return b64(image)


def unit(model: str, image: str, **fields) -> dict:
    return {"enabled": True, "module": "canny", "model": model, "image": image, **fields}


def generate(client, units: list[dict] | None = None, **payload) -> dict:
    extra = {"alwayson_scripts": {"controlnet": {"args": units}}} if units is not None else {}
    return txt2img(client, seed=7, **extra, **payload)


def pixels(body: dict, index: int = 0) -> np.ndarray:
    return np.asarray(decode_png(body["images"][index]))


# -- listings ---------------------------------------------------------------------------------------------------


def test_version_settings_and_model_list(client, control_model):
    assert client.get("/controlnet/version").json() == {"version": 3}
    assert client.get("/controlnet/settings").json() == {"control_net_unit_count": 3}
    assert control_model in client.get("/controlnet/model_list").json()["model_list"]
    assert control_model in client.get("/controlnet/model_list", params={"update": False}).json()["model_list"]


def test_module_list_names_aliases_and_details(client):
    body = client.get("/controlnet/module_list").json()
    assert body["module_list"][0] == "none"
    assert {"canny", "depth", "tile_resample", "lineart_standard"} <= set(body["module_list"])
    assert body["module_detail"]["canny"] == {"model_free": False, "sliders": [
        {"name": "Resolution", "value": 512, "min": 64, "max": 2048, "step": 8},
        {"name": "Low Threshold", "value": 100, "min": 1, "max": 255, "step": 1},
        {"name": "High Threshold", "value": 200, "min": 1, "max": 255, "step": 1}]}
    aliases = client.get("/controlnet/module_list", params={"alias_names": True}).json()
    assert "depth_midas" in aliases["module_list"] and "depth" not in aliases["module_list"]
    assert aliases["module_detail"]["invert (from white bg & black line)"]["sliders"] == []


# -- detect -----------------------------------------------------------------------------------------------------


def test_detect_canny_returns_edge_map(client, drawing):
    r = client.post("/controlnet/detect", json={"controlnet_module": "canny", "controlnet_input_images": [drawing],
                                                "controlnet_processor_res": 64})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["info"] == "Success"
    edges = np.asarray(decode_png(body["images"][0]))
    assert edges.shape == (64, 64, 3) and set(np.unique(edges)) == {0, 255}


@pytest.mark.parametrize("body, detail", [
    ({"controlnet_module": "nope", "controlnet_input_images": ["x"]}, "Module not available"),
    ({"controlnet_module": "canny", "controlnet_input_images": []}, "No image selected"),
])
def test_detect_errors_as_the_extension(client, body, detail):
    r = client.post("/controlnet/detect", json=body)
    assert r.status_code == 422 and r.json()["detail"] == detail


def test_model_based_preprocessor_names_its_annotator(client, drawing):
    r = client.post("/controlnet/detect", json={"controlnet_module": "depth_midas",
                                                "controlnet_input_images": [drawing]})
    assert r.status_code == 422
    assert "dpt_hybrid-midas-501f0c75.pt in midas/" in r.json()["detail"]
    assert "extensions/sd-webui-controlnet/annotator/downloads" in r.json()["detail"]


# -- generation -------------------------------------------------------------------------------------------------


def test_canny_unit_changes_image_appends_map_and_writes_infotext(client, control_model, drawing):
    plain = generate(client)
    body = generate(client, [unit(control_model, drawing)])
    assert len(body["images"]) == 2  # the image, then the detected map
    assert not np.array_equal(pixels(plain), pixels(body))
    detected = pixels(body, 1)
    assert detected.shape == (64, 64, 3) and set(np.unique(detected)) <= {0, 255}
    info = json.loads(body["info"])
    expected = (f"Module: canny, Model: {control_model}, Weight: 1.0, Resize Mode: Crop and Resize, "
                "Processor Res: 512, Threshold A: 100, Threshold B: 200, Guidance Start: 0.0, Guidance End: 1.0, "
                "Pixel Perfect: False, Control Mode: Balanced")
    assert f'ControlNet 0: "{expected}"' in info["infotexts"][0]
    parsed = client.post("/sdapi/v1/png-info", json={"image": body["images"][0]}).json()
    assert f'ControlNet 0: "{expected}"' in parsed["info"]


@pytest.mark.parametrize("module", ["none", "tile_resample", "invert", "threshold", "scribble_xdog",
                                    "lineart_standard", "blur_gaussian", "t2ia_color_grid",
                                    "recolor_luminance", "recolor_intensity"])
def test_pure_preprocessors_change_the_image(client, control_model, drawing, module):
    plain = generate(client)
    body = generate(client, [unit(control_model, drawing, module=module)])
    assert not np.array_equal(pixels(plain), pixels(body))


def test_weight_zero_and_disabled_are_bit_identical(client, control_model, drawing):
    plain = pixels(generate(client))
    assert np.array_equal(plain, pixels(generate(client, [unit(control_model, drawing, weight=0)])))
    disabled = generate(client, [unit(control_model, drawing, enabled=False)])
    assert len(disabled["images"]) == 1 and np.array_equal(plain, pixels(disabled))


def test_no_detectmap_option_and_save_detected_map(client, control_model, drawing):
    body = generate(client, [unit(control_model, drawing, save_detected_map=False)])
    assert len(body["images"]) == 1
    body = generate(client, [unit(control_model, drawing)], override_settings={"control_net_no_detectmap": True})
    assert len(body["images"]) == 1


def test_two_units_compose(client, control_model, drawing):
    one = pixels(generate(client, [unit(control_model, drawing)]))
    other = pixels(generate(client, [unit(control_model, drawing, module="invert")]))
    both = generate(client, [unit(control_model, drawing), unit(control_model, drawing, module="invert")])
    assert len(both["images"]) == 3
    assert not np.array_equal(pixels(both), one) and not np.array_equal(pixels(both), other)
    assert "ControlNet 1: " in json.loads(both["info"])["infotexts"][0]


@pytest.mark.parametrize("mode", ["My prompt is more important", "ControlNet is more important", 1, 2])
def test_control_modes_differ_from_balanced(client, control_model, drawing, mode):
    balanced = pixels(generate(client, [unit(control_model, drawing)]))
    assert not np.array_equal(balanced, pixels(generate(client, [unit(control_model, drawing, control_mode=mode)])))


def test_guidance_window_counts_controlnet_calls_per_step(client, control_model, drawing, monkeypatch):
    from sdapi.engine.sampling import control

    runs = []
    original = control.ControlRun.residuals

    def recording(self, *args, **kwargs):
        if not runs or runs[-1] is not self:
            runs.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(control.ControlRun, "residuals", recording)
    generate(client, [unit(control_model, drawing, guidance_start=0.5, guidance_end=1.0)], steps=4,
             sampler_name="Euler")
    # Euler: one UNet call per step; A1111's sampling_step lags the call by one after the first (0, 0, 1, 2).
    assert [active for _, active in runs[0].calls] == [0, 0, 0, 1]
    assert [step for step, _ in runs[0].calls] == [0, 0, 1, 2]


def test_hires_fix_uses_hires_map(client, control_model, drawing):
    plain = generate(client, enable_hr=True, hr_scale=1.5, denoising_strength=0.5, hr_upscaler="Latent")
    body = generate(client, [unit(control_model, drawing)], enable_hr=True, hr_scale=1.5, denoising_strength=0.5,
                    hr_upscaler="Latent")
    assert len(body["images"]) == 3  # the image, the hires map, the first-pass map
    assert decode_png(body["images"][0]).size == (96, 96)
    assert decode_png(body["images"][1]).size == (96, 96) and decode_png(body["images"][2]).size == (64, 64)
    assert not np.array_equal(pixels(plain), pixels(body))


def test_img2img_uses_init_image_without_unit_image(client, control_model, drawing):
    payload = {"init_images": [drawing], "prompt": "x", "steps": 2, "width": 64, "height": 64, "seed": 3,
               "denoising_strength": 0.6}
    plain = client.post("/sdapi/v1/img2img", json=payload).json()
    r = client.post("/sdapi/v1/img2img", json={**payload, "alwayson_scripts": {"ControlNet": {"args": [
        {"enabled": True, "module": "canny", "model": "demo-control"}]}}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["images"]) == 2
    assert not np.array_equal(pixels(plain), pixels(body))


@pytest.mark.parametrize("fields, message", [
    ({"module": "nope"}, "module(nope) not found in supported modules."),
    ({"model": "None"}, "You have not selected any ControlNet Model."),
    ({"model": "missing-model"}, "model not found: missing-model"),
    ({"image": None}, "controlnet is enabled but no input image is given"),
    ({"weight": 3}, "weight"),
    ({"guidance_start": 0.8, "guidance_end": 0.2}, "guidance_start(0.8) > guidance_end(0.2)"),
    ({"module": "openpose"}, "body_pose_model.pth"),
])
def test_unit_errors_are_a1111_shaped(client, control_model, drawing, fields, message):
    payload = {"prompt": "x", "steps": 2, "width": 64, "height": 64,
               "alwayson_scripts": {"controlnet": {"args": [{**unit(control_model, drawing), **fields}]}}}
    r = client.post("/sdapi/v1/txt2img", json=payload)
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "detail", "body", "errors"}
    assert message in body["errors"] or message in body["detail"]


def test_other_alwayson_scripts_still_refused(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "alwayson_scripts": {"adetailer": {"args": []}}})
    assert r.status_code == 422


def test_controlnet_jobs_are_not_merged(control_model, drawing):
    from sdapi.engine.api import GenerationJob
    from sdapi.engine.batching import batch_key
    from sdapi.engine.params import ControlNetParams, Txt2ImgParams
    from sdapi.engine.sampling.registry import find_sampler

    p = Txt2ImgParams(["a"], [""], [1], [1], 0.0, find_sampler("Euler"), 2, 7.0, 64, 64)
    assert batch_key(GenerationJob("x", p)) is not None
    p.controlnets = [ControlNetParams(model="x", hint=Image.new("RGB", (64, 64)))]
    assert batch_key(GenerationJob("x", p)) is None


def test_checkpoint_switch_keeps_loaded_controlnet(client, state, control_model, drawing):
    generate(client, [unit(control_model, drawing)])
    loads = state.engine.controlnets.loads
    other = next(c.title for c in state.catalog.items() if c.title != state.selected_checkpoint().title)
    generate(client, [unit(control_model, drawing)], override_settings={"sd_model_checkpoint": other})
    assert state.engine.controlnets.loads == loads
