"""Files a user drops into ``models/``: ESRGAN / Real-ESRGAN upscalers and an inpainting checkpoint.

One app over its own data dir (the session's demo models plus the files written here), so the session app's
listings stay as the recordings expect.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import decode_png

FEAT, GROW = 8, 4


def _conv(out_ch: int, in_ch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(out_ch, in_ch, 3, 3, generator=gen) * 0.05, torch.randn(out_ch, generator=gen) * 0.01


def esrgan_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny x4 ESRGAN in the original key layout (``model.N``, ``model.1.sub.N.RDBk.convj.0``), by hand."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}

    def put(name: str, out_ch: int, in_ch: int) -> None:
        sd[f"{name}.weight"], sd[f"{name}.bias"] = _conv(out_ch, in_ch, gen)

    put("model.0", FEAT, 3)
    for rdb in (1, 2, 3):
        for j in range(1, 6):
            put(f"model.1.sub.0.RDB{rdb}.conv{j}.0", GROW if j < 5 else FEAT, FEAT + (j - 1) * GROW)
    put("model.1.sub.1", FEAT, FEAT)
    for index in (3, 6, 8):
        put(f"model.{index}", FEAT, FEAT)
    put("model.10", 3, FEAT)
    return sd


def realesrgan_x2_state_dict(seed: int = 1, in_channels: int = 12) -> dict[str, torch.Tensor]:
    """A tiny Real-ESRGAN in BasicSR layout: x2plus (pixel-unshuffled input, 12 channels) or, with
    ``in_channels=3``, x4plus."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}

    def put(name: str, out_ch: int, in_ch: int) -> None:
        sd[f"{name}.weight"], sd[f"{name}.bias"] = _conv(out_ch, in_ch, gen)

    put("conv_first", FEAT, in_channels)
    for rdb in (1, 2, 3):
        for j in range(1, 6):
            put(f"body.0.rdb{rdb}.conv{j}", GROW if j < 5 else FEAT, FEAT + (j - 1) * GROW)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        put(name, FEAT, FEAT)
    put("conv_last", 3, FEAT)
    return sd


def compact_state_dict(seed: int = 2) -> dict[str, torch.Tensor]:
    """A tiny SRVGGNetCompact x4 (conv, PReLU, conv, PReLU, conv to 3*16 channels)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    sd["body.0.weight"], sd["body.0.bias"] = _conv(FEAT, 3, gen)
    sd["body.1.weight"] = torch.full((FEAT,), 0.25)
    sd["body.2.weight"], sd["body.2.bias"] = _conv(FEAT, FEAT, gen)
    sd["body.3.weight"] = torch.full((FEAT,), 0.25)
    sd["body.4.weight"], sd["body.4.bias"] = _conv(48, FEAT, gen)
    sd["body.4.weight"] *= 20  # a residual large enough to tell from plain upscaling
    return sd


def write_unit_latent_checkpoint(path, seed: int = 3):
    """A demo checkpoint whose VAE scaling factor gives unit-scale latents, like a real SD VAE."""
    from sdapi.engine.checkpoint_loader import DIFFUSERS_CONFIG_KEY
    from sdapi.engine.demo_models import build_tiny_sd15_pipeline, diffusers_config_json
    from sdapi.engine.ldm_layout import save_single_file
    from sdapi.engine.vae_io import images_to_pixels

    pipe = build_tiny_sd15_pipeline(seed)
    with torch.no_grad():
        mean = pipe.vae.encode(images_to_pixels([gradient()])).latent_dist.mean
    pipe.vae.register_to_config(scaling_factor=float(1.0 / mean.std()))
    save_single_file(pipe, path, {DIFFUSERS_CONFIG_KEY: diffusers_config_json(pipe)})


def gradient(width: int = 64, height: int = 64) -> Image.Image:
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    array = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), ((x // 8 + y // 8) % 2) * 200], axis=2)
    return Image.fromarray(array.astype(np.uint8))


def b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def files_client(data_dir, fresh_data_dir, tmp_path_factory):
    from fastapi.testclient import TestClient

    from sdapi.app import create_app
    from sdapi.engine.demo_models import write_demo_checkpoint
    from sdapi.settings import Settings

    root = fresh_data_dir(data_dir)
    models = root / "models"
    write_demo_checkpoint(models / "Stable-diffusion" / "demo-inpaint.safetensors", 5, in_channels=9)
    write_unit_latent_checkpoint(models / "Stable-diffusion" / "demo-unit-latents.safetensors")
    for folder in ("ESRGAN", "RealESRGAN"):
        (models / folder).mkdir()
    torch.save(esrgan_state_dict(), models / "ESRGAN" / "tiny-esrgan.pth")
    torch.save({"params_ema": realesrgan_x2_state_dict()}, models / "RealESRGAN" / "RealESRGAN_x2plus.pth")
    torch.save({"params": compact_state_dict()}, models / "RealESRGAN" / "realesr-general-x4v3.pth")
    settings = Settings(data_dir=root, cache_dir=tmp_path_factory.mktemp("files-cache"), num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def checkpoint_title(client, name: str) -> str:
    return next(m["title"] for m in client.get("/sdapi/v1/sd-models").json() if m["model_name"] == name)


# -- upscaler files ---------------------------------------------------------------------------------------------


def test_model_files_are_listed_after_the_pixel_upscalers(files_client):
    items = files_client.get("/sdapi/v1/upscalers").json()
    assert [u["name"] for u in items] == ["None", "Lanczos", "Nearest", "tiny-esrgan", "R-ESRGAN 2x+",
                                         "R-ESRGAN General 4xV3"]
    esrgan = items[3]
    assert esrgan["model_name"] == "ESRGAN_4x" and esrgan["model_path"].endswith("ESRGAN/tiny-esrgan.pth")
    assert items[4]["scale"] == 2.0
    realesrgan = files_client.get("/sdapi/v1/realesrgan-models").json()
    assert [(m["name"], m["scale"]) for m in realesrgan] == [("R-ESRGAN 2x+", 2.0), ("R-ESRGAN General 4xV3", 4.0)]


def test_a_removed_file_is_no_longer_listed(files_client):
    from sdapi.engine.demo_models import MODELS_SUBDIR

    root = files_client.app.state.sdapi.settings.data_dir
    extra = root / MODELS_SUBDIR.parent / "ESRGAN" / "gone.pth"
    torch.save(esrgan_state_dict(9), extra)
    assert "gone" in [u["name"] for u in files_client.get("/sdapi/v1/upscalers").json()]
    extra.unlink()
    assert "gone" not in [u["name"] for u in files_client.get("/sdapi/v1/upscalers").json()]


def _extras(client, **payload) -> dict:
    r = client.post("/sdapi/v1/extra-single-image", json={"image": b64(gradient()), **payload})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("name", ["tiny-esrgan", "R-ESRGAN 2x+", "R-ESRGAN General 4xV3"])
def test_model_upscaler_is_used_by_extras(files_client, name):
    body = _extras(files_client, upscaling_resize=2, upscaler_1=name)
    image = decode_png(body["image"])
    assert image.size == (128, 128)
    assert body["html_info"] == f"<p>Postprocess upscale by: 2.0, Postprocess upscaler: {name}</p>"
    lanczos = decode_png(_extras(files_client, upscaling_resize=2, upscaler_1="Lanczos")["image"])
    assert np.abs(np.asarray(image, dtype=int) - np.asarray(lanczos, dtype=int)).mean() > 5


def test_extras_output_is_the_network_applied_to_bgr_input(files_client):
    """The file's network runs on the image (BGR, [0, 1]), then Lanczos brings x4 down to the x2 asked for."""
    from sdapi.engine.sr_arch import build_network

    net = build_network(esrgan_state_dict())
    source = np.asarray(gradient(), dtype=np.float32)[:, :, ::-1] / 255
    with torch.no_grad():
        out = net(torch.from_numpy(np.ascontiguousarray(source.transpose(2, 0, 1)))[None])[0]
    expected = (255 * out.clamp(0, 1).numpy().transpose(1, 2, 0)).astype(np.uint8)[:, :, ::-1]
    expected = Image.fromarray(np.ascontiguousarray(expected)).resize((128, 128), Image.Resampling.LANCZOS)
    got = decode_png(_extras(files_client, upscaling_resize=2, upscaler_1="tiny-esrgan")["image"])
    # 64x64 fits one 192 tile (padded with black, as A1111's grid does): the borders see the padding.
    diff = np.abs(np.asarray(got, dtype=int) - np.asarray(expected, dtype=int))[8:-8, 8:-8]
    assert diff.max() <= 1


def test_model_upscaler_in_hires_fix(files_client):
    r = files_client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2,
                                                     "enable_hr": True, "hr_upscaler": "tiny-esrgan",
                                                     "denoising_strength": 0.4})
    assert r.status_code == 200, r.text
    assert decode_png(r.json()["images"][0]).size == (128, 128)
    assert json.loads(r.json()["info"])["extra_generation_params"]["Hires upscaler"] == "tiny-esrgan"


def test_model_upscaler_for_img2img_option(files_client):
    r = files_client.post("/sdapi/v1/img2img", json={
        "init_images": [b64(gradient(32, 32))], "width": 64, "height": 64, "steps": 2, "denoising_strength": 0.3,
        "override_settings": {"upscaler_for_img2img": "tiny-esrgan"}})
    assert r.status_code == 200, r.text


# -- inpainting checkpoint --------------------------------------------------------------------------------------


def test_inpainting_checkpoint_txt2img(files_client):
    title = checkpoint_title(files_client, "demo-inpaint")
    r = files_client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2, "seed": 3,
                                                     "override_settings": {"sd_model_checkpoint": title}})
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert info["is_using_inpainting_conditioning"] is True
    assert "Denoising strength: 0, Conditional mask weight: 1.0, Version" in info["infotexts"][0]


def test_inpainting_checkpoint_sees_the_mask(files_client):
    title = checkpoint_title(files_client, "demo-inpaint")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))

    def run(**payload):
        r = files_client.post("/sdapi/v1/img2img", json={
            "init_images": [b64(gradient())], "width": 64, "height": 64, "steps": 3, "seed": 4, "mask_blur": 0,
            "inpaint_full_res": False, "inpainting_fill": 1, "denoising_strength": 0.8,
            "override_settings": {"sd_model_checkpoint": title}, **payload})
        assert r.status_code == 200, r.text
        assert json.loads(r.json()["info"])["is_using_inpainting_conditioning"] is True
        return np.asarray(decode_png(r.json()["images"][0]), dtype=int)

    masked, unmasked = run(mask=b64(mask)), run()
    inside = (slice(20, 44), slice(20, 44))
    # The UNet's extra channels differ (masked-image latent, mask), so the repainted area differs too.
    assert np.abs(masked[inside] - unmasked[inside]).mean() > 1


def test_inpainting_conditioning_channels(files_client):
    from sdapi.engine.image_cond import img2img_image_cond, txt2img_image_cond
    from sdapi.engine.vae_io import encode_pixels, images_to_pixels

    state = files_client.app.state.sdapi
    model = state.engine.model(state.catalog.find("demo-inpaint.safetensors").filename)
    pixels = images_to_pixels([gradient()])
    latent = encode_pixels(model, pixels)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))
    cond = img2img_image_cond(model, pixels, latent, mask)
    assert cond.shape == (1, 5, 8, 8)
    assert torch.equal(cond[0, 0, :, :4], torch.zeros(8, 4)) and torch.equal(cond[0, 0, :, 4:], torch.ones(8, 4))
    blacked = pixels.clone()
    blacked[..., 32:] = 0
    assert torch.allclose(cond[:, 1:], encode_pixels(model, blacked), atol=1e-6)
    full = txt2img_image_cond(model, 2, 64, 64)
    assert full.shape == (2, 5, 8, 8) and torch.equal(full[:, 0], torch.ones(2, 8, 8))


# -- a checkpoint with unit-scale latents -----------------------------------------------------------------------


def test_denoising_zero_gives_back_the_init_image(files_client):
    from sdapi.engine.vae_io import decode_latents
    from sdapi.engine.vae_io import encode_pixels, images_to_pixels

    title = checkpoint_title(files_client, "demo-unit-latents")
    state = files_client.app.state.sdapi
    model = state.engine.model(state.catalog.find("demo-unit-latents.safetensors").filename)
    reference = np.asarray(decode_latents(model, encode_pixels(model, images_to_pixels([gradient()])))[0], dtype=int)

    def run(denoising_strength, seed=7, prompt="a cat"):
        r = files_client.post("/sdapi/v1/img2img", json={
            "prompt": prompt, "init_images": [b64(gradient())], "width": 64, "height": 64, "steps": 4, "seed": seed,
            "denoising_strength": denoising_strength, "override_settings": {"sd_model_checkpoint": title}})
        assert r.status_code == 200, r.text
        return np.asarray(decode_png(r.json()["images"][0]), dtype=int)

    zero = run(0)
    assert np.abs(zero - reference).mean() < 3
    assert np.abs(zero - run(0, seed=99, prompt="a dog")).mean() < 3
    assert np.abs(run(0.75) - reference).mean() > 4 * np.abs(zero - reference).mean()
