"""How chaotic a parity case is: replay it with ±1 added to a random 3% of the first-pass pixels.

The hires fix with a pixel upscaler decodes the first pass to 8 bits before upscaling and encoding it again, so
last-bit differences in the first pass (ours and A1111's differ by ±1 on about 1% of pixels) can move the final
image far. This prints, per run, the PSNR of the perturbed result against A1111's image and against our own
unperturbed one: the spread is the bound the parity suite can honestly assert for such a case.

    .venv/bin/python benchmarks/parity_chaos.py dpmpp-2m-karras-hires-lanczos euler-a-hires-lanczos --runs 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--fraction", type=float, default=0.03, help="share of first-pass pixels moved by ±1")
    args = parser.parse_args()

    import numpy as np
    import torch
    from fastapi.testclient import TestClient
    from PIL import Image

    import sdapi.engine.generation as generation
    from sdapi.app import create_app
    from sdapi.settings import Settings
    from tests.parity.replay import compare, decode_rgb, load_case, make_data_dir

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    decode = generation.decode_latents
    perturb = {"on": False}

    def perturbed_decode(model, latents):
        images = decode(model, latents)
        if not perturb["on"]:
            return images
        moved = []
        for image in images:
            pixels = np.asarray(image).astype(int)
            chosen = rng.random(pixels.shape[:2]) < args.fraction
            pixels[chosen] += rng.choice([-1, 1], size=(int(chosen.sum()), 3))
            moved.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))
        return moved

    generation.decode_latents = perturbed_decode
    work = Path(tempfile.mkdtemp(prefix="sdapi-chaos-"))
    settings = Settings(data_dir=make_data_dir(work / "data"), cache_dir=work / "cache", num_threads=2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for name in args.cases:
            case = load_case(name)
            theirs = decode_rgb(case["response"]["images"][0])
            perturb["on"] = False
            ours = decode_rgb(client.post(case["path"], json=case["request"]).json()["images"][0])
            print(f"{name}: ours vs A1111 {compare(ours, theirs).psnr:.1f} dB")
            perturb["on"] = True
            for _ in range(args.runs):
                moved = decode_rgb(client.post(case["path"], json=case["request"]).json()["images"][0])
                print(f"  perturbed: vs A1111 {compare(moved, theirs).psnr:.1f} dB, "
                      f"vs ours {compare(moved, ours).psnr:.1f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
