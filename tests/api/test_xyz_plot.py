"""The X/Y/Z plot through HTTP: ``script_name: "x/y/z plot"`` on txt2img and img2img.

Cells are checked against plain requests with the same values: a cell's pixels and infotext must equal what
``/txt2img`` (or ``/img2img``) answers for its settings, so every axis changes exactly what it says it changes.
All at 64x64 with 2 steps on the demo checkpoints.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdapi.engine.demo_lora_epochs import epoch_file_name, write_demo_lora_epochs
from sdapi.scripts.xyz.grid import annotate_grid
from sdapi.translate import image_grid
from tests.conftest import decode_png

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compare_loras.py"
MODEL = {"sd_model_checkpoint": "demo-sd15.safetensors"}
BASE = {"prompt": "a photo of a cat", "width": 64, "height": 64, "steps": 2, "seed": 11, "subseed": 3,
        "override_settings": MODEL}


def gradient() -> Image.Image:
    """A deterministic 64x64 init image: colour ramps and a checkerboard."""
    x, y = np.meshgrid(np.arange(64), np.arange(64))
    array = np.stack([x * 4, y * 4, 120 + ((x // 8 + y // 8) % 2) * 60], axis=2)
    return Image.fromarray(array.clip(0, 255).astype(np.uint8))


def b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def named(x_type="Nothing", x_values="", y_type="Nothing", y_values="", z_type="Nothing", z_values="",
          **flags) -> dict:
    return {"x_type": x_type, "x_values": x_values, "y_type": y_type, "y_values": y_values, "z_type": z_type,
            "z_values": z_values, **flags}


def post(client, script_args, path="txt2img", script_name="x/y/z plot", **payload):
    body = {**BASE, "script_name": script_name, "script_args": script_args, **payload}
    if path == "img2img":
        body = {"init_images": [b64(gradient())], "denoising_strength": 0.6, **body}
    return client.post(f"/sdapi/v1/{path}", json=body)


def plot(client, script_args, path="txt2img", **payload) -> tuple[dict, dict]:
    r = post(client, script_args, path, **payload)
    assert r.status_code == 200, r.text
    body = r.json()
    return body, json.loads(body["info"])


def plain(client, path="txt2img", **payload) -> dict:
    body = {**BASE, **payload}
    if path == "img2img":
        body = {"init_images": [b64(gradient())], "denoising_strength": 0.6, **body}
    r = client.post(f"/sdapi/v1/{path}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def pixels(b64_image: str) -> np.ndarray:
    return np.asarray(decode_png(b64_image).convert("RGB"), dtype=int)


def infotext(b64_image: str) -> str:
    return decode_png(b64_image).text["parameters"]


# -- the notes' LoRA comparison: epochs x strengths --------------------------------------------------------

EPOCHS = [epoch_file_name("xyz-epochs", e).removesuffix(".safetensors") for e in range(1, 6)]
STRENGTHS = ["1", "0.9", "0.8", "0.7", "0.6", "0.5", "0.4", "0.3", "0.2", "0.1"]


@pytest.fixture(scope="module")
def lora_epochs(client):
    """Five demo epoch files ``xyz-epochs-00000N`` in ``models/Lora``, for this module only."""
    paths = write_demo_lora_epochs(client.app.state.sdapi.settings.data_dir, 5, "xyz-epochs")
    client.post("/sdapi/v1/refresh-loras")
    yield paths
    for path in paths:
        path.unlink()
    client.post("/sdapi/v1/refresh-loras")


def test_lora_epoch_by_strength_grid(client, lora_epochs):
    # As the notes do it: X = Prompt S/R over the epoch names, Y = Prompt S/R over ":<strength>>".
    prompt = f"a photo of a cat <lora:{EPOCHS[0]}:1>"
    args = named("Prompt S/R", ", ".join(EPOCHS), "Prompt S/R", ", ".join(f":{s}>" for s in STRENGTHS),
                 include_lone_images=True)
    body, info = plot(client, args, prompt=prompt)
    assert len(body["images"]) == 1 + 50 and info["index_of_first_image"] == 1
    expected = [f"a photo of a cat <lora:{epoch}:{strength}>" for strength in STRENGTHS for epoch in EPOCHS]
    assert info["all_prompts"] == expected and info["prompt"] == expected[0]
    assert info["all_seeds"] == [11] * 50
    cells = body["images"][1:]
    for cell, text, prompt_text in zip(cells, info["infotexts"][1:], expected):
        assert infotext(cell) == text and text.startswith(prompt_text + "\n")
    assert info["infotexts"][0].endswith(
        f'Script: X/Y/Z plot, X Type: Prompt S/R, X Values: "{", ".join(EPOCHS)}", '
        f'Y Type: Prompt S/R, Y Values: "{", ".join(f":{s}>" for s in STRENGTHS)}"')
    # The grid is these cells, in this order, under these labels.
    grid = annotate_grid(image_grid([decode_png(c).convert("RGB") for c in cells], rows=10), 64, 64,
                         EPOCHS, [f":{s}>" for s in STRENGTHS])
    assert np.array_equal(pixels(body["images"][0]), np.asarray(grid, dtype=int))
    # Each epoch and each strength changes the picture; one cell equals a plain request with its prompt.
    grid_cells = np.stack([pixels(c) for c in cells]).reshape(10, 5, 64, 64, 3)
    for row in range(10):
        for a in range(5):
            for b in range(a + 1, 5):
                assert np.abs(grid_cells[row, a] - grid_cells[row, b]).mean() > 0.5
    for col in range(5):
        assert np.abs(grid_cells[0, col] - grid_cells[9, col]).mean() > 0.5
    single = plain(client, prompt=expected[37])
    assert np.array_equal(pixels(single["images"][0]), grid_cells[7, 2])


def test_compare_loras_example(client, tmp_path):
    """``examples/compare_loras.py`` against a real HTTP server on this session's state, demo epochs written by
    the script itself."""
    import importlib.util

    from sdapi.app import create_app
    from tests.live_server import serve_in_thread

    spec = importlib.util.spec_from_file_location("compare_loras", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    state = client.app.state.sdapi
    out = tmp_path / "grid.png"
    try:
        with serve_in_thread(create_app(state.settings, state=state, load_model=False)) as url:
            info = example.main(url=url, model="demo-sd15.safetensors", lora="example-epochs", prompt="a cat",
                                out=str(out), data_dir=str(state.settings.data_dir), width=64, height=64, steps=2)
    finally:
        for epoch in (1, 2):
            (state.settings.loras_dir / epoch_file_name("example-epochs", epoch)).unlink(missing_ok=True)
        client.post("/sdapi/v1/refresh-loras")
    grid = decode_png(base64.b64encode(out.read_bytes()).decode())
    assert grid.width == 48 + 2 * 64 and grid.height > 5 * 64
    assert info["all_prompts"][:3] == ["a cat <lora:example-epochs-000001:1>", "a cat <lora:example-epochs-000002:1>",
                                       "a cat <lora:example-epochs-000001:0.8>"]


# -- every axis changes what it says it changes ------------------------------------------------------------

STYLES_CSV = "name,prompt,negative_prompt\nxyz-oil,\"{prompt}, oil painting\",\nxyz-ink,ink drawing,blurry\n"
HIRES = {"enable_hr": True, "hr_scale": 1.5, "denoising_strength": 0.6}


@pytest.fixture()
def styles(settings):
    settings.styles_path.write_text(STYLES_CSV, encoding="utf-8")
    yield
    settings.styles_path.unlink()


AXES = [
    # label, values (text or dropdown list), base payload, plain-request fields per value, infotext part per value
    ("Seed", "5, 6", {}, [{"seed": 5}, {"seed": 6}], ["Seed: 5,", "Seed: 6,"]),
    ("Var. seed", "5-6", {"subseed_strength": 0.5}, [{"subseed": 5}, {"subseed": 6}],
     ["Variation seed: 5,", "Variation seed: 6,"]),
    ("Var. strength", "0.2, 0.8", {}, [{"subseed_strength": 0.2}, {"subseed_strength": 0.8}],
     ["Variation seed strength: 0.2", "Variation seed strength: 0.8"]),
    ("Steps", "2-3", {}, [{"steps": 2}, {"steps": 3}], ["Steps: 2,", "Steps: 3,"]),
    ("CFG Scale", "3, 9", {}, [{"cfg_scale": 3}, {"cfg_scale": 9}], ["CFG scale: 3.0", "CFG scale: 9.0"]),
    ("Prompt S/R", "cat, dog", {}, [{"prompt": "a photo of a cat"}, {"prompt": "a photo of a dog"}],
     ["a photo of a cat\n", "a photo of a dog\n"]),
    ("Prompt order", "photo, cat", {}, [{"prompt": "a photo of a cat"}, {"prompt": "a cat of a photo"}],
     ["a photo of a cat\n", "a cat of a photo\n"]),
    # At 2 steps A1111's LMS is Euler to within a 3e-5 weight (its schedule is [14.6, 0.03, 0]): Euler a differs.
    ("Sampler", ["Euler", "k_euler_a"], {}, [{"sampler_name": "Euler"}, {"sampler_name": "Euler a"}],
     ["Sampler: Euler,", "Sampler: Euler a,"]),
    ("Checkpoint name", ["demo-sd15.safetensors", "demo-sd15-b"], {},
     [{"override_settings": MODEL}, {"override_settings": {"sd_model_checkpoint": "demo-sd15-b.safetensors"}}],
     ["Model: demo-sd15,", "Model: demo-sd15-b,"]),
    ("Clip skip", "1, 2", {}, [{}, {"override_settings": {**MODEL, "CLIP_stop_at_last_layers": 2}}],
     ["Version: v1.2.1", "Clip skip: 2,"]),
    ("Styles", ["xyz-oil", "xyz-ink"], {}, [{"styles": ["xyz-oil"]}, {"styles": ["xyz-ink"]}],
     ["a photo of a cat, oil painting\n", "Negative prompt: blurry\n"]),
    ("Hires steps", "1, 2", HIRES, [{"hr_second_pass_steps": 1}, {"hr_second_pass_steps": 2}],
     ["Hires steps: 1", "Hires steps: 2"]),
    ("Denoising", "0.3, 0.8", HIRES, [{"denoising_strength": 0.3}, {"denoising_strength": 0.8}],
     ["Denoising strength: 0.3,", "Denoising strength: 0.8,"]),
    ("Hires upscaler", ["Latent", "Lanczos"], HIRES, [{"hr_upscaler": "Latent"}, {"hr_upscaler": "Lanczos"}],
     ["Hires upscaler: Latent", "Hires upscaler: Lanczos"]),
]


@pytest.mark.parametrize("label, values, base, fields, texts", AXES, ids=[a[0] for a in AXES])
def test_txt2img_axis_cells_equal_plain_requests(client, styles, label, values, base, fields, texts):
    if isinstance(values, list):  # choice axes: A1111's dropdown list (positional form)
        args = [label, "", values, 0, "", [], 0, "", [], True, True, False, False, 0]
    else:
        args = named(label, values, include_lone_images=True)
    body, info = plot(client, args, **base)
    assert len(body["images"]) == 3
    cells = body["images"][1:]
    for cell, cell_fields, text, info_text in zip(cells, fields, texts, info["infotexts"][1:]):
        single = plain(client, **{**base, **cell_fields})
        assert infotext(cell) == infotext(single["images"][0]) == info_text
        assert text in info_text
        assert np.array_equal(pixels(cell), pixels(single["images"][0]))
    assert not np.array_equal(pixels(cells[0]), pixels(cells[1]))
    assert f"X Type: {label}, " in info["infotexts"][0]


IMG2IMG_AXES = [
    ("Denoising", "0.3, 0.8", [{"denoising_strength": 0.3}, {"denoising_strength": 0.8}],
     ["Denoising strength: 0.3", "Denoising strength: 0.8"]),
    ("Sampler", "Euler a, DDIM", [{"sampler_name": "Euler a"}, {"sampler_name": "DDIM"}],
     ["Sampler: Euler a,", "Sampler: DDIM,"]),
    ("CFG Scale", "4, 12", [{"cfg_scale": 4}, {"cfg_scale": 12}], ["CFG scale: 4.0", "CFG scale: 12.0"]),
]


@pytest.mark.parametrize("label, values, fields, texts", IMG2IMG_AXES, ids=[a[0] for a in IMG2IMG_AXES])
def test_img2img_axis_cells_equal_plain_requests(client, label, values, fields, texts):
    # Choice axes with the values as text and an empty dropdown (what webuiapi sends) plot the text.
    body, info = plot(client, named(label, values, include_lone_images=True), path="img2img")
    assert body["parameters"]["init_images"] is None
    for cell, cell_fields, text in zip(body["images"][1:], fields, texts):
        single = plain(client, path="img2img", **cell_fields)
        assert np.array_equal(pixels(cell), pixels(single["images"][0]))
        assert text in infotext(cell) and infotext(cell) == infotext(single["images"][0])
    assert not np.array_equal(pixels(body["images"][1]), pixels(body["images"][2]))


@pytest.fixture(scope="module")
def inpainting_client(data_dir, fresh_data_dir, tmp_path_factory):
    """A server whose models folder also holds a demo inpainting checkpoint."""
    from fastapi.testclient import TestClient

    from sdapi.app import create_app
    from sdapi.engine.demo_models import write_demo_checkpoint
    from sdapi.settings import Settings

    root = fresh_data_dir(data_dir)
    write_demo_checkpoint(root / "models" / "Stable-diffusion" / "demo-inpaint.safetensors", 5, in_channels=9)
    settings = Settings(data_dir=root, cache_dir=tmp_path_factory.mktemp("xyz-cache"), num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_cond_image_mask_weight_acts_on_an_inpainting_checkpoint(inpainting_client):
    model = {"sd_model_checkpoint": "demo-inpaint.safetensors"}
    body, _ = plot(inpainting_client, named("Cond. Image Mask Weight", "0.2, 1", include_lone_images=True),
                      path="img2img", override_settings=model)
    cells = body["images"][1:]
    assert "Conditional mask weight: 0.2" in infotext(cells[0]) and "Conditional mask weight: 1" in infotext(cells[1])
    single = plain(inpainting_client, path="img2img", override_settings={**model, "inpainting_mask_weight": 0.2})
    assert np.array_equal(pixels(cells[0]), pixels(single["images"][0]))
    assert not np.array_equal(pixels(cells[0]), pixels(cells[1]))
    # On a checkpoint without an inpainting UNet the axis would change nothing: refused.
    r = post(inpainting_client, named("Cond. Image Mask Weight", "0.2, 1"), path="img2img")
    assert r.status_code == 422
    assert "'Cond. Image Mask Weight' only changes inpainting checkpoints" in r.json()["errors"]


# -- grid layout, sub-grids, seeds -------------------------------------------------------------------------


def test_z_axis_sub_grids_and_margins(client):
    args = named("Steps", "2, 3", "CFG Scale", "5, 9", "Seed", "1, 2", include_lone_images=True,
                 include_sub_grids=True, margin_size=4)
    body, info = plot(client, args)
    images = [decode_png(i) for i in body["images"]]
    assert len(images) == 1 + 2 + 8
    main, subs, cells = images[0], images[1:3], images[3:]
    assert all(not image.text for image in images[:3]) and all("parameters" in c.text for c in cells)
    sub_w, sub_h = subs[0].size
    assert sub_w == 48 + 2 * 64 + 4 and main.width == 2 * sub_w and main.height > sub_h
    band = main.height - sub_h
    assert np.array_equal(np.asarray(main.crop((sub_w, band, 2 * sub_w, main.height))), np.asarray(subs[1]))
    texts = info["infotexts"]
    assert len(texts) == 1 + 2 + 8 and len(info["all_prompts"]) == len(info["all_seeds"]) == 2 + 8
    assert info["all_seeds"] == [1, 2] + [1] * 4 + [2] * 4
    assert texts[0].endswith('X Type: Steps, X Values: "2, 3", Y Type: CFG Scale, Y Values: "5, 9", '
                             'Z Type: Seed, Z Values: "1, 2", Fixed Z Values: "1, 2"')
    assert texts[1].endswith('Y Values: "5, 9"') and "Seed: 1," in texts[1] and "Seed: 2," in texts[2]
    order = [(s, c, seed) for seed in (1, 2) for c in ("5.0", "9.0") for s in (2, 3)]
    for text, (steps, cfg, seed) in zip(texts[3:], order):
        assert f"Steps: {steps}, Sampler: Euler, CFG scale: {cfg}, Seed: {seed}," in text


def test_fixed_and_free_seeds(client):
    _, info = plot(client, named("Steps", "2, 3", "Seed", "-1, -1"), seed=-1)
    fixed = info["all_seeds"]
    assert fixed[0] == fixed[1] != fixed[2] == fixed[3]  # each -1 on the Seed axis is drawn once
    assert f'Fixed Y Values: "{fixed[0]}, {fixed[2]}"' in info["infotexts"][0]
    _, info = plot(client, named("Steps", "2, 2, 2"), seed=-1)
    assert len(set(info["all_seeds"])) == 1  # seed -1 is fixed once for the whole plot
    _, info = plot(client, named("Steps", "2, 2, 2", no_fixed_seeds=True), seed=-1)
    assert len(set(info["all_seeds"])) == 3


def test_recorded_layout_positional_and_named_agree(client):
    positional = [7, "cat, dog", [], 7, "photo, painting", [], 0, "", [], True, False, False, False, 0]
    by_name = named("prompt s/r", ["cat", "dog"], "Prompt S/R", "photo, painting")
    first, first_info = plot(client, positional)
    second, second_info = plot(client, by_name)
    assert first["images"] == second["images"] and len(first["images"]) == 1
    assert decode_png(first["images"][0]).size == (48 + 2 * 64, 9 + 2 * 64)
    assert first_info["infotexts"][1:] == second_info["infotexts"][1:]
    assert first["parameters"]["script_args"] == positional and second["parameters"]["script_args"] == by_name


def test_no_legend_and_not_sent(client):
    body, _ = plot(client, named("Steps", "2, 3", draw_legend=False))
    assert decode_png(body["images"][0]).size == (128, 64)
    body, info = plot(client, named("Steps", "2, 3"), send_images=False)
    assert body["images"] == [] and len(info["infotexts"]) == 3


def test_a_cell_keeps_the_first_image_of_its_batch(client):
    body, info = plot(client, named("Steps", "2, 3", include_lone_images=True), batch_size=2)
    assert len(body["images"]) == 3 and decode_png(body["images"][0]).size == (2 * 64, 9 + 64)  # no Y labels
    single = plain(client, batch_size=2, steps=3)
    assert np.array_equal(pixels(body["images"][2]), pixels(single["images"][0]))
    assert len(info["infotexts"]) == 3 and len(info["all_negative_prompts"]) == 2  # the first cell's, as A1111
    # A saved batch comes behind its own grid, and that grid is what A1111's plot keeps as the cell.
    body, _ = plot(client, named("Steps", "2, 3"), batch_size=2, save_images=True)
    grid = decode_png(body["images"][0])
    assert grid.width == 2 * 128 and 64 < grid.height < 2 * 64


def test_webuiapi_positional_call(client):
    # webuiapi 0.9.17's README call: values as text for the Sampler axis, booleans as strings.
    args = [4, "2,3", "", 9, "Euler a, LMS", "", 0, "", "", "True", "False", "False", "False", 0]
    body, info = plot(client, args, script_name="X/Y/Z Plot")
    assert len(body["images"]) == 1 and len(info["infotexts"]) == 5
    assert [t.split("Sampler: ")[1].split(",")[0] for t in info["infotexts"][1:]] == ["Euler a", "Euler a",
                                                                                        "LMS", "LMS"]


# -- interrupt and progress --------------------------------------------------------------------------------


def test_interrupt_keeps_what_is_done_and_blanks_the_rest(client):
    state = client.app.state.sdapi
    seen = {}

    def interrupt_after_first_cell():
        deadline = time.time() + 60
        while time.time() < deadline:
            snapshot = state.control.snapshot()
            if snapshot["job_count"] and snapshot["job_no"] >= 1:
                seen["job_count"] = snapshot["job_count"]
                client.post("/sdapi/v1/interrupt")
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=interrupt_after_first_cell)
    watcher.start()
    body, info = plot(client, named("Seed", "1, 2, 3, 4, 5, 6"), steps=12)
    watcher.join()
    assert seen["job_count"] == 6
    assert info["all_prompts"][0] == "a photo of a cat" and info["all_prompts"][-1] is None
    assert info["infotexts"][-1] is None and info["all_seeds"][-1] is None
    grid = pixels(body["images"][0])
    assert grid[-64:, -64:].sum() == 0  # an unstarted cell is blank
    assert grid[-64:, 48:112].std() > 0  # the first cell was generated


# -- listings and errors -----------------------------------------------------------------------------------


def test_scripts_are_listed(client):
    listed = client.get("/sdapi/v1/scripts").json()
    assert listed["txt2img"][-1] == "x/y/z plot" and listed["img2img"][-1] == "x/y/z plot"
    infos = [i for i in client.get("/sdapi/v1/script-info").json() if i["name"] == "x/y/z plot"]
    assert [(i["name"], i["is_img2img"], i["is_alwayson"]) for i in infos] == [
        ("x/y/z plot", False, False), ("x/y/z plot", True, False)]
    txt2img_args, img2img_args = infos[0]["args"], infos[1]["args"]
    assert len(txt2img_args) == 14 and txt2img_args[0]["label"] == "X type"
    assert txt2img_args[0]["choices"][7] == "Prompt S/R" and txt2img_args[0]["choices"][19] == "Hires upscaler"
    assert img2img_args[0]["choices"][19] == "Cond. Image Mask Weight"
    assert txt2img_args[13] == {"label": "Grid margins (px)", "value": 0, "minimum": 0, "maximum": 500, "step": 2,
                                "choices": None}
    # /docs documents the named form next to A1111's positional one.
    schema = client.get("/openapi.json").json()["components"]["schemas"]["StableDiffusionProcessingTxt2Img"]
    (array,) = [s for s in schema["properties"]["script_args"]["anyOf"] if s.get("type") == "array"]
    description = array["description"]
    assert "`x_type`" in description and "`no_fixed_seeds`" in description and "Prompt S/R" in description


A1111_ERRORS = [
    (named("Prompt S/R", "horse, dog"), {}, "RuntimeError",
     "Prompt S/R did not find horse in prompt or negative prompt."),
    ([9, "", ["Euler", "Nope"], 0, "", [], 0, "", [], True, False, False, False, 0], {}, "RuntimeError",
     "Unknown sampler: Nope"),
    (named("Checkpoint name", ["no-such-model"]), {}, "RuntimeError", "Unknown checkpoint: no-such-model"),
    (named("Hires upscaler", ["Nope"]), HIRES, "AssertionError", "could not find upscaler named Nope"),
    (named("Steps", "1-100", "Seed", "1-100"), {}, "AssertionError",
     "Error: Resulting grid would be too large (41 MPixels) (max configured size is 200 MPixels)"),
]


@pytest.mark.parametrize("args, extra, error, message", A1111_ERRORS)
def test_a1111_errors_come_before_anything_runs(client, args, extra, error, message):
    if error == "AssertionError" and "grid" in message:
        client.app.state.sdapi.options.set("img_max_size_mp", 40)
        message = message.replace("200", "40")
    try:
        r = post(client, args, **extra)
    finally:
        client.app.state.sdapi.options.set("img_max_size_mp", 200)
    assert r.status_code == 500
    assert r.json() == {"error": error, "detail": "", "body": "", "errors": message}
    assert client.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0


REFUSED = [
    (named("Eta", "0, 1"), {}, "'Eta' cannot be plotted"),
    ([12, "0, 1", [], 0, "", [], 0, "", [], True, False, False, False, 0], {}, "'Sigma Churn' cannot be plotted"),
    (named("Nothing", "", "VAE", ["None"]), {}, "Y axis 'VAE' cannot be plotted"),
    (named(z_type="Face restore", z_values="true"), {}, "Z axis 'Face restore' cannot be plotted"),
    (named("UniPC Order", "1, 2"), {}, "'UniPC Order' cannot be plotted"),
    (named("Negative Guidance minimum sigma", "1"), {}, "cannot be plotted"),
    (named("Hires steps", "1, 2"), {}, "'Hires steps' only changes the hires fix second pass"),
    (named("Denoising", "0.3"), {}, "'Denoising' only changes the hires fix second pass"),
    (named("Steps", "abc"), {}, "X axis 'Steps': 'abc' is not an integer"),
    (named("Steps", "0, 1"), {}, "steps must be at least 1"),
    (named("Seed", ""), {}, "X axis 'Seed' has no values"),
    (named("Sampler", []), {}, "X axis 'Sampler' has no values"),
    (named(x_type=24), {}, "x_type: 24 is not an axis of the txt2img x/y/z plot"),
    ({"x_type": "Steps", "colour": "red"}, {}, "script_args: colour: Extra inputs are not permitted"),
    ([7, "cat, dog", 7, "table, chair", 0, "", True, False, False, False, 0], {}, "must hold 14 values"),
    (named("Seed", "1-20000000"), {}, "X axis 'Seed' has more than 16384 values"),
    (named("Seed", "1-1000000000 (+1)"), {}, "X axis 'Seed' has more than 16384 values"),
    (named("Nothing", "", "Seed", "1-2 [1000000000]"), {}, "Y axis 'Seed' has more than 16384 values"),
    (named("CFG Scale", "1-2 (+0.0000001)"), {}, "X axis 'CFG Scale' has more than 16384 values"),
    (named(z_type="Prompt order", z_values=", ".join(f"t{i}" for i in range(12))), {},
     "Z axis 'Prompt order' has more than 16384 values"),
    (named("Seed", "1-200", "Steps", "1-100"), {}, "20000 cells (X axis 'Seed': 200 values, Y axis 'Steps': 100 "
                                                   "values); at most 16384"),
]


@pytest.mark.parametrize("args, extra, message", REFUSED)
def test_what_cannot_work_is_refused_with_422(client, args, extra, message):
    r = post(client, args, **extra)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "InvalidRequest" and message in body["errors"]


def test_image_cfg_scale_is_refused_on_img2img(client):
    r = post(client, named("Image CFG Scale", "1, 2"), path="img2img")
    assert r.status_code == 422 and "'Image CFG Scale' cannot be plotted" in r.json()["errors"]


@pytest.mark.parametrize("name", ["x/y plot", "X/Y/Z", "img2img alternative test"])
def test_other_script_names_are_not_found(client, name):
    r = post(client, named("Steps", "2"), script_name=name)
    assert (r.status_code, r.json()["detail"]) == (422, f"Script '{name}' not found")
