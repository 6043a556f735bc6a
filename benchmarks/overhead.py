"""Serving overhead: one txt2img through a real ``sdapi serve`` over HTTP vs. the bare diffusers pipeline.

Both sides generate the same image (the built-in demo checkpoint, 256x256, 20 steps, Euler a, CFG 7, one fixed
seed) with the same torch thread count, each in its own fresh process started with the same environment:

* ``http``: ``sdapi serve --threads N`` on a free loopback port; the client (this process) times
  ``requests.post('/sdapi/v1/txt2img')`` plus ``response.json()``;
* ``direct``: a worker process (this file, ``--worker``) loads the same file with
  ``sdapi.engine.checkpoint_loader.load_pipeline`` and times
  ``pipe(prompt, num_inference_steps=20, height=256, width=256, guidance_scale=7,
  generator=torch.Generator().manual_seed(seed))`` with ``EulerAncestralDiscreteScheduler`` built from the
  pipeline's scheduler config with ``timestep_spacing="linspace"`` (what the server uses for "Euler a").

Each side does one warm-up run, then ``--runs`` timed runs; the two sides alternate (and swap which goes first
every run) so that load from other processes on the machine hits both alike. Reported: both medians, their
ratio (target <= 1.05), the server's peak RSS (``VmHWM`` of its process) and the worker's, written as JSON to
``benchmarks/results/overhead-<date>.json``.

Run: ``python benchmarks/overhead.py [--runs 5] [--threads 2]`` (no network, nothing downloaded).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402  (a sibling script, not a package)

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CHECKPOINT_NAME = "demo-sd15.safetensors"
PROMPT = "a photo of a cat"
TARGET_RATIO = 1.05
READY_TIMEOUT_S = 120


def vm_hwm_kb(pid: int | str = "self") -> int | None:
    """Peak resident set size (``VmHWM``) of a process in kB, from ``/proc/<pid>/status``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# -- the direct side (runs in its own process) -------------------------------------------------------------

def worker(args: argparse.Namespace) -> None:
    """Load the pipeline, then answer ``run`` lines on stdin with one timed generation each (JSON lines)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from diffusers import EulerAncestralDiscreteScheduler

    from sdapi.engine.checkpoint_loader import load_pipeline

    started = time.perf_counter()
    pipe = load_pipeline(Path(args.ckpt), device="cpu", dtype=torch.float32, cache_dir=Path(args.cache_dir))
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    pipe.set_progress_bar_config(disable=True)
    attention = sorted({type(p).__name__ for p in pipe.unet.attn_processors.values()})
    print(json.dumps({"ready": True, "load_s": time.perf_counter() - started, "attention": attention,
                      "torch_threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t0, c0 = time.perf_counter(), time.process_time()
        image = pipe(args.prompt, negative_prompt=args.negative or None, num_inference_steps=args.steps, height=args.size, width=args.size,
                     guidance_scale=args.cfg, generator=torch.Generator().manual_seed(args.seed)).images[0]
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert image.size == (args.size, args.size)
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu}), flush=True)
    print(json.dumps({"vmhwm_kb": vm_hwm_kb()}), flush=True)


class DirectSide:
    """The worker process, driven over its stdin/stdout."""

    def __init__(self, ckpt: Path, cache_dir: Path, args: argparse.Namespace, env: dict[str, str]):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--ckpt", str(ckpt),
               "--cache-dir", str(cache_dir), "--threads", str(args.threads), "--seed", str(args.seed),
               "--steps", str(args.steps), "--size", str(args.size), "--cfg", str(args.cfg),
               "--prompt", getattr(args, "prompt", PROMPT), "--negative", getattr(args, "negative", "")]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"direct worker exited with {self.proc.wait()}")
        return json.loads(line)

    def run(self) -> tuple[float, float]:
        """One generation: (wall seconds, CPU seconds of the worker process)."""
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        answer = self._read()
        return answer["seconds"], answer["cpu_seconds"]

    def close(self) -> int | None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            return self._read().get("vmhwm_kb")
        finally:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- the HTTP side -----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpSide:
    """A real ``sdapi serve`` process on loopback."""

    def __init__(self, data_dir: Path, cache_dir: Path, args: argparse.Namespace, env: dict[str, str], log: Path,
                 serve_flags: tuple[str, ...] = ()):
        import requests

        self.requests = requests
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.payload = {"prompt": getattr(args, "prompt", PROMPT),
                        "negative_prompt": getattr(args, "negative", ""), "steps": args.steps, "width": args.size, "height": args.size,
                        "seed": args.seed, "sampler_name": "Euler a", "cfg_scale": args.cfg}
        cmd = [sys.executable, "-m", "sdapi", "serve", "--data-dir", str(data_dir), "--cache-dir", str(cache_dir),
               "--port", str(self.port), "--threads", str(args.threads), *serve_flags]
        started = time.perf_counter()
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
        self.log = log
        self._wait_ready()
        self.ready_s = time.perf_counter() - started

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if self.requests.get(f"{self.url}/sdapi/v1/sd-models", timeout=2).status_code == 200:
                    return
            except self.requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {READY_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}")

    def run(self) -> tuple[float, float]:
        """One request: (wall seconds seen by the client, CPU seconds of the server process)."""
        c0, t0 = self.cpu_seconds(), time.perf_counter()
        response = self.requests.post(f"{self.url}/sdapi/v1/txt2img", json=self.payload, timeout=600)
        body = response.json()
        seconds, cpu = time.perf_counter() - t0, self.cpu_seconds() - c0
        if response.status_code != 200 or len(body.get("images", ())) != 1:
            raise RuntimeError(f"txt2img failed: {response.status_code} {str(body)[:500]}")
        return seconds, cpu

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> int | None:
        peak = vm_hwm_kb(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return peak


def close_all(*sides) -> None:
    """Stop every side still running (``None``: already closed), going on past one that fails to stop."""
    for side in sides:
        if side is not None:
            try:
                side.close()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                print(f"could not stop {type(side).__name__} cleanly: {exc}", file=sys.stderr)


# -- driver ------------------------------------------------------------------------------------------------

def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "diffusers", "transformers", "fastapi", "uvicorn", "sdapi"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "?"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side after one warm-up (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads on both sides (default 2)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--out", type=Path, help="result JSON (default benchmarks/results/overhead-<date>.json)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when the ratio is above {TARGET_RATIO}")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", help=argparse.SUPPRESS)
    parser.add_argument("--prompt", default=PROMPT, help=argparse.SUPPRESS)
    parser.add_argument("--negative", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    # A plain `kill`/timeout must still stop the server and the worker (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("SDAPI_DATA_DIR", None)
    tmp = Path(tempfile.mkdtemp(prefix="sdapi-overhead-"))
    http = direct = None
    try:
        data_dir, cache_dir = tmp / "data", tmp / "cache"
        ckpt = data_dir / "models" / "Stable-diffusion" / CHECKPOINT_NAME
        ckpt.parent.mkdir(parents=True)
        # The built-in demo checkpoint (what `sdapi serve` writes when the models folder is empty), as a file
        # both sides load.
        subprocess.run([sys.executable, "-c", "import sys, pathlib; from sdapi.engine.demo_models import "
                        "write_demo_checkpoint; write_demo_checkpoint(pathlib.Path(sys.argv[1]), seed=0)", str(ckpt)],
                       cwd=REPO, env=env, check=True, capture_output=True)

        print(f"starting sdapi serve --threads {args.threads} ...", flush=True)
        http = HttpSide(data_dir, cache_dir / "http", args, env, tmp / "server.log")
        print(f"starting the direct worker --threads {args.threads} ...", flush=True)
        direct = DirectSide(ckpt, cache_dir / "direct", args, env)

        server_ready_s, direct_info = http.ready_s, direct.info
        warmup = {"http": http.run()[0], "direct": direct.run()[0]}
        times: dict[str, list[float]] = {"http": [], "direct": []}
        cpu: dict[str, list[float]] = {"http": [], "direct": []}
        for i in range(args.runs):
            order = (("http", http), ("direct", direct)) if i % 2 == 0 else (("direct", direct), ("http", http))
            for name, side in order:
                wall, used = side.run()
                times[name].append(wall)
                cpu[name].append(used)
            print(f"run {i + 1}/{args.runs}: http {times['http'][-1]:.3f} s (cpu {cpu['http'][-1]:.2f}), "
                  f"direct {times['direct'][-1]:.3f} s (cpu {cpu['direct'][-1]:.2f}), "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
        direct_peak = direct.close()
        server_peak = http.close()
        direct = http = None
    finally:
        close_all(direct, http)
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["http"] / med["direct"]
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    cpu_ratio = cpu_med["http"] / cpu_med["direct"]
    result = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "workload": {"checkpoint": "built-in demo (demo-sd15, seed 0)", "prompt": PROMPT, "size": args.size,
                     "steps": args.steps, "sampler": "Euler a", "cfg_scale": args.cfg, "seed": args.seed},
        "threads": args.threads, "runs": args.runs, "warmup_s": warmup, "times_s": times,
        "median_s": med, "ratio_http_over_direct": ratio, "target_ratio": TARGET_RATIO,
        "cpu_s": cpu, "cpu_median_s": cpu_med, "cpu_ratio_http_over_direct": cpu_ratio,
        "server_peak_rss_kb": server_peak, "direct_peak_rss_kb": direct_peak,
        "server_ready_s": server_ready_s, "direct_worker": direct_info,
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "loadavg": os.getloadavg()},
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS") if k in os.environ},
        "versions": versions(),
    }
    out = args.out or RESULTS / f"overhead-{dt.datetime.now():%Y-%m-%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    mib = lambda kb: "?" if kb is None else f"{kb / 1024:.0f} MiB"  # noqa: E731
    print(f"median http   {med['http']:.3f} s")
    print(f"median direct {med['direct']:.3f} s")
    print(f"ratio         {ratio:.3f} (target <= {TARGET_RATIO})")
    print(f"CPU time medians: http {cpu_med['http']:.2f} s, direct {cpu_med['direct']:.2f} s, ratio {cpu_ratio:.3f}")
    print(f"server peak RSS {mib(server_peak)} (direct worker {mib(direct_peak)})")
    print(f"written to {out}")
    return 1 if args.check and ratio > TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
