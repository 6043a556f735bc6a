"""SDXL through HTTP on the tiny SDXL checkpoint (original single-file layout, random weights): listing, every
sampler, A1111's infotext, prompt features and SDXL options reaching the UNet, switching with SD 1.5, fp16 files,
and the hires fix and img2img, which run on the same core."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from sdapi.app import create_app
from sdapi.engine.sampling import core
from sdapi.engine.sampling.schedules import align_your_steps_sigmas
from sdapi.settings import Settings
from tests.conftest import decode_png, txt2img

SDXL = "demo-sdxl.safetensors"
SDXL_FP16 = "demo-sdxl-fp16.safetensors"
SD15 = "demo-sd15.safetensors"


@pytest.fixture(scope="module")
def sdxl_dir(data_dir, tmp_path_factory):
    """A data dir with the SD 1.5 demo checkpoint, the tiny SDXL one and an fp16 copy of it."""
    import torch

    from sdapi.engine.demo_sdxl import write_demo_sdxl, write_demo_sdxl_checkpoint

    root = tmp_path_factory.mktemp("sdxl-data")
    models = root / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(data_dir / "models" / "Stable-diffusion" / SD15, models / SD15)
    write_demo_sdxl(root)
    write_demo_sdxl_checkpoint(models / SDXL_FP16, seed=0, dtype=torch.float16)
    return root


@pytest.fixture(scope="module")
def sdxl_client(sdxl_dir, tmp_path_factory):
    settings = Settings(data_dir=sdxl_dir, cache_dir=tmp_path_factory.mktemp("sdxl-cache"), num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def generate(client, checkpoint: str = SDXL, **payload) -> dict:
    return txt2img(client, **{"seed": 7, "steps": 3, **payload,
                              "override_settings": {"sd_model_checkpoint": checkpoint,
                                                    **payload.get("override_settings", {})}})


def pixels(body: dict, index: int = 0) -> np.ndarray:
    return np.asarray(decode_png(body["images"][index])).astype(int)


def test_sdxl_files_are_listed_with_a1111_titles_and_hashes(sdxl_client, sdxl_dir):
    generate(sdxl_client)  # A1111 shows a file's hash once it has been computed (on load)
    models = {m["model_name"]: m for m in sdxl_client.get("/sdapi/v1/sd-models").json()}
    assert {"demo-sdxl", "demo-sdxl-fp16", "demo-sd15"} <= set(models)
    sha256 = hashlib.sha256((sdxl_dir / "models" / "Stable-diffusion" / SDXL).read_bytes()).hexdigest()
    assert models["demo-sdxl"]["sha256"] == sha256
    assert models["demo-sdxl"]["title"] == f"{SDXL} [{sha256[:10]}]"


def test_sdxl_txt2img_gives_an_image_with_a1111_infotext_and_info(sdxl_client, sdxl_dir):
    body = generate(sdxl_client, prompt="a photo of a cat", width=64, height=48)
    image = decode_png(body["images"][0])
    assert image.size == (64, 48) and np.asarray(image).std() > 0
    sha256 = hashlib.sha256((sdxl_dir / "models" / "Stable-diffusion" / SDXL).read_bytes()).hexdigest()
    info = json.loads(body["info"])
    assert info["sd_model_hash"] == sha256[:10] and info["width"] == 64 and info["height"] == 48
    assert info["infotexts"][0] == (
        "a photo of a cat\nSteps: 3, Sampler: Euler, CFG scale: 7.0, Seed: 7, Size: 64x48, "
        f"Model hash: {sha256[:10]}, Model: demo-sdxl, Seed resize from: -1x-1, Denoising strength: 0, "
        "Version: v1.2.1")
    assert image.info["parameters"] == info["infotexts"][0]


def _sampler_names() -> list[str]:
    from sdapi.engine.sampling.registry import SAMPLERS

    return [spec.name for spec in SAMPLERS]


@pytest.mark.parametrize("sampler", _sampler_names())
def test_every_sampler_runs_on_sdxl_and_is_deterministic(sdxl_client, sampler):
    first = generate(sdxl_client, sampler_name=sampler, prompt="a red fox")
    assert json.loads(first["info"])["sampler_name"] == sampler
    image = pixels(first)
    assert image.std() > 0
    assert np.array_equal(image, pixels(generate(sdxl_client, sampler_name=sampler, prompt="a red fox")))


@pytest.mark.parametrize("variant", [
    {"prompt": "a (red:1.6) fox"},
    {"prompt": "a red fox BREAK in snow"},
    {"prompt": "a [blue:red:2] fox"},  # edits and alternation: the first steps, which shape the image, differ
    {"prompt": "a [blue|red] fox"},
    {"prompt": "a red fox AND a blue bird"},
    {"negative_prompt": "blurry"},
    {"override_settings": {"sdxl_crop_top": 256}},
    {"override_settings": {"sdxl_crop_left": 256}},
    {"width": 64, "height": 64, "override_settings": {"sdxl_clip_l_skip": True, "CLIP_stop_at_last_layers": 3}},
])
def test_prompt_features_and_sdxl_options_change_the_image(sdxl_client, variant):
    base = pixels(generate(sdxl_client, prompt="a red fox"))
    changed = pixels(generate(sdxl_client, **{"prompt": "a red fox", **variant}))
    assert np.abs(base - changed).mean() > 0.5


def test_clip_skip_alone_does_not_change_sdxl(sdxl_client):
    """A1111's SDXL path keeps CLIP-L's penultimate layer unless ``sdxl_clip_l_skip`` is on."""
    base = pixels(generate(sdxl_client, prompt="a red fox"))
    skipped = pixels(generate(sdxl_client, prompt="a red fox", override_settings={"CLIP_stop_at_last_layers": 3}))
    assert np.array_equal(base, skipped)


def test_switching_between_sd15_and_sdxl_with_override_settings(sdxl_client):
    xl = generate(sdxl_client, SDXL)
    sd = generate(sdxl_client, SD15)
    xl_again = generate(sdxl_client, SDXL)
    assert "Model: demo-sdxl," in json.loads(xl["info"])["infotexts"][0]
    assert "Model: demo-sd15," in json.loads(sd["info"])["infotexts"][0]
    assert np.array_equal(pixels(xl), pixels(xl_again)) and not np.array_equal(pixels(xl), pixels(sd))


def test_switching_with_the_options_endpoint(sdxl_client):
    try:
        assert sdxl_client.post("/sdapi/v1/options", json={"sd_model_checkpoint": SDXL}).status_code == 200
        body = txt2img(sdxl_client, seed=7, steps=3)
        assert "Model: demo-sdxl," in json.loads(body["info"])["infotexts"][0]
    finally:
        sdxl_client.post("/sdapi/v1/options", json={"sd_model_checkpoint": SD15})


def test_an_fp16_sdxl_file_generates_like_the_fp32_one(sdxl_client):
    full, half = pixels(generate(sdxl_client, SDXL)), pixels(generate(sdxl_client, SDXL_FP16))
    assert np.abs(full - half).mean() < 3


def test_sdxl_batches_give_one_image_per_seed(sdxl_client):
    body = generate(sdxl_client, batch_size=2, n_iter=2)
    info = json.loads(body["info"])
    assert len(body["images"]) == 4 and info["all_seeds"] == [7, 8, 9, 10]
    assert np.array_equal(pixels(body, 0), pixels(generate(sdxl_client)))


def test_sdxl_hires_fix_runs_at_the_hires_size(sdxl_client):
    body = generate(sdxl_client, enable_hr=True, hr_scale=2, hr_upscaler="Latent", denoising_strength=0.5)
    assert decode_png(body["images"][0]).size == (128, 128)
    pixel = generate(sdxl_client, enable_hr=True, hr_resize_x=96, hr_resize_y=96, hr_upscaler="Lanczos",
                     denoising_strength=0.5)
    assert decode_png(pixel["images"][0]).size == (96, 96)


def test_sdxl_img2img(sdxl_client):
    source = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    source.save(buffer, format="PNG")
    body = {"init_images": [base64.b64encode(buffer.getvalue()).decode()], "prompt": "a red fox", "seed": 7,
            "steps": 4, "width": 64, "height": 64, "denoising_strength": 0.5,
            "override_settings": {"sd_model_checkpoint": SDXL}}
    r = sdxl_client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    out = pixels(r.json())
    assert out.shape == (64, 64, 3) and "Model: demo-sdxl," in json.loads(r.json()["info"])["infotexts"][0]
    r2 = sdxl_client.post("/sdapi/v1/img2img", json={**body, "denoising_strength": 0.9})
    assert not np.array_equal(out, pixels(r2.json()))


def test_the_hires_pass_is_conditioned_on_the_hires_size(sdxl_client):
    """A1111's ``calculate_hr_conds``: SDXL's size numbers are the upscaled size in the second pass."""
    generate(sdxl_client)
    engine = sdxl_client.app.state.sdapi.engine
    unet = engine.model(next(path for path in engine.loaded() if path.name == SDXL)).unet
    seen = []

    def record(module, args, kwargs):
        seen.append(kwargs["added_cond_kwargs"]["time_ids"][0].tolist())

    handle = unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        generate(sdxl_client, width=64, height=48, enable_hr=True, hr_scale=2, hr_upscaler="Latent",
                 denoising_strength=0.5, override_settings={"sdxl_crop_top": 8})
    finally:
        handle.remove()
    assert seen[0] == [48.0, 64.0, 8.0, 0.0, 48.0, 64.0]
    assert seen[-1] == [96.0, 128.0, 8.0, 0.0, 96.0, 128.0]


def test_align_your_steps_takes_its_sdxl_table_on_sdxl(sdxl_client, monkeypatch):
    seen = []
    real = core.a1111_sigmas

    def spy(*args):
        sigmas = real(*args)
        seen.append(sigmas)
        return sigmas

    monkeypatch.setattr(core, "a1111_sigmas", spy)
    body = generate(sdxl_client, sampler_name="Euler", scheduler="Align Your Steps", steps=10, seed=1)
    assert "Schedule type: Align Your Steps" in json.loads(body["info"])["infotexts"][0]
    # NVIDIA's SDXL table differs from the SD 1.5 one from its second value on (6.315 vs 6.475), interpolated to 10.
    assert len(seen) == 1 and not torch.equal(seen[0], align_your_steps_sigmas(10, sdxl=False))
    assert torch.equal(seen[0], align_your_steps_sigmas(10, sdxl=True))


def test_sdxl_live_previews_use_sdxl_latent_colours(sdxl_client, monkeypatch):
    control = sdxl_client.app.state.sdapi.control
    seen = []
    step = control.step

    def keep(number, preview=None):
        seen.append(preview)
        step(number, preview)

    monkeypatch.setattr(control, "step", keep)
    generate(sdxl_client, steps=2)
    assert seen and all(preview.sdxl for preview in seen) and seen[-1].image() is not None
