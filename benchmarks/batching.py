"""Cross-request batching measured against diffusers: single-request latency and 8-request throughput.

One process tree, the built-in demo checkpoint (as ``overhead.py``), the same torch thread count everywhere:

* ``http``: a real ``sdapi serve --threads N`` process with its default ``--max-batch 8`` on a free loopback port;
* ``direct``: a worker process calling diffusers' own ``StableDiffusionPipeline`` (``overhead.py --worker``).

Measured, the sides alternating and swapping which goes first every round:

a. **latency**: one request (``requests.post`` + ``.json()``) vs one pipeline call; **target ≤ 1.02×**;
b. **throughput**: 8 single-image requests posted at once from 8 threads (seeds ``seed..seed+7``) until the last
   answer, vs the worker's 8 pipeline calls in a row (the sum of its own timings); **target ≤ 0.5×**. The 8
   images of every concurrent round must equal, byte for byte, the same 8 requests sent one at a time.

Wall-time medians decide; CPU-time medians (the server process's utime+stime, the worker's ``process_time``)
are reported beside them because they are far less sensitive to other load on a shared machine.

Run: ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/batching.py [--rounds 5] [--size 64] [--steps 20]
[--threads 2]``. Results are printed and written as JSON to ``benchmarks/results/batching-<date>.json`` with the
machine's description (CPU model, cores, torch version, load average before and after).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import describe, load_average
from overhead import CHECKPOINT_NAME, PROMPT, REPO, DirectSide, HttpSide, close_all, versions

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENT = 8
TARGET_THROUGHPUT_RATIO = 0.5
TARGET_LATENCY_RATIO = 1.02


def payload(args: argparse.Namespace, index: int) -> dict:
    """The ``index``-th request of a concurrent round (its own seed)."""
    return {"prompt": PROMPT, "steps": args.steps, "width": args.size, "height": args.size, "seed": args.seed + index,
            "sampler_name": "Euler a", "cfg_scale": args.cfg}


def post(http: HttpSide, body: dict) -> list[str]:
    """One txt2img request; its base64 images."""
    response = http.requests.post(f"{http.url}/sdapi/v1/txt2img", json=body, timeout=600)
    if response.status_code != 200:
        raise RuntimeError(f"txt2img failed: {response.status_code} {response.text[:500]}")
    return response.json()["images"]


def concurrent_round(http: HttpSide, args: argparse.Namespace) -> tuple[tuple[float, float], list[list[str]]]:
    """Post the 8 requests at once from 8 threads: ((seconds until the last answer, server CPU seconds), each
    request's images)."""
    results: list[list[str] | None] = [None] * CONCURRENT
    start = threading.Barrier(CONCURRENT + 1)

    def client(index: int) -> None:
        start.wait()
        results[index] = post(http, payload(args, index))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    cpu_started = http.cpu_seconds()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(600)
    seconds, cpu = time.perf_counter() - started, http.cpu_seconds() - cpu_started
    if any(result is None for result in results):
        raise RuntimeError("a concurrent request failed (see the server log)")
    return (seconds, cpu), results


def in_a_row(direct: DirectSide) -> tuple[float, float]:
    """diffusers' 8 pipeline calls one after another: the sums of the worker's own wall and CPU timings."""
    runs = [direct.run() for _ in range(CONCURRENT)]
    return sum(wall for wall, _ in runs), sum(cpu for _, cpu in runs)


def measure(http: HttpSide, direct: DirectSide, args: argparse.Namespace) -> dict:
    """Warm both sides up, then alternate latency and throughput rounds; the bit-identity check at the end."""
    http.run(), direct.run(), concurrent_round(http, args)
    names = ("http_single", "direct_single", "http_8_concurrent", "direct_8_in_a_row")
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    rounds_images: list[list[list[str]]] = []

    def http_eight() -> tuple[float, float]:
        used, images = concurrent_round(http, args)
        rounds_images.append(images)
        return used

    single = [("http_single", http.run), ("direct_single", direct.run)]
    eight = [("http_8_concurrent", http_eight), ("direct_8_in_a_row", lambda: in_a_row(direct))]
    for index in range(args.rounds):
        for group in (single, eight):
            for name, run in (group if index % 2 == 0 else group[::-1]):
                wall, used = run()
                times[name].append(wall)
                cpu[name].append(used)
        print(f"round {index + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items())
              + f", load {os.getloadavg()[0]:.2f}", flush=True)
    one_at_a_time = [post(http, payload(args, i)) for i in range(CONCURRENT)]
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "times_s": times, "median_s": medians, "cpu_s": cpu, "cpu_median_s": cpu_medians,
        "latency_ratio": medians["http_single"] / medians["direct_single"],
        "throughput_ratio": medians["http_8_concurrent"] / medians["direct_8_in_a_row"],
        "cpu_latency_ratio": cpu_medians["http_single"] / cpu_medians["direct_single"],
        "cpu_throughput_ratio": cpu_medians["http_8_concurrent"] / cpu_medians["direct_8_in_a_row"],
        "concurrent_images_equal_one_at_a_time": all(images == one_at_a_time for images in rounds_images),
    }


def demo_checkpoint(path: Path, env: dict[str, str]) -> None:
    """Write the built-in demo checkpoint, as ``sdapi serve`` does into an empty models folder."""
    path.parent.mkdir(parents=True)
    subprocess.run([sys.executable, "-c", "import sys, pathlib; from sdapi.engine.demo_models import "
                    "write_demo_checkpoint; write_demo_checkpoint(pathlib.Path(sys.argv[1]), seed=0)", str(path)],
                   cwd=REPO, env=env, check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--out", type=Path, help="result JSON (default benchmarks/results/batching-<date>.json)")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally below still stops both sides
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("SDAPI_DATA_DIR", None)
    machine_before = describe()
    tmp = Path(tempfile.mkdtemp(prefix="sdapi-batching-"))
    http = direct = None
    try:
        data_dir, cache_dir = tmp / "data", tmp / "cache"
        checkpoint = data_dir / "models" / "Stable-diffusion" / CHECKPOINT_NAME
        demo_checkpoint(checkpoint, env)
        http = HttpSide(data_dir, cache_dir / "http", args, env, tmp / "server.log")
        direct = DirectSide(checkpoint, cache_dir / "direct", args, env)
        result = measure(http, direct, args)
    finally:
        close_all(direct, http)
        shutil.rmtree(tmp, ignore_errors=True)
    result.update({
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "workload": {"checkpoint": "built-in demo (demo-sd15, seed 0)", "prompt": PROMPT, "size": args.size,
                     "steps": args.steps, "sampler": "Euler a", "cfg_scale": args.cfg, "seeds": [args.seed, "+i"],
                     "server": "sdapi serve, default --max-batch 8 and --batch-wait-ms"},
        "threads": args.threads, "rounds": args.rounds, "machine": machine_before,
        "load_avg_after": load_average(), "versions": versions(),
        "targets": {"throughput_ratio": TARGET_THROUGHPUT_RATIO, "latency_ratio": TARGET_LATENCY_RATIO},
    })
    result["met"] = {"throughput": result["throughput_ratio"] <= TARGET_THROUGHPUT_RATIO,
                     "latency": result["latency_ratio"] <= TARGET_LATENCY_RATIO,
                     "bit_identical": result["concurrent_images_equal_one_at_a_time"]}
    out = args.out or RESULTS / f"batching-{dt.datetime.now():%Y-%m-%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"latency    http {result['median_s']['http_single']:.3f} s / direct {result['median_s']['direct_single']:.3f}"
          f" s = {result['latency_ratio']:.3f} (target <= {TARGET_LATENCY_RATIO})")
    print(f"throughput http 8 concurrent {result['median_s']['http_8_concurrent']:.3f} s / direct 8 in a row "
          f"{result['median_s']['direct_8_in_a_row']:.3f} s = {result['throughput_ratio']:.3f} "
          f"(target <= {TARGET_THROUGHPUT_RATIO})")
    print(f"CPU-time ratios: latency {result['cpu_latency_ratio']:.3f}, throughput {result['cpu_throughput_ratio']:.3f}")
    print(f"8 concurrent images == one at a time: {result['concurrent_images_equal_one_at_a_time']}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
