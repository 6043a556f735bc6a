"""Model-based ControlNet preprocessors over HTTP: ``/controlnet/detect`` and generation units run the annotator
networks from the annotator folder (random narrow files in the original layouts), refuse what is missing with
the file and folder, and refuse a wrong file without a server path."""

from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from sdapi.files import legacy_hash
from tests.conftest import decode_png, txt2img


@pytest.fixture(scope="module")
def control_model(data_dir, client) -> str:
    from sdapi.engine.demo_files import write_demo_controlnet_file

    path = write_demo_controlnet_file(data_dir)
    return f"demo-control [{legacy_hash(path)}]"


@pytest.fixture()
def annotators(client, tmp_path_factory):
    """The session server reading a fresh annotator folder with every runnable network's file."""
    from sdapi.engine.annotators.demo_files import write_random_annotators

    folder = tmp_path_factory.mktemp("annotator-downloads")
    write_random_annotators(folder)
    settings = client.app.state.sdapi.settings
    before = settings.annotator_dir
    settings.annotator_dir = folder
    yield folder
    settings.annotator_dir = before


def b64(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def photo(height: int = 48, width: int = 80) -> str:
    rng = np.random.RandomState(1)
    image = np.full((height, width, 3), 200, np.uint8)
    image[10:38, 20:60] = rng.randint(0, 120, (28, 40, 3))
    return b64(image)


def detect(client, module: str, **fields) -> dict:
    r = client.post("/controlnet/detect", json={"controlnet_module": module, "controlnet_input_images": [photo()],
                                                "controlnet_processor_res": 64, **fields})
    assert r.status_code == 200, r.text
    return r.json()


MODULES = ["depth_midas", "normal_midas", "softedge_hed", "softedge_hedsafe", "scribble_hed", "lineart_realistic",
           "lineart_coarse", "lineart_anime", "depth", "hed", "lineart", "softedge_pidinet", "softedge_pidisafe",
           "scribble_pidinet", "t2ia_sketch_pidi", "normal_bae", "depth_leres", "seg_ufade20k", "mlsd"]


@pytest.mark.parametrize("module", MODULES)
def test_detect_runs_each_model_based_preprocessor(client, annotators, module):
    body = detect(client, module)
    assert set(body) == {"images", "info"} and body["info"] == "Success"
    detected = np.asarray(decode_png(body["images"][0]).convert("RGB"))
    assert detected.shape == (64, 107, 3)  # the short side at processor_res, the padding cut off
    assert detected.std() > 0


@pytest.mark.parametrize("module", ["openpose", "openpose_hand", "openpose_face", "openpose_faceonly",
                                    "openpose_full"])
def test_openpose_detect_returns_maps_and_poses(client, annotators, module):
    body = detect(client, module)
    assert set(body) == {"images", "info", "poses"}
    [pose] = body["poses"]
    assert (pose["canvas_height"], pose["canvas_width"]) == (64, 128)  # the padded image the network saw
    assert isinstance(pose["people"], list)
    detected = np.asarray(decode_png(body["images"][0]).convert("RGB"))
    assert detected.shape == (64, 107, 3)


def test_openpose_variants_name_the_part_file_they_miss(client, annotators):
    (annotators / "openpose/hand_pose_model.pth").unlink()
    assert client.post("/controlnet/detect", json={"controlnet_module": "openpose", "controlnet_input_images":
                                                   [photo()], "controlnet_processor_res": 64}).status_code == 200
    r = client.post("/controlnet/detect", json={"controlnet_module": "openpose_full",
                                                "controlnet_input_images": [photo()]})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "hand_pose_model.pth in openpose/" in detail and "body_pose_model.pth" not in detail


def test_safe_and_scribble_variants_keep_their_levels(client, annotators):
    safe = np.asarray(decode_png(detect(client, "softedge_hedsafe")["images"][0]))
    assert set(np.unique(safe)) <= {0, 127, 255}
    scribble = np.asarray(decode_png(detect(client, "scribble_hed")["images"][0]))
    assert set(np.unique(scribble)) <= {0, 255}


def test_mlsd_draws_white_segments_that_its_thresholds_remove(client, annotators):
    def lit(**fields) -> np.ndarray:
        return np.asarray(decode_png(detect(client, "mlsd", **fields)["images"][0]).convert("L")) == 255

    lines = lit()
    assert lines.any() and set(np.unique(decode_png(detect(client, "mlsd")["images"][0]))) == {0, 255}
    longer = lit(controlnet_threshold_b=10.0)  # only the longer segments: a strict part of the map
    assert (lines >= longer).all() and longer.sum() < lines.sum()
    assert not lit(controlnet_threshold_a=1.9).any()  # no sigmoid score reaches it


def test_line_art_is_inverted_to_white_lines_on_black(client, annotators):
    from sdapi.controlnet.image_ops import resize_with_pad
    from sdapi.engine.annotators.cache import AnnotatorCache

    import torch

    rgb = np.asarray(decode_png(photo()).convert("RGB"))
    padded, remove_pad = resize_with_pad(rgb, 64)
    raw, _ = AnnotatorCache(torch.device("cpu")).run("lineart", {"model": annotators / "lineart/sk_model.pth"},
                                                     padded, {})
    served = np.asarray(decode_png(detect(client, "lineart_realistic")["images"][0]).convert("L"))
    assert np.array_equal(served, 255 - remove_pad(raw))


def test_depth_and_normal_come_from_one_network_load(client, annotators):
    engine = client.app.state.sdapi.engine
    detect(client, "depth_midas")
    loads = engine.annotators.loads
    depth = np.asarray(decode_png(detect(client, "depth_midas")["images"][0]).convert("RGB"))
    normal = np.asarray(decode_png(detect(client, "normal_midas", controlnet_threshold_a=0.4)["images"][0]))
    assert engine.annotators.loads == loads
    assert (depth[..., 0] == depth[..., 1]).all() and not (normal[..., 0] == normal[..., 1]).all()


def test_a_missing_file_names_the_file_and_folder(client, annotators):
    (annotators / "hed/ControlNetHED.pth").unlink()
    r = client.post("/controlnet/detect", json={"controlnet_module": "softedge_hed",
                                                "controlnet_input_images": [photo()]})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "ControlNetHED.pth in hed/" in detail and "--controlnet-annotator-models-path" in detail
    assert str(annotators) not in detail


def test_a_wrong_file_is_a_422_without_server_paths(client, annotators):
    shutil.copy(annotators / "hed/ControlNetHED.pth", annotators / "lineart/sk_model.pth")
    r = client.post("/controlnet/detect", json={"controlnet_module": "lineart_realistic",
                                                "controlnet_input_images": [photo()]})
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "detail", "body", "errors"} and "sk_model.pth" in body["errors"]
    assert str(annotators) not in r.text and "Traceback" not in r.text


def test_networks_sdapi_does_not_run_say_so_even_with_the_file(client, annotators):
    (annotators / "zoedepth").mkdir()
    (annotators / "zoedepth/ZoeD_M12_N.pt").write_bytes(b"x")
    r = client.post("/controlnet/detect", json={"controlnet_module": "depth_zoe",
                                                "controlnet_input_images": [photo()]})
    assert r.status_code == 422 and "not run by sdapi yet" in r.json()["detail"]
    assert "depth_midas" in r.json()["detail"]


def test_a_depth_unit_conditions_generation_and_appends_its_map(client, annotators, control_model):
    plain = txt2img(client, seed=3)
    unit = {"enabled": True, "module": "depth_midas", "model": control_model, "image": photo(64, 64),
            "processor_res": 64}
    body = txt2img(client, seed=3, alwayson_scripts={"controlnet": {"args": [unit]}})
    assert len(body["images"]) == 2
    assert not np.array_equal(np.asarray(decode_png(plain["images"][0])), np.asarray(decode_png(body["images"][0])))
    assert 'Module: depth_midas' in body["info"]
    depth_map = np.asarray(decode_png(body["images"][1]).convert("RGB"))
    assert depth_map.shape == (64, 64, 3) and (depth_map[..., 0] == depth_map[..., 2]).all()


def test_an_openpose_unit_conditions_generation(client, annotators, control_model):
    plain = txt2img(client, seed=3)
    unit = {"enabled": True, "module": "openpose_full", "model": control_model, "image": photo(64, 64),
            "processor_res": 64}
    body = txt2img(client, seed=3, alwayson_scripts={"controlnet": {"args": [unit]}})
    assert len(body["images"]) == 2 and 'Module: openpose_full' in body["info"]
    assert not np.array_equal(np.asarray(decode_png(plain["images"][0])), np.asarray(decode_png(body["images"][0])))


def test_a_unit_whose_file_is_missing_is_refused_before_sampling(client, control_model, tmp_path):
    settings = client.app.state.sdapi.settings
    before, settings.annotator_dir = settings.annotator_dir, tmp_path
    try:
        unit = {"enabled": True, "module": "lineart_anime", "model": control_model, "image": photo(64, 64)}
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 2, "width": 64, "height": 64,
                                                   "alwayson_scripts": {"controlnet": {"args": [unit]}}})
    finally:
        settings.annotator_dir = before
    assert r.status_code == 422
    assert "netG.pth in lineart_anime/" in r.json()["errors"] + r.json()["detail"]


def test_control_types_lists_tags_with_their_models(client, control_model):
    body = client.get("/controlnet/control_types").json()["control_types"]
    assert body["All"]["model_list"][0] == "None" and control_model in body["All"]["model_list"]
    assert body["Depth"]["module_list"][:2] == ["none", "depth_midas"]
    assert body["Depth"]["default_option"] == "depth_midas"
