"""A before/after table of image hashes over a fixed request set, to show a refactor changed no pixel.

Runs every request of ``REQUESTS`` through the HTTP API (FastAPI's TestClient, one process, 2 torch threads) over
the A1111 parity checkpoint (``../shared/fixtures/a1111-parity``, with its LoRA) and an inpainting demo checkpoint
built by code, and records per case the sha256 of each image's RGB pixels and the pixels themselves.

    python tools/image_hashes.py --out /tmp/before            # writes hashes.json and pixels.npz there
    python tools/image_hashes.py --out /tmp/after --compare /tmp/before

``--compare`` prints, per case, ``same`` or the largest per-channel difference in 0-255 levels, and exits 1 when
any case differs.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PARITY = ROOT.parent / "shared" / "fixtures" / "a1111-parity"

SAMPLERS = ("Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE", "DPM fast",
            "DPM adaptive", "LMS Karras", "DPM2 Karras", "DPM2 a Karras", "DPM++ 2S a Karras", "DPM++ 2M Karras",
            "DPM++ SDE Karras", "DDIM", "PLMS", "UniPC")
FEATURE_SAMPLERS = ("Euler a", "DPM++ 2M Karras", "DPM++ 2S a", "DDIM")
BASE = {"prompt": "a red fox in the snow", "negative_prompt": "blurry", "seed": 1234, "width": 64, "height": 64,
        "steps": 8, "cfg_scale": 7}


def _image_b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def requests_for(init_b64: str, mask_b64: str) -> dict[str, tuple[str, dict]]:
    """case name -> (path, body)."""
    cases: dict[str, tuple[str, dict]] = {}
    for sampler in SAMPLERS:
        cases[f"txt2img {sampler}"] = ("/sdapi/v1/txt2img", {**BASE, "sampler_name": sampler})
    for sampler in FEATURE_SAMPLERS:
        base = {**BASE, "sampler_name": sampler}
        cases[f"lora {sampler}"] = ("/sdapi/v1/txt2img", {**base, "prompt": BASE["prompt"] + " <lora:tiny-lora:0.8>"})
        cases[f"hires latent {sampler}"] = ("/sdapi/v1/txt2img", {**base, "enable_hr": True, "hr_scale": 2,
                                                                  "hr_upscaler": "Latent", "denoising_strength": 0.6})
        cases[f"hires lanczos {sampler}"] = ("/sdapi/v1/txt2img", {**base, "enable_hr": True, "hr_scale": 1.5,
                                                                   "hr_upscaler": "Lanczos",
                                                                   "denoising_strength": 0.5})
        cases[f"img2img {sampler}"] = ("/sdapi/v1/img2img", {**base, "init_images": [init_b64],
                                                             "denoising_strength": 0.6})
        cases[f"inpaint {sampler}"] = ("/sdapi/v1/img2img", {**base, "init_images": [init_b64], "mask": mask_b64,
                                                             "denoising_strength": 0.75, "inpainting_fill": 1,
                                                             "mask_blur": 4})
        cases[f"prompt edit {sampler}"] = ("/sdapi/v1/txt2img", {**base, "prompt": "a [red fox:blue cat:0.5] [x|y]"})
        cases[f"batch {sampler}"] = ("/sdapi/v1/txt2img", {**base, "batch_size": 2, "n_iter": 2})
        cases[f"long prompt {sampler}"] = ("/sdapi/v1/txt2img", {**base, "prompt": ", ".join(["a red fox"] * 40)})
        cases[f"subseed {sampler}"] = ("/sdapi/v1/txt2img", {**base, "subseed": 99, "subseed_strength": 0.4})
    for sampler in ("Euler a", "DPM++ 2M Karras", "DPM++ 2S a"):
        cases[f"AND {sampler}"] = ("/sdapi/v1/txt2img", {**BASE, "sampler_name": sampler,
                                                         "prompt": "a red fox AND a blue cat :0.7"})
    cases["xyz sampler x cfg"] = ("/sdapi/v1/txt2img", {
        **BASE, "sampler_name": "Euler a", "script_name": "x/y/z plot",
        "script_args": {"x_type": "Sampler", "x_values": "Euler a, DPM++ 2M Karras, DPM++ 2S a",
                        "y_type": "CFG Scale", "y_values": "4, 9"}})
    cases["tiling"] = ("/sdapi/v1/txt2img", {**BASE, "sampler_name": "Euler a", "tiling": True})
    cases["ensd"] = ("/sdapi/v1/txt2img", {**BASE, "sampler_name": "Euler a", "batch_size": 2,
                                           "override_settings": {"eta_noise_seed_delta": 31337}})
    cases["clip skip"] = ("/sdapi/v1/txt2img", {**BASE, "sampler_name": "DPM++ 2M Karras",
                                                "override_settings": {"CLIP_stop_at_last_layers": 2}})
    cases["inpainting model txt2img"] = ("/sdapi/v1/txt2img", {**BASE, "sampler_name": "Euler a",
                                                               "override_settings": {
                                                                   "sd_model_checkpoint": "demo-inpainting"}})
    for sampler in ("Euler a", "DDIM"):
        cases[f"inpainting model inpaint {sampler}"] = ("/sdapi/v1/img2img", {
            **BASE, "sampler_name": sampler, "init_images": [init_b64], "mask": mask_b64, "denoising_strength": 0.8,
            "override_settings": {"sd_model_checkpoint": "demo-inpainting"}})
    return cases


def pixels_of(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def run(out: Path) -> dict[str, list[str]]:
    import torch
    from fastapi.testclient import TestClient

    from sdapi.app import create_app
    from sdapi.engine.demo_models import write_demo_checkpoint
    from sdapi.settings import Settings

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="sdapi-hashes-"))
    models = work / "models" / "Stable-diffusion"
    loras = work / "models" / "Lora"
    models.mkdir(parents=True)
    loras.mkdir(parents=True)
    for name in ("tiny-sd15.safetensors", "tiny-sd15.yaml", "tiny-clip"):
        os.symlink(PARITY / name, models / name)
    os.symlink(PARITY / "tiny-lora.safetensors", loras / "tiny-lora.safetensors")
    write_demo_checkpoint(models / "demo-inpainting.safetensors", seed=5, in_channels=9)
    settings = Settings(data_dir=work, cache_dir=work / "cache", num_threads=2, ckpt=models / "tiny-sd15.safetensors")
    cases = requests_for(_image_b64(PARITY / "init-64.png"), _image_b64(PARITY / "mask-64-right-half.png"))
    only = os.environ.get("SDAPI_HASH_CASES")
    if only:
        cases = {name: case for name, case in cases.items() if name in only.split(",")}
    hashes: dict[str, list[str]] = {}
    arrays: dict[str, np.ndarray] = {}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for name, (path, body) in cases.items():
            response = client.post(path, json=body)
            if response.status_code != 200:
                hashes[name] = [f"HTTP {response.status_code}: {response.text[:200]}"]
                print(f"{name}: HTTP {response.status_code}", flush=True)
                continue
            images = [pixels_of(b64) for b64 in response.json()["images"]]
            hashes[name] = [hashlib.sha256(image.tobytes()).hexdigest() for image in images]
            for i, image in enumerate(images):
                arrays[f"{name}#{i}"] = image
            print(f"{name}: {len(images)} image(s)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hashes.json").write_text(json.dumps(hashes, indent=1) + "\n")
    np.savez_compressed(out / "pixels.npz", **arrays)
    return hashes


def compare(out: Path, before: Path) -> int:
    old = json.loads((before / "hashes.json").read_text())
    new = json.loads((out / "hashes.json").read_text())
    old_px, new_px = np.load(before / "pixels.npz"), np.load(out / "pixels.npz")
    differing = 0
    for name in old:
        if old[name] == new.get(name):
            print(f"same      {name}")
            continue
        differing += 1
        diffs = []
        for i in range(len(old[name])):
            key = f"{name}#{i}"
            if key in old_px and key in new_px and old_px[key].shape == new_px[key].shape:
                diffs.append(int(np.abs(old_px[key].astype(int) - new_px[key].astype(int)).max()))
            else:
                diffs.append(-1)
        print(f"DIFFERENT {name}: max |diff| per image {diffs}")
    print(f"{len(old) - differing} of {len(old)} cases identical")
    return 1 if differing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, help="a previous --out folder")
    args = parser.parse_args()
    if not (PARITY / "tiny-sd15.safetensors").is_file():
        print(f"needs the parity fixtures at {PARITY}", file=sys.stderr)
        return 2
    run(args.out)
    return compare(args.out, args.compare) if args.compare else 0


if __name__ == "__main__":
    sys.exit(main())
