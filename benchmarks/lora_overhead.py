"""What one LoRA costs a txt2img job: no LoRA vs forward hooks vs merged weights vs the automatic choice.

Runs in one process on CPU, with the engine the server uses (``LocalEngine.generate``), on the built-in demo
checkpoint and its demo LoRA (SD 1.5 block layout, so as many layers are bound as with a real SD 1.5 LoRA):

* for each size (64×64 and, by default, 256×256; 8 steps, Euler a, CFG 7), the four variants run in turn, the
  order rotating every round so load from other processes hits them alike; the median wall time of each and the
  overhead over no LoRA are reported (**target: the automatic choice < 5 %**), in wall time and in this
  process's CPU time (less sensitive to other load on the machine);
* a no-LoRA image after all the LoRA runs is checked to equal the first one byte for byte (weights restored);
* ``--calibrate`` also measures the constants of the cost model in ``sdapi/engine/lora_cost.py`` on synthetic
  layers (hook call cost, merge cost per layer and per weight element, seconds per multiply-accumulate).

Run: ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/lora_overhead.py [--rounds 7] [--large 256]
[--threads 2] [--calibrate]``. Results are printed and written as JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("none", "hooks", "merge", "auto")
TARGET_OVERHEAD = 0.05


def median_ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 2)


def make_job(checkpoint: Path, lora, size: int, steps: int):
    """A one-image txt2img job with or without the LoRA."""
    from sdapi.engine.api import GenerationJob
    from sdapi.engine.params import Txt2ImgParams
    from sdapi.engine.sampling.registry import find_sampler
    from sdapi.seeds import image_seeds

    seeds, subseeds = image_seeds(7, 7, 0.0, 1)
    params = Txt2ImgParams(prompts=["a photo of a cat"], negative_prompts=[""], seeds=seeds, subseeds=subseeds,
                           subseed_strength=0.0, sampler=find_sampler("Euler a"), steps=steps, cfg_scale=7.0,
                           width=size, height=size, loras=[lora] if lora is not None else [])
    return GenerationJob(checkpoint, params)


def run_variant(engine, checkpoint: Path, lora, variant: str, size: int, steps: int):
    """One job in ``variant``; returns ((wall seconds, CPU seconds of this process), image)."""
    engine.loras.mode = "auto" if variant == "none" else variant
    job = make_job(checkpoint, None if variant == "none" else lora, size, steps)
    started, cpu_started = time.perf_counter(), time.process_time()
    (image,) = engine.generate(job)
    return (time.perf_counter() - started, time.process_time() - cpu_started), image


def measure_size(engine, checkpoint: Path, lora, size: int, steps: int, rounds: int) -> dict:
    """Alternating runs of every variant at one size: medians, overheads, and the restore check."""
    first = {variant: run_variant(engine, checkpoint, lora, variant, size, steps)[1] for variant in VARIANTS}
    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    cpu: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for index in range(rounds):
        order = VARIANTS[index % len(VARIANTS):] + VARIANTS[:index % len(VARIANTS)]
        for variant in order:
            (wall, used), _ = run_variant(engine, checkpoint, lora, variant, size, steps)
            times[variant].append(wall)
            cpu[variant].append(used)
    _, plain_after = run_variant(engine, checkpoint, lora, "none", size, steps)
    medians = {variant: median_ms(values) for variant, values in times.items()}
    cpu_medians = {variant: median_ms(values) for variant, values in cpu.items()}
    return {
        "size": size, "steps": steps, "rounds": rounds, "median_ms": medians,
        "overhead": {v: round(medians[v] / medians["none"] - 1, 4) for v in VARIANTS if v != "none"},
        "cpu_median_ms": cpu_medians,
        "cpu_overhead": {v: round(cpu_medians[v] / cpu_medians["none"] - 1, 4) for v in VARIANTS if v != "none"},
        "runs_ms": {v: [round(t * 1000, 1) for t in values] for v, values in times.items()},
        "plain_after_lora_equals_first_plain": plain_after.tobytes() == first["none"].tobytes(),
        "merge_equals_hooks_pixels": first["merge"].tobytes() == first["hooks"].tobytes(),
    }


def _timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up."""
    fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def calibrate() -> dict:
    """The cost model's constants, measured on synthetic square Linear layers."""
    import torch

    from sdapi.engine.lora import BoundLayer, hooked
    from sdapi.engine.lora_file import LoraLayer
    from sdapi.engine.lora_merge import merged

    def bound(width: int, rank: int) -> BoundLayer:
        module = torch.nn.Linear(width, width)
        layer = LoraLayer(torch.randn(rank, width) * 0.01, torch.randn(width, rank) * 0.01, float(rank))
        return BoundLayer(module, layer, 1.0, "unet")

    def hook_extra(width: int, rank: int, rows: int) -> float:
        layer, x = bound(width, rank), torch.randn(1, rows, width)
        with torch.no_grad():
            bare = _timed(lambda: layer.module(x), 50)
            with hooked([layer]):
                hooked_time = _timed(lambda: layer.module(x), 50)
        return max(hooked_time - bare, 0.0)

    def merge_time(width: int, rank: int) -> float:
        layer = bound(width, rank)

        def enter_exit():
            with merged([layer]):
                pass
        return _timed(enter_exit, 20)

    call = hook_extra(32, 4, 2)
    big_rows, width, rank = 4096, 320, 32
    hook_mac = (hook_extra(width, rank, big_rows) - call) / (big_rows * rank * 2 * width)
    layer_cost = merge_time(16, 4)
    thin, thick = merge_time(1280, 4), merge_time(1280, 64)
    merge_mac = (thick - thin) / (1280 * 1280 * 60)
    element = (thin - layer_cost) / (1280 * 1280) - 4 * merge_mac
    return {"HOOK_CALL_S": call, "hook_MAC_S": hook_mac, "MERGE_LAYER_S": layer_cost,
            "MERGE_ELEMENT_S": element, "merge_MAC_S": merge_mac}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--large", type=int, default=256, help="the larger image side (0: only 64)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()

    from sdapi.engine.demo_files import write_demo_models
    from sdapi.engine.local import LocalEngine
    from sdapi.engine.params import LoraActivation
    from sdapi.engine.runtime import choose_runtime

    engine = LocalEngine(choose_runtime("cpu", num_threads=args.threads), Path(tempfile.mkdtemp(prefix="sdapi-bench-")))
    report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": describe(),
              "target_overhead": TARGET_OVERHEAD}
    with tempfile.TemporaryDirectory(prefix="sdapi-lora-overhead-") as tmp:
        checkpoint, _, lora_path = write_demo_models(Path(tmp))[:3]
        lora = LoraActivation(str(lora_path), "demo-lora")
        sizes = [64] + ([args.large] if args.large else [])
        report["sizes"] = [measure_size(engine, checkpoint, lora, size, args.steps, args.rounds) for size in sizes]
    if args.calibrate:
        report["calibration"] = calibrate()
    report["machine"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    report["auto_within_target"] = {kind: all(s[kind]["auto"] < TARGET_OVERHEAD for s in report["sizes"])
                                    for kind in ("overhead", "cpu_overhead")}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"lora-overhead-{dt.datetime.now():%Y-%m-%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    for s in report["sizes"]:
        print(f"{s['size']}px x {s['steps']} steps: median ms {s['median_ms']}, overhead {s['overhead']}, "
              f"CPU-time overhead {s['cpu_overhead']}, restored: {s['plain_after_lora_equals_first_plain']}")
    if args.calibrate:
        print("calibration:", {k: f"{v:.3g}" for k, v in report["calibration"].items()})
    print(f"written to {out}")


if __name__ == "__main__":
    main()
