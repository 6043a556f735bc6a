"""Fast mode: what it costs (compile time, first request), what it gains (latency) and what it changes (pixels).

One process tree, as ``overhead.py``: a real ``sdapi serve`` on loopback and a worker process running diffusers'
own pipeline on the same built-in demo checkpoint. The server answers both modes: a request with
``override_settings: {"sdapi_fast_mode": true}`` is a fast one, a plain request a default one. Three sides, in
turn, their order rotated every run so load from other processes hits all alike:

* ``fast``: txt2img over HTTP in fast mode;
* ``default``: the same request in default mode;
* ``direct``: ``pipe(prompt, ...)`` in ``overhead.py``'s worker process.

The figure to read is the CPU time (utime+stime of the server process, ``process_time()`` of the worker): on a
shared machine it moves far less with the load than wall time does. Printed and stored: medians and ratios
(targets: fast <= 0.67x direct, default <= 1.02x direct), the first fast request's wall and CPU seconds (the
compilation, with a fresh Inductor cache unless ``--warm-cache``), and the pixel difference of fast against
default images over a few prompts and samplers (largest per-channel difference in levels, PSNR). Results go to
``benchmarks/results/fast-mode-<date>.json`` with the machine's description and the load average per run.

Run: ``OMP_WAIT_POLICY=PASSIVE python benchmarks/fast_mode.py [--runs 5] [--threads 2] [--compile full|regional]``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import (  # noqa: E402  (a sibling script, not a package)
    CHECKPOINT_NAME, PROMPT, REPO, RESULTS, DirectSide, HttpSide, close_all, cpu_model, versions,
)

TARGET_FAST = 0.67
TARGET_DEFAULT = 1.02
FAST = {"sdapi_fast_mode": True}
PIXEL_PROMPTS = ["a photo of a cat", "a red house by the sea, evening light", "portrait of an old sailor, (oil:1.2)"]
PIXEL_SAMPLERS = ["Euler a", "DPM++ 2M Karras", "DDIM"]


class ModeSide:
    """One mode of the shared server: its requests carry (or not) the fast-mode override."""

    def __init__(self, http: HttpSide, overrides: dict):
        self.http = http
        self.payload = {**http.payload, "override_settings": overrides}

    def run(self) -> tuple[float, float]:
        plain, self.http.payload = self.http.payload, self.payload
        try:
            return self.http.run()
        finally:
            self.http.payload = plain

    def image(self, **fields) -> np.ndarray:
        """The image of this mode's request with ``fields`` changed."""
        response = self.http.requests.post(f"{self.http.url}/sdapi/v1/txt2img", json={**self.payload, **fields},
                                           timeout=600)
        response.raise_for_status()
        data = base64.b64decode(response.json()["images"][0])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


def pixel_change(a: np.ndarray, b: np.ndarray) -> dict:
    """Largest per-channel difference in 0-255 levels and PSNR (dB) over all channels."""
    mse = float(np.mean((a - b) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    return {"max_levels": int(np.abs(a - b).max()), "psnr_db": round(psnr, 2),
            "changed_share": round(float(np.mean(np.any(a != b, axis=2))), 4)}


def pixel_cases(fast: ModeSide, default: ModeSide, seed: int) -> list[dict]:
    """Fast against default for each prompt and sampler."""
    cases = []
    for prompt in PIXEL_PROMPTS:
        for sampler in PIXEL_SAMPLERS:
            fields = {"prompt": prompt, "sampler_name": sampler, "seed": seed}
            change = pixel_change(fast.image(**fields), default.image(**fields))
            cases.append({"prompt": prompt, "sampler": sampler, **change})
            print(f"pixels {sampler:>16} | {prompt[:28]:<28} max {change['max_levels']:3d} levels, "
                  f"PSNR {change['psnr_db']:.1f} dB", flush=True)
    return cases


def timed_runs(sides: dict, runs: int) -> tuple[dict, dict, list[float]]:
    """``runs`` rounds over every side, the order rotated each round: wall and CPU seconds, load per round."""
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    loads = []
    for i in range(runs):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            wall, used = sides[name].run()
            times[name].append(wall)
            cpu[name].append(used)
        loads.append(os.getloadavg()[0])
        print(f"run {i + 1}/{runs}: " + ", ".join(f"{n} {times[n][-1]:.3f} s (cpu {cpu[n][-1]:.2f})" for n in names)
              + f", load {loads[-1]:.2f}", flush=True)
    return times, cpu, loads


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed rounds after the warm-up (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads on every side (default 2)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--compile", choices=["full", "regional"], default="full", help="--fast-compile")
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep Inductor's on-disk cache (the default measures a cold compilation)")
    parser.add_argument("--skip-pixels", action="store_true", help="leave out the pixel comparison")
    parser.add_argument("--out", type=Path, help="result JSON (default benchmarks/results/fast-mode-<date>.json)")
    return parser.parse_args(argv)


def write_demo_checkpoint(ckpt: Path, env: dict[str, str]) -> None:
    ckpt.parent.mkdir(parents=True)
    subprocess.run([sys.executable, "-c", "import sys, pathlib; from sdapi.engine.demo_models import "
                    "write_demo_checkpoint; write_demo_checkpoint(pathlib.Path(sys.argv[1]), seed=0)", str(ckpt)],
                   cwd=REPO, env=env, check=True, capture_output=True)


def measure(args: argparse.Namespace, tmp: Path, env: dict[str, str]) -> dict:
    """Start both processes, warm up (the first fast request compiles), time, compare pixels."""
    ckpt = tmp / "data" / "models" / "Stable-diffusion" / CHECKPOINT_NAME
    write_demo_checkpoint(ckpt, env)
    http = direct = None
    try:
        http = HttpSide(tmp / "data", tmp / "cache" / "http", args, env, tmp / "server.log",
                        serve_flags=("--fast-compile", args.compile))
        direct = DirectSide(ckpt, tmp / "cache" / "direct", args, env)
        sides = {"fast": ModeSide(http, FAST), "default": ModeSide(http, {}), "direct": direct}
        warmup = {"default": sides["default"].run(), "direct": direct.run()}
        warmup["fast_first_request"] = sides["fast"].run()  # compiles the UNet and the VAE decoder
        warmup["fast_second_request"] = sides["fast"].run()
        print("first fast request (compiles): {:.1f} s wall, {:.1f} s server CPU".format(
            *warmup["fast_first_request"]), flush=True)
        times, cpu, loads = timed_runs(sides, args.runs)
        pixels = [] if args.skip_pixels else pixel_cases(sides["fast"], sides["default"], args.seed)
        direct_peak, server_peak = direct.close(), http.close()
        direct = http = None
    finally:
        close_all(direct, http)
    return {"warmup_s": warmup, "times_s": times, "cpu_s": cpu, "loadavg_per_run": loads, "pixels": pixels,
            "server_peak_rss_kb": server_peak, "direct_peak_rss_kb": direct_peak}


def summary(measured: dict) -> dict:
    med = {k: statistics.median(v) for k, v in measured["times_s"].items()}
    cpu = {k: statistics.median(v) for k, v in measured["cpu_s"].items()}
    return {"median_s": med, "cpu_median_s": cpu,
            "cpu_ratio_fast_over_direct": cpu["fast"] / cpu["direct"],
            "cpu_ratio_default_over_direct": cpu["default"] / cpu["direct"],
            "cpu_ratio_fast_over_default": cpu["fast"] / cpu["default"],
            "wall_ratio_fast_over_direct": med["fast"] / med["direct"],
            "wall_ratio_default_over_direct": med["default"] / med["direct"],
            "targets": {"fast_over_direct": TARGET_FAST, "default_over_direct": TARGET_DEFAULT}}


def report(result: dict) -> None:
    s = result["summary"]
    for name in ("fast", "default", "direct"):
        print(f"{name:>8}: median {s['median_s'][name]:.3f} s wall, {s['cpu_median_s'][name]:.3f} s CPU")
    print(f"CPU ratios: fast/direct {s['cpu_ratio_fast_over_direct']:.3f} (target <= {TARGET_FAST}), "
          f"default/direct {s['cpu_ratio_default_over_direct']:.3f} (target <= {TARGET_DEFAULT}), "
          f"fast/default {s['cpu_ratio_fast_over_default']:.3f}")
    if result["pixels"]:
        worst = max(case["max_levels"] for case in result["pixels"])
        lowest = min(case["psnr_db"] for case in result["pixels"])
        print(f"pixels: fast vs default at most {worst} levels, PSNR at least {lowest:.1f} dB")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="sdapi-fast-mode-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("SDAPI_DATA_DIR", None)
    if not args.warm_cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor")  # a cold compilation, as on a fresh machine
    try:
        measured = measure(args, tmp, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "workload": {"checkpoint": "built-in demo (demo-sd15, seed 0)", "prompt": PROMPT, "size": args.size,
                     "steps": args.steps, "sampler": "Euler a", "cfg_scale": args.cfg, "seed": args.seed},
        "fast_compile": args.compile, "inductor_cache": "warm" if args.warm_cache else "cold",
        "threads": args.threads, "runs": args.runs, **measured,
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "loadavg": os.getloadavg()},
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY") if k in os.environ},
        "versions": versions(),
    }
    result["summary"] = summary(measured)
    out = args.out or RESULTS / f"fast-mode-{dt.datetime.now():%Y-%m-%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    report(result)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
