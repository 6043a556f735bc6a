"""A1111 v1.2.1's built-in scripts through HTTP: SD upscale, Prompt matrix, Prompts from file or textbox, Loopback,
Poor man's outpainting and Outpainting mk2.

Each script's calls are checked against what A1111's script makes of ``p``: counts, sizes, seeds, prompts,
denoising strengths and the ``info`` object. Where a call equals a plain request (a prompt matrix cell, a prompt
line, a loop), its pixels must equal what ``/txt2img`` or ``/img2img`` answers for those values. All at 64x64 with
2 steps on the demo checkpoint.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.api.test_xyz_plot import b64, gradient, infotext, pixels
from tests.conftest import decode_png

MODEL = {"sd_model_checkpoint": "demo-sd15.safetensors"}
BASE = {"prompt": "a photo of a cat", "width": 64, "height": 64, "steps": 2, "seed": 11, "subseed": 3,
        "override_settings": MODEL}
IMG2IMG = {"init_images": [b64(gradient())], "denoising_strength": 0.6}


def post(client, script_name, script_args, path="img2img", **payload):
    body = {**BASE, "script_name": script_name, "script_args": script_args, **payload}
    if path == "img2img":
        body = {**IMG2IMG, **body}
    return client.post(f"/sdapi/v1/{path}", json=body)


def run(client, script_name, script_args, path="img2img", **payload) -> tuple[dict, dict]:
    r = post(client, script_name, script_args, path, **payload)
    assert r.status_code == 200, r.text
    body = r.json()
    return body, json.loads(body["info"])


def plain(client, path="img2img", **payload) -> dict:
    body = {**BASE, **payload}
    if path == "img2img":
        body = {**IMG2IMG, **body}
    r = client.post(f"/sdapi/v1/{path}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def size(b64_image: str) -> tuple[int, int]:
    return decode_png(b64_image).size


def error(r, status: int, kind: str, fragment: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == kind and fragment in body["errors"], body


# -- SD upscale ---------------------------------------------------------------------------------------------------


def test_sd_upscale_a1111_api_test_request(client):
    """A1111 v1.2.1's own test (test/basic_features/img2img_test.py): 64x64 init, 3 steps, Lanczos x2."""
    body, info = run(client, "sd upscale", ["", 8, "Lanczos", 2.0], steps=3, seed=-1, subseed=-1,
                     sampler_index="Euler a", denoising_strength=0.75)
    assert len(body["images"]) == 1 and size(body["images"][0]) == (128, 128)
    assert info["extra_generation_params"]["SD upscale overlap"] == 8
    assert info["extra_generation_params"]["SD upscale upscaler"] == "Lanczos"
    assert "SD upscale overlap: 8, SD upscale upscaler: Lanczos" in info["infotexts"][0]
    assert len(info["infotexts"]) == 1 and info["subseed"] == -1 and info["index_of_first_image"] == 0


def test_sd_upscale_tiles_batches_and_seeds(client):
    """128x128 in 64px tiles overlapping by 16: 3x3 tiles, batches of 2 (the last one tile, repeated); each batch
    starts at the previous batch's first seed + 1; ``info`` is the last call's with the first call's infotext."""
    body, info = run(client, "sd upscale", ["", 16, 1, 2.0], batch_size=2)  # upscaler by index: Lanczos
    assert [size(image) for image in body["images"]] == [(128, 128)]
    assert info["seed"] == 11 and info["all_seeds"] == [15, 16]  # batches start at 11, 12, 13, 14, 15
    assert info["batch_size"] == 2 and info["width"] == 64 and info["height"] == 64
    assert "Seed: 11," in info["infotexts"][0] and "SD upscale upscaler: Lanczos" in info["infotexts"][0]
    assert "parameters" not in decode_png(body["images"][0]).text  # A1111's combined image has no infotext


def test_sd_upscale_single_tile_is_plain_img2img(client):
    """Upscaler "None" keeps the 64x64 image: one tile, which is the plain img2img result."""
    body, info = run(client, "SD Upscale", {"overlap": 0, "upscaler_index": "none", "scale_factor": 3})
    reference = plain(client)
    assert np.array_equal(pixels(body["images"][0]), pixels(reference["images"][0]))
    assert info["infotexts"][0] == infotext(reference["images"][0]) + (
        ", SD upscale overlap: 0, SD upscale upscaler: None")


@pytest.mark.parametrize("args, status, kind, fragment", [
    (["", 8, "Nope", 2.0], 500, "ValueError", "'nope' is not in list"),
    (["", 8, 99, 2.0], 500, "IndexError", "list index out of range"),
    (["", 64, "Lanczos", 2.0], 422, "InvalidRequest", "overlap"),
    (["", "wide", "Lanczos", 2.0], 422, "InvalidRequest", "overlap"),
    (["", 8, "Lanczos", 2.0, 1], 422, "InvalidRequest", "at most 4 values"),
    ({"overlaps": 8}, 422, "InvalidRequest", "unknown overlaps"),
    (["", 8, "Lanczos", 1000.0], 422, "InvalidRequest", "limit"),
])
def test_sd_upscale_bad_arguments_answer_before_anything_runs(client, args, status, kind, fragment):
    error(post(client, "sd upscale", args), status, kind, fragment)


def test_sd_upscale_tile_count_is_bounded(client):
    r = post(client, "sd upscale", ["", 8, "Lanczos", 4.0], width=16, height=16, n_iter=2)
    error(r, 422, "InvalidRequest", "tiles")


def test_sd_upscale_is_img2img_only(client):
    error(post(client, "sd upscale", [], path="txt2img"), 422, "HTTPException", "")
    assert post(client, "sd upscale", [], path="txt2img").json()["detail"] == "Script 'sd upscale' not found"


# -- Prompt matrix ------------------------------------------------------------------------------------------------


def test_prompt_matrix_grid_then_every_combination(client):
    body, info = run(client, "prompt matrix", [False, False, "positive", "comma", 0], path="txt2img",
                     prompt="a cat|red|blue", batch_size=2)
    assert info["all_prompts"] == ["a cat", "a cat, red", "a cat, blue", "a cat, red, blue"]
    assert info["prompt"] == "a cat" and info["all_seeds"] == [11] * 4 and info["all_subseeds"] == [3, 4, 5, 6]
    assert info["index_of_first_image"] == 1 and len(body["images"]) == 5
    assert info["infotexts"][0] == info["infotexts"][1] and len(info["infotexts"]) == 5
    assert [infotext(image) for image in body["images"][1:]] == info["infotexts"][1:]
    from sdapi.scripts.prompt_matrix import matrix_labels
    from sdapi.scripts.xyz.grid import annotate_grid
    from sdapi.translate import image_grid
    cells = [decode_png(image).convert("RGB") for image in body["images"][1:]]
    columns, rows = matrix_labels(["a cat", "red", "blue"])
    expected = annotate_grid(image_grid(cells, 2), 64, 64, columns, rows)
    assert np.array_equal(pixels(body["images"][0]), np.asarray(expected, dtype=int))


def test_prompt_matrix_cell_equals_plain_request(client):
    body, info = run(client, "Prompt Matrix", {}, path="txt2img", prompt="a cat|red|blue")
    reference = plain(client, path="txt2img", prompt="a cat, red, blue")
    assert np.array_equal(pixels(body["images"][4]), pixels(reference["images"][0]))
    assert info["infotexts"][4] == infotext(reference["images"][0])


def test_prompt_matrix_negative_at_start_with_space_and_different_seeds(client):
    body, info = run(client, "prompt matrix", [True, True, "negative", "space", 2], negative_prompt="ugly|blurry|dark")
    assert info["all_negative_prompts"] == ["ugly", "blurry ugly", "dark ugly", "blurry dark ugly"]
    assert info["all_prompts"] == ["a photo of a cat"] * 4 and info["all_seeds"] == [11, 12, 13, 14]
    assert len(body["images"]) == 5 and size(body["images"][1]) == (64, 64)


@pytest.mark.parametrize("args, payload, status, kind, fragment", [
    ([False, False, "neutral", "comma", 0], {}, 500, "ValueError", "Unknown prompt type neutral"),
    ([False, False, "positive", "tab", 0], {}, 500, "ValueError", "Unknown variations delimiter tab"),
    ([], {"prompt": "|".join("abcdefghijkl")}, 422, "InvalidRequest", "2^11 images"),
])
def test_prompt_matrix_errors(client, args, payload, status, kind, fragment):
    error(post(client, "prompt matrix", args, path="txt2img", **payload), status, kind, fragment)


# -- Prompts from file or textbox ---------------------------------------------------------------------------------

LINES = ('a cat\n\n  --prompt "a dog" in snow --negative_prompt "ugly face" --steps 1 --seed 5 --sampler_name euler\n'
         '--sd_model x --prompt bird\n')


def test_prompts_from_file_runs_each_line(client):
    body, info = run(client, "prompts from file or textbox", [False, False, LINES], path="txt2img")
    assert info["all_prompts"] == ["a cat", "a dog in snow", "--sd_model x --prompt bird"]
    assert len(body["images"]) == 3 and len(info["infotexts"]) == 3
    assert "Negative prompt: ugly face\nSteps: 1, Sampler: Euler," in info["infotexts"][1]
    assert "Seed: 5," in info["infotexts"][1] and "Seed: 11," in info["infotexts"][2]
    assert info["seed"] == 11 and info["all_seeds"] == [11] and info["steps"] == 2
    assert any("--sd_model x --prompt bird" in w and "unknown commandline option" in w for w in info["warnings"])
    reference = plain(client, path="txt2img", prompt="a dog in snow", negative_prompt="ugly face", steps=1, seed=5,
                      sampler_name="Euler")
    assert np.array_equal(pixels(body["images"][1]), pixels(reference["images"][0]))
    assert info["infotexts"][1] == infotext(reference["images"][0])


def test_prompts_from_file_iterates_seeds(client):
    body, info = run(client, "prompts from file or textbox", {"checkbox_iterate": True, "prompt_txt": "a\nb"},
                     n_iter=2)
    assert info["all_prompts"] == ["a", "a", "b", "b"]
    assert ["Seed: 11," in info["infotexts"][0], "Seed: 13," in info["infotexts"][2]] == [True, True]
    assert info["seed"] == 15 and len(body["images"]) == 4


@pytest.mark.parametrize("args, fragment", [
    ([False, False, "a cat\n--width 65"], "prompt_txt line 2: width must be a positive multiple of 8"),
    ([False, False, "--steps 5000"], "prompt_txt line 1: steps 5000"),
    ([False, False, "\n".join(["cat"] * 1001)], "1001 lines"),
    ([False, False, "--n_iter 600 --prompt a\n--n_iter 600 --prompt b"], "1200 images"),
    ({"prompt": "cat"}, "unknown prompt"),
])
def test_prompts_from_file_refuses_lines_that_cannot_run(client, args, fragment):
    error(post(client, "prompts from file or textbox", args, path="txt2img"), 422, "InvalidRequest", fragment)


# -- Loopback -----------------------------------------------------------------------------------------------------


def test_loopback_feeds_each_result_back(client):
    body, info = run(client, "loopback", [3, 0.3, "Linear", "None"])
    assert len(body["images"]) == 4 and size(body["images"][0]) == (192, 64)  # one-row grid, then each loop
    texts = [infotext(image) for image in body["images"][1:]]
    middle = 0.6 + (0.3 - 0.6) * 0.5  # A1111's float arithmetic: 0.44999999999999996
    assert ["Denoising strength: 0.6," in texts[0], f"Denoising strength: {middle}," in texts[1],
            "Denoising strength: 0.3," in texts[2]] == [True] * 3
    assert ["Seed: 11," in texts[0], "Seed: 12," in texts[1], "Seed: 13," in texts[2]] == [True] * 3
    assert "Final denoising strength: 0.3, Denoising curve: Linear" in texts[0]
    assert info["seed"] == 11 and info["all_seeds"] == [13] and info["infotexts"] == [texts[0]]
    assert info["denoising_strength"] == pytest.approx(0.15)  # A1111 leaves p one loop past the end
    reference = plain(client, init_images=[body["images"][2]], denoising_strength=0.3, seed=13)
    assert np.array_equal(pixels(body["images"][3]), pixels(reference["images"][0]))


def test_loopback_batches_keep_their_last_image(client):
    body, info = run(client, "loopback", {"loops": 2, "denoising_curve": "Aggressive"}, n_iter=2)
    assert len(body["images"]) == 3 and size(body["images"][0]) == (128, 64)
    assert ["Seed: 12," in infotext(body["images"][1]), "Seed: 14," in infotext(body["images"][2])] == [True, True]


def test_loopback_denoising_curves():
    from sdapi.scripts.loopback import denoising_strength
    assert [round(denoising_strength(i, 3, 0.8, 0.2, "Linear"), 6) for i in range(3)] == [0.8, 0.5, 0.2]
    assert round(denoising_strength(1, 3, 0.8, 0.2, "Aggressive"), 6) == round(0.8 - 0.6 * np.sin(np.pi / 4), 6)
    assert round(denoising_strength(1, 3, 0.8, 0.2, "Lazy"), 6) == round(0.8 - 0.6 * (1 - np.cos(np.pi / 4)), 6)
    assert denoising_strength(5, 1, 0.8, 0.2, "Linear") == 0.8


@pytest.mark.parametrize("args, fragment", [
    ([0, 0.5, "Linear", "None"], "loops must be at least 1"),
    ([600, 0.5, "Linear", "None"], "limit"),
    ([2, 0.5, "Linear", "CLIP"], "append_interrogation"),
])
def test_loopback_errors(client, args, fragment):
    error(post(client, "loopback", args, n_iter=2), 422, "InvalidRequest", fragment)


# -- Outpainting ---------------------------------------------------------------------------------------------------


def test_poor_mans_outpainting_grows_left_and_right(client):
    body, info = run(client, "poor man's outpainting", [8, 0, "fill", ["left", "right"]], n_iter=3)
    assert len(body["images"]) == 1 and size(body["images"][0]) == (128, 64)
    out = pixels(body["images"][0])
    # 80 pixels wide round up to 128: 32 on each side. Unblurred, the original is kept exactly.
    assert np.array_equal(out[:, 32:96], np.asarray(gradient(), dtype=int))
    assert out[:, :24].std() > 0 and out[:, 104:].std() > 0
    assert info["seed"] == 11 and info["all_seeds"] == [12]  # two tiles touch the new area: seeds 11, 12
    assert "Seed: 11," in info["infotexts"][0] and "Denoising strength: 0.6" in info["infotexts"][0]


def test_poor_mans_outpainting_defaults_by_name(client):
    """Named arguments; the rest take the UI defaults (masked content "fill", blur 4, every direction)."""
    body, info = run(client, "poor man's outpainting", {"pixels": 32}, width=128, height=128)
    assert [size(image) for image in body["images"]] == [(128, 128)]
    assert info["width"] == 128 and "Denoising strength: 0.6" in info["infotexts"][0]


@pytest.mark.parametrize("args, fragment", [
    ([64, 4, 0, ["left"]], "tile size"),
    ([8, 4, 7, ["left"]], "inpainting_fill"),
    ([8, 4, "mud", ["left"]], "inpainting_fill"),
    ([8, 4, 0, []], "nothing to paint"),
    ([8, 4, 0, 5], "direction"),
])
def test_poor_mans_outpainting_errors(client, args, fragment):
    error(post(client, "poor man's outpainting", args), 422, "InvalidRequest", fragment)


def test_outpainting_mk2_grows_right_deterministically(client):
    args = ["", 8, 2, ["right"], 1.0, 0.05]
    body, info = run(client, "outpainting mk2", args, seed=7)
    assert len(body["images"]) == 1 and size(body["images"][0]) == (128, 64)  # the canvas rounds up to 64
    out = pixels(body["images"][0])
    # Only the new strip is processed; the noise starts mask_blur pixels inside the original (as A1111's does).
    assert np.array_equal(out[:, :62], np.asarray(gradient(), dtype=int)[:, :62])
    assert out[:, 64:].std() > 0
    again, _ = run(client, "outpainting mk2", args, seed=7)
    assert np.array_equal(pixels(again["images"][0]), out)
    assert info["seed"] == 7 and info["width"] == 64 and "Seed: 7," in info["infotexts"][0]


def test_outpainting_mk2_batches_come_after_their_grid(client):
    body, info = run(client, "outpainting mk2", {"pixels": 8, "direction": "up", "mask_blur": 0}, n_iter=2)
    assert [size(image) for image in body["images"]] == [(128, 128), (64, 128), (64, 128)]
    assert info["index_of_first_image"] == 0  # as A1111, although the grid comes first


def test_matched_noise_keeps_the_known_area():
    from sdapi.scripts.matched_noise import matched_noise
    image = np.asarray(gradient(), dtype=np.float64) / 255
    mask = np.zeros_like(image)
    mask[:, 40:] = 1
    first = matched_noise(image * (1 - mask), mask)
    assert np.array_equal(first[:, :40], image[:, :40]) and np.array_equal(first, matched_noise(image * (1 - mask), mask))
    assert 0 <= first.min() and first.max() <= 1 and first[:, 40:].std() > 0


# -- Listings -----------------------------------------------------------------------------------------------------


def test_scripts_list_what_runs_in_a1111_order(client):
    assert client.get("/sdapi/v1/scripts").json() == {
        "txt2img": ["prompt matrix", "prompts from file or textbox", "x/y/z plot"],
        "img2img": ["loopback", "outpainting mk2", "poor man's outpainting", "prompt matrix",
                    "prompts from file or textbox", "sd upscale", "x/y/z plot"]}


def test_script_info_describes_each_control(client):
    infos = {(i["name"], i["is_img2img"]): i["args"] for i in client.get("/sdapi/v1/script-info").json()}
    upscale = infos[("sd upscale", True)]
    assert [a["label"] for a in upscale] == ["", "Tile overlap", "Upscaler", "Scale Factor"]
    assert upscale[1] == {"label": "Tile overlap", "value": 64, "minimum": 0, "maximum": 256, "step": 16,
                          "choices": None}
    assert upscale[2]["value"] == "None" and upscale[2]["choices"][:3] == ["None", "Lanczos", "Nearest"]
    assert [a["label"] for a in infos[("prompt matrix", False)]] == [
        "Put variable parts at start of prompt", "Use different seed for each picture", "Select prompt",
        "Select joining char", "Grid margins (px)"]
    assert infos[("loopback", True)][2] == {"label": "Denoising strength curve", "value": "Linear", "minimum": None,
                                            "maximum": None, "step": None,
                                            "choices": ["Aggressive", "Linear", "Lazy"]}
    assert [a["value"] for a in infos[("prompts from file or textbox", True)]] == [False, False, ""]
    assert infos[("poor man's outpainting", True)][3]["value"] == ["left", "right", "up", "down"]
    assert [a["label"] for a in infos[("outpainting mk2", True)]][1:] == [
        "Pixels to expand", "Mask blur", "Outpainting direction", "Fall-off exponent (lower=higher detail)",
        "Color variation"]


def test_docs_name_every_argument_of_each_script(client):
    from sdapi.protocol.scripts import BUILTIN_ARG_NAMES
    from sdapi.scripts.registry import SELECTABLE_SCRIPTS
    documented = dict(BUILTIN_ARG_NAMES)
    for script in SELECTABLE_SCRIPTS:
        if script.specs:
            assert documented.pop(script.title.lower()) == tuple(spec.name for spec in script.specs)
    assert documented == {}
    schema = client.get("/openapi.json").json()["components"]["schemas"]["StableDiffusionProcessingImg2Img"]
    (array,) = [s for s in schema["properties"]["script_args"]["anyOf"] if s.get("type") == "array"]
    assert "`info, overlap, upscaler_index, scale_factor`" in array["description"]
