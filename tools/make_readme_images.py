"""Make the README's pictures from a real server on the built-in demo checkpoint, so they are never drawn by hand.

Starts ``sdapi serve`` over a throw-away data dir with an empty models folder (so it serves the demo checkpoint the
package ships, written fresh into a throw-away cache dir), then

* ``docs/images/ui.png``: headless Chromium (Debian's, driven by Playwright) opens the built-in page, generates a
  batch from the Generate tab and takes a screenshot;
* ``docs/images/demo-xyz.png``: the grid of an X/Y/Z plot (colours x shapes by Prompt S/R), as the API returns it.

Everything is fixed (prompts, seeds, sizes, window), so a rerun with the same demo checkpoint gives the same
pictures; rerun it when the demo checkpoint changes.

    .venv/bin/python tools/make_readme_images.py            # writes docs/images/ui.png and demo-xyz.png
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
READY_TIMEOUT_S = 300
REQUEST_TIMEOUT_S = 1800
MAX_BYTES = 300_000  # what the README may carry per picture
VIEWPORT = {"width": 1280, "height": 690}

PROMPT = "a red circle on a blue background"
SIZE = 128  # what the demo checkpoint was trained for
GENERATE = {"steps": 20, "cfg_scale": 7, "seed": 1, "batch_size": 3, "sampler_name": "Euler a"}  # one gallery row
# The grid: the prompt's colour along X and its shape along Y, one seed for every cell.
COLOURS = ["red", "green", "yellow", "white"]
SHAPES = ["circle", "square", "triangle", "star"]
PLOT = {"prompt": PROMPT, "negative_prompt": "", "width": SIZE, "height": SIZE, "sampler_name": "Euler a",
        "steps": 20, "cfg_scale": 7, "seed": 1,
        "script_name": "x/y/z plot",
        "script_args": {"x_type": "Prompt S/R", "x_values": ", ".join(COLOURS),
                        "y_type": "Prompt S/R", "y_values": ", ".join(SHAPES)}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(work: Path) -> tuple[subprocess.Popen, str, Path]:
    """``sdapi serve`` on an empty models folder (the built-in demo checkpoint); returns (process, URL, log)."""
    port = free_port()
    log_path = work / "server.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch's threads crawl on a shared machine otherwise
    env.pop("SDAPI_DATA_DIR", None)
    cmd = [sys.executable, "-m", "sdapi", "serve", "--data-dir", str(work / "data"), "--cache-dir",
           str(work / "cache"), "--port", str(port), "--threads", "2"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/sdapi/v1/sd-models", timeout=2).status_code == 200:
                return proc, url, log_path
        except requests.RequestException:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"the server was not ready after {READY_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")


def save_small(image_bytes: bytes, path: Path) -> None:
    """Write a PNG as the server or the browser made it; one over MAX_BYTES is reduced to 256 colours (without
    dithering, so the result stays the same from run to run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(image_bytes) > MAX_BYTES:
        image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
        buffer = io.BytesIO()
        image.quantize(256, dither=Image.Dither.NONE).save(buffer, format="PNG", optimize=True)
        image_bytes = buffer.getvalue()
    path.write_bytes(image_bytes)
    note = "" if len(image_bytes) <= MAX_BYTES else f" (over the README's {MAX_BYTES} bytes)"
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(image_bytes)} bytes{note}")


def screenshot_page(url: str, chromium: Path) -> bytes:
    """The page's Generate tab after one batch, as a person sees it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(REQUEST_TIMEOUT_S * 1000)
            page.goto(f"{url}/ui")
            page.wait_for_selector("body[data-ready=true]")
            page.fill("textarea[name=prompt]", PROMPT)
            for name in ("width", "height"):
                page.fill(f"input[name={name}]", str(SIZE))
            for name in ("steps", "cfg_scale", "seed", "batch_size"):
                page.fill(f"input[name={name}]", str(GENERATE[name]))
            page.select_option("select[name=sampler_name]", GENERATE["sampler_name"])
            page.click("#generate-button")
            page.wait_for_function(f"document.querySelectorAll('#gallery .card img').length === "
                                   f"{GENERATE['batch_size']} && [...document.querySelectorAll('#gallery .card img')]"
                                   f".every(img => img.complete && img.naturalWidth === {SIZE})")
            # The strip says how long this run took; a fixed word keeps the picture the same from run to run.
            page.evaluate("document.getElementById('progress-text').textContent = 'Finished'")
            return page.screenshot()
        finally:
            browser.close()


def plot_grid(url: str) -> bytes:
    """The X/Y/Z plot's grid image, as the API returns it."""
    answer = requests.post(f"{url}/sdapi/v1/txt2img", json=PLOT, timeout=REQUEST_TIMEOUT_S)
    body = answer.json()
    if answer.status_code != 200:
        raise SystemExit(f"the plot failed: {json.dumps(body)[:2000]}")
    return base64.b64decode(body["images"][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for the PNGs")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="the Chromium to drive")
    args = parser.parse_args()
    if not args.chromium.exists():
        raise SystemExit(f"no Chromium at {args.chromium} (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="sdapi-readme-") as tmp:
        proc, url, log_path = start_server(Path(tmp))
        try:
            save_small(screenshot_page(url, args.chromium), args.out / "ui.png")
            save_small(plot_grid(url), args.out / "demo-xyz.png")
        except BaseException:
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
