"""Probe a fresh ``sdapi serve`` the way an attacker or a careless client would, and check it holds.

Starts a real server process over a throw-away data dir (the demo checkpoints), warms it up with one generation,
records its memory (``/sdapi/v1/memory``), then sends the probe set: oversized and non-finite values, paths
outside the allowed folders, bad overrides, huge X/Y/Z ranges, bad images. Afterwards it checks that

* every probe got a 4xx in A1111's envelope (or a 500 A1111 itself gives for that input),
* no answer shows a server path (other than one the probe itself sent),
* nothing appeared in the folder the path probes aimed at,
* the server still generates, and its memory is within 10 % of where it started.

    .venv/bin/python tools/probe_server.py            # prints one line per probe and a summary; exit 1 on a failure
"""

from __future__ import annotations

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
SMALL = {"prompt": "a photo of a cat", "width": 64, "height": 64, "steps": 2}
# A1111's recorded 500s: an unknown override key, an init image that is not base64.
A1111_500 = {"KeyError", "HTTPException"}
PREPROCESS = {"process_width": 64, "process_height": 64, "preprocess_txt_action": "ignore",
              "process_keep_original_size": False, "process_flip": False, "process_split": False,
              "process_caption": False}


def png_b64(size=(64, 64)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def probes(outside: Path) -> list[tuple[str, str, object]]:
    """``(name, path, JSON body or raw text)``: every request should be refused."""
    image = png_b64()
    t2i = "/sdapi/v1/txt2img"
    found = [
        ("huge side", t2i, {**SMALL, "width": 100000, "height": 64}),
        ("too many steps", t2i, {**SMALL, "steps": 3000}),
        ("too many images", t2i, {**SMALL, "batch_size": 64, "n_iter": 100}),
        ("600k prompt", t2i, {**SMALL, "prompt": "x" * 600_000}),
        ("seed 1e30", t2i, {**SMALL, "seed": 10 ** 30}),
        ("seed -1e30", t2i, {**SMALL, "seed": -10 ** 30}),
        ("negative hr_scale", t2i, {**SMALL, "enable_hr": True, "hr_scale": -2}),
        ("negative hr_resize_x", t2i, {**SMALL, "enable_hr": True, "hr_resize_x": -64}),
        ("huge hires target", t2i, {**SMALL, "enable_hr": True, "hr_scale": 500}),
        ("NaN cfg", t2i, json.dumps(SMALL)[:-1] + ', "cfg_scale": NaN}'),
        ("Infinity cfg", t2i, json.dumps(SMALL)[:-1] + ', "cfg_scale": Infinity}'),
        ("Infinity LoRA", t2i, {**SMALL, "prompt": "cat <lora:demo-lora:Infinity>"}),
        ("lone surrogate", t2i, json.dumps(SMALL)[:-1] + ', "prompt": "a \\ud800 b"}'),
        ("5000 brackets", t2i, {**SMALL, "prompt": "(" * 5000 + "cat"}),
        ("bad override type", t2i, {**SMALL, "override_settings": {"enable_batch_seeds": "maybe"},
                                    "override_settings_restore_afterwards": False}),
        ("bad samples_format", t2i, {**SMALL, "override_settings": {"samples_format": "exe"},
                                     "override_settings_restore_afterwards": False}),
        ("unknown override", t2i, {**SMALL, "override_settings": {"no_such_option": 1}}),
        ("xyz 1-20000000", t2i, {**SMALL, "script_name": "x/y/z plot",
                                 "script_args": {"x_type": "Seed", "x_values": "1-20000000"}}),
        ("xyz 1-1e9 (+1)", t2i, {**SMALL, "script_name": "x/y/z plot",
                                 "script_args": {"x_type": "Seed", "x_values": "1-1000000000 (+1)"}}),
        ("xyz 1-2 [1e9]", t2i, {**SMALL, "script_name": "x/y/z plot",
                                "script_args": {"x_type": "Seed", "x_values": "1-2 [1000000000]"}}),
        ("negative padding", "/sdapi/v1/img2img", {**SMALL, "init_images": [image],
                                                   "inpaint_full_res_padding": -100}),
        ("bad base64", "/sdapi/v1/img2img", {**SMALL, "init_images": ["not base64"]}),
        ("extras 20000", "/sdapi/v1/extra-single-image", {"image": image, "upscaler_1": "Lanczos",
                                                          "resize_mode": 1, "upscaling_resize_w": 20000,
                                                          "upscaling_resize_h": 20000}),
        ("preprocess outside", "/sdapi/v1/preprocess", {**PREPROCESS, "process_src": str(outside),
                                                        "process_dst": str(outside / "o")}),
        ("preprocess into models", "/sdapi/v1/preprocess", {**PREPROCESS, "process_src": "datasets/probe/1_cat",
                                                            "process_dst": "models/Stable-diffusion/pp"}),
    ]
    train = {"pretrained_model_name_or_path": "demo-sd15.safetensors", "train_data_dir": "datasets/probe",
             "output_name": "probe", "max_train_steps": 1, "resolution": "64,64", "min_bucket_reso": 64}
    for field, value in (("log_prefix", "../../x"), ("logging_dir", str(outside)), ("output_dir", str(outside)),
                         ("output_name", "../escape"), ("caption_extension", "/../../x"),
                         ("output_dir", "models/Stable-diffusion")):
        found.append((f"train {field}", "/lora/train", {**train, field: value}))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(url: str) -> float:
    return requests.get(f"{url}/sdapi/v1/memory", timeout=30).json()["ram"]["used"]


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="sdapi-probe-"))
    data, outside = work / "data", work / "outside"
    outside.mkdir()
    (data / "datasets" / "probe" / "1_cat").mkdir(parents=True)
    Image.new("RGB", (64, 64), (10, 200, 10)).save(data / "datasets" / "probe" / "1_cat" / "a.png")
    subprocess.run([sys.executable, "-m", "sdapi", "demo-models", str(data)], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "sdapi", "serve", "--data-dir", str(data), "--cache-dir",
                             str(work / "cache"), "--port", str(port), "--threads", "2"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    failures = []
    try:
        for _ in range(240):
            try:
                if requests.get(f"{url}/sdapi/v1/samplers", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        requests.post(f"{url}/sdapi/v1/txt2img", json=SMALL, timeout=600).raise_for_status()
        before = rss(url)
        for name, path, body in probes(outside):
            raw = body if isinstance(body, str) else json.dumps(body)
            r = requests.post(f"{url}{path}", data=raw, headers={"Content-Type": "application/json"}, timeout=600)
            text = r.text
            envelope = r.headers.get("content-type", "").startswith("application/json")
            ok = (400 <= r.status_code < 500 or (r.status_code == 500 and r.json().get("error") in A1111_500))
            # Naming the path the client itself sent is an echo; any other server path is a leak.
            unechoed = text.replace(str(outside), "<sent>")
            leaks = str(work) in unechoed or "/root" in unechoed or 'line ' in text and 'File "' in text
            status = "ok" if ok and envelope and not leaks else "FAIL"
            if status == "FAIL":
                failures.append(name)
            print(f"{status:4} {r.status_code} {name}: {text[:110]}")
        r = requests.post(f"{url}/sdapi/v1/txt2img", json=SMALL, timeout=600)
        after = rss(url)
        alive = r.status_code == 200 and len(r.json()["images"]) == 1
        written = [str(p.relative_to(outside)) for p in outside.rglob("*")]
        model_writes = [p.name for p in (data / "models" / "Stable-diffusion").iterdir() if p.is_dir()]
        print(f"server alive after the probes: {alive}")
        print(f"files in the folder the probes aimed at: {written or 'none'}; new model folders: "
              f"{model_writes or 'none'}")
        print(f"memory: {before / 2**20:.0f} MiB before, {after / 2**20:.0f} MiB after "
              f"({100 * (after - before) / before:+.1f} %)")
        if not alive or written or model_writes or after > before * 1.10:
            failures.append("server state")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(f"{len(failures)} failure(s): {failures}" if failures else "all probes refused cleanly")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
