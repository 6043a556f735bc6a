"""Ray Serve mode: 8 concurrent clients against 1 and then 2 engine replicas on the tiny demo checkpoint.

For each replica count the script starts a local Ray, deploys the sdapi application as ``sdapi serve --ray`` does
(CPU replicas sharing the machine's cores: ``cpus // replicas`` torch threads each, or ``--threads``), warms every replica, then
times ``--rounds`` rounds of 8 txt2img requests posted at once from 8 threads until the last answer. Cross-request
batching is off (``--max-batch 1``) so that the figure is the replicas' own scaling.

Run: ``.venv/bin/python benchmarks/ray_throughput.py [--rounds 3] [--steps 20] [--size 64]`` (needs ``.[ray]``).
Writes ``benchmarks/results/ray_throughput.json``: the machine, each configuration's median wall time and
images per second, and the 2-replica / 1-replica throughput ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from machine import describe, load_average

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
CLIENTS = 8


def round_seconds(url: str, args: argparse.Namespace, seed: int) -> float:
    """One round: ``CLIENTS`` requests at once, until the last answer."""
    failures: list[str] = []

    def post(index: int) -> None:
        body = {"prompt": "a red circle", "steps": args.steps, "width": args.size, "height": args.size,
                "seed": seed + index}
        r = requests.post(f"{url}/sdapi/v1/txt2img", json=body, timeout=600)
        if r.status_code != 200:
            failures.append(r.text[:200])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"requests failed: {failures}")
    return time.perf_counter() - started


def measure(replicas: int, data_dir: Path, args: argparse.Namespace) -> dict:
    import ray
    from ray import serve

    from sdapi.cli import serve_settings
    from sdapi.cluster.app import ClusterPlan, build_application

    cpus = os.cpu_count() or 1
    threads = args.threads or max(1, cpus // replicas)
    ray.init(num_cpus=cpus, namespace="sdapi", include_dashboard=False, log_to_driver=False)
    try:
        settings = serve_settings(["--data-dir", str(data_dir), "--nowebui", "--port", str(args.port),
                                   "--max-batch", "1"])
        plan = ClusterPlan(replicas=replicas, models_per_replica=1, gpus_per_replica=0, cpus_per_replica=threads,
                           threads=threads)
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        serve.run(build_application(settings, plan, board_name=f"bench-board-{replicas}"), name="sdapi",
                  route_prefix="/")
        url = f"http://127.0.0.1:{args.port}"
        round_seconds(url, args, 1000)  # warm-up: every replica loads the checkpoint
        times = [round_seconds(url, args, 2000 + 100 * i) for i in range(args.rounds)]
        cluster = requests.get(f"{url}/sdapi/v1/cluster", timeout=10).json()
    finally:
        serve.shutdown()
        ray.shutdown()
    median = statistics.median(times)
    return {"replicas": replicas, "threads_per_replica": threads, "round_seconds": [round(t, 3) for t in times],
            "median_seconds": round(median, 3), "images_per_second": round(CLIENTS / median, 3),
            "jobs_per_replica": {r["id"]: r["jobs_done"] for r in cluster["replicas"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per replica (default: the "
                        "machine's CPUs shared among the replicas)")
    args = parser.parse_args()
    from sdapi.engine.demo_files import write_demo_models

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="sdapi-ray-bench-") as tmp:
        write_demo_models(Path(tmp))
        runs = [measure(replicas, Path(tmp), args) for replicas in (1, 2)]
    one, two = runs
    result = {
        "benchmark": "ray_throughput", "clients": CLIENTS, "steps": args.steps, "size": args.size,
        "rounds": args.rounds, "threads_flag": args.threads, "machine": {**describe(), "load_avg_before": load_before}, "runs": runs,
        "throughput_ratio_2_vs_1": round(two["images_per_second"] / one["images_per_second"], 3),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray_throughput.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
