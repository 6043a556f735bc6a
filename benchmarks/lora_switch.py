"""LoRA switching cost per request, excluding sampling, and the cost of a LoRA read from disk.

What one txt2img request with LoRAs adds before and after its sampling loop is exactly
``Engine.loras.applied(pipe, activations)``: look the files up in the LoRA cache (reading them on a miss), bind
their layers to the model's modules and merge them into the weights (``applied`` without a job's work merges every
layer), then restore the weights when the job ends. On the ``meta`` device the merge does no arithmetic, so the
sd15-size figures are lookup and binding only; ``lora_overhead.py`` measures merging and hooks in real jobs.
This script times that enter+exit, in-process, on CPU:

* **tiny**: the built-in demo checkpoint (tiny weights, but the SD 1.5 block layout: 16 transformer blocks, so
  the demo LoRA binds as many UNet layers as a real SD 1.5 LoRA does) with ``demo-lora`` and a second LoRA:
  warm switches A → B → A … (both cached), cold loads (cache cleared), and for reference one 64×64 8-step
  txt2img with and without a LoRA (what the LoRA adds during sampling, which is not switching cost);
* **sd15-size**: real SD 1.5 module shapes (UNet and CLIP ViT-L text encoder built on the ``meta`` device from
  the shipped configs: no weights, no memory) and two rank-32 fp16 kohya LoRAs of real size (792 tensors,
  ~37 MB each) written to a temporary folder: warm switches and cold loads from disk.

Target: a warm switch <= 100 ms. Results are printed and written as JSON to ``benchmarks/results/``.

Run: ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/lora_switch.py [--switches 40] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = Path(__file__).resolve().parents[1] / "sdapi" / "configs" / "sd15"
TARGET_MS = 100.0
REAL_RANK = 32


def stats_ms(seconds: list[float]) -> dict[str, float]:
    """Median, 95th percentile and max of a list of durations, in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    return {"median_ms": round(statistics.median(ms), 3), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
            "max_ms": round(ms[-1], 3), "n": len(ms)}


def time_applied(engine, pipe, activations) -> float:
    """Wall time of entering and leaving ``applied`` (what a request pays besides sampling)."""
    started = time.perf_counter()
    with engine.loras.applied(pipe, activations):
        pass
    return time.perf_counter() - started


def switch_and_cold(engine, pipe, first, second, switches: int) -> dict:
    """Warm switches alternating two cached LoRAs, and cold loads (cache cleared before each)."""
    time_applied(engine, pipe, [first]), time_applied(engine, pipe, [second])  # both cached, tables built
    warm = [time_applied(engine, pipe, [(first, second)[i % 2]]) for i in range(switches)]
    both = [time_applied(engine, pipe, [first, second]) for _ in range(max(3, switches // 4))]
    cold = []
    for _ in range(max(3, switches // 8)):
        engine.loras.cache.clear()
        cold.append(time_applied(engine, pipe, [first]))
    bound = engine.loras.bound_layers(pipe, [first])
    return {"warm_switch": stats_ms(warm), "warm_two_loras": stats_ms(both), "cold_from_disk": stats_ms(cold),
            "layers_bound": len(bound), "file_mb": round(Path(first.path).stat().st_size / 2**20, 3)}


def tiny_case(engine, workdir: Path, switches: int) -> dict:
    """The demo checkpoint with demo-lora and a second demo LoRA."""
    import torch

    from sdapi.engine.demo_lora import write_demo_lora
    from sdapi.engine.demo_files import write_demo_models
    from sdapi.seeds import image_seeds
    from sdapi.engine.api import GenerationJob
    from sdapi.engine.params import LoraActivation, Txt2ImgParams
    from sdapi.engine.sampling.registry import find_sampler

    paths = write_demo_models(workdir)
    lora_b = write_demo_lora(workdir, seed=1, name="demo-lora-b")
    model = engine.model(paths[0])
    first, second = LoraActivation(str(paths[2]), "demo-lora"), LoraActivation(str(lora_b), "demo-lora-b")
    result = switch_and_cold(engine, model.pipe, first, second, switches)
    seeds, subseeds = image_seeds(1, 1, 0, 1)

    def generate(loras) -> float:
        params = Txt2ImgParams(prompts=["a photo of a cat"], negative_prompts=[""], seeds=seeds, subseeds=subseeds,
                               subseed_strength=0.0, sampler=find_sampler("Euler a"), steps=8, cfg_scale=7.0,
                               width=64, height=64, loras=loras)
        started = time.perf_counter()
        engine.generate(GenerationJob(paths[0], params))
        return time.perf_counter() - started

    generate([])
    runs = [(generate([]), generate([first])) for _ in range(5)]
    result["txt2img_64px_8steps_without_lora"] = stats_ms([a for a, _ in runs])
    result["txt2img_64px_8steps_with_lora"] = stats_ms([b for _, b in runs])
    result["torch_threads"] = torch.get_num_threads()
    return result


def real_size_lora(pipe, path: Path, seed: int) -> Path:
    """A rank-32 fp16 kohya LoRA with SD 1.5's kohya layer set (plus the LoCon layers of the demo)."""
    import torch

    from sdapi.engine.demo_lora import kohya_layers
    from sdapi.engine.ldm_layout import write_safetensors

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in kohya_layers(pipe).items():
        if isinstance(module, torch.nn.Linear):
            shapes = (REAL_RANK, module.in_features), (module.out_features, REAL_RANK)
        else:
            shapes = (REAL_RANK, module.in_channels, *module.kernel_size), (module.out_channels, REAL_RANK, 1, 1)
        tensors[f"{name}.lora_down.weight"] = (torch.randn(shapes[0], generator=generator) * 0.01).half()
        tensors[f"{name}.lora_up.weight"] = (torch.randn(shapes[1], generator=generator) * 0.01).half()
        tensors[f"{name}.alpha"] = torch.tensor(float(REAL_RANK), dtype=torch.float16)
    return write_safetensors(tensors, path, {"ss_network_dim": str(REAL_RANK), "ss_network_module": "networks.lora"})


def sd15_size_case(engine, workdir: Path, switches: int) -> dict:
    """Real SD 1.5 module shapes on the meta device with two real-size LoRAs."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdapi.engine.params import LoraActivation

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(json.loads((CONFIGS / "unet" / "config.json").read_text()))
        te_config = json.loads((CONFIGS / "text_encoder" / "config.json").read_text())
        text_encoder = CLIPTextModel(CLIPTextConfig(**te_config))
    pipe = SimpleNamespace(unet=unet, text_encoder=text_encoder)
    first, second = (LoraActivation(str(real_size_lora(pipe, workdir / f"real-{i}.safetensors", i)), f"real-{i}")
                     for i in range(2))
    return switch_and_cold(engine, pipe, first, second, switches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switches", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-real-size", action="store_true")
    args = parser.parse_args()

    from sdapi.engine.local import LocalEngine
    from sdapi.engine.runtime import choose_runtime

    engine = LocalEngine(choose_runtime("cpu", num_threads=args.threads), Path(tempfile.mkdtemp(prefix="sdapi-bench-")))
    with tempfile.TemporaryDirectory(prefix="sdapi-lora-bench-") as tmp:
        report = {
            "date": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.node(),
            "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "target_warm_switch_ms": TARGET_MS,
            "tiny": tiny_case(engine, Path(tmp) / "tiny", args.switches),
        }
        if not args.skip_real_size:
            report["sd15_size"] = sd15_size_case(engine, Path(tmp), args.switches)
    report["within_target"] = all(report[k]["warm_switch"]["median_ms"] <= TARGET_MS
                                  for k in ("tiny", "sd15_size") if k in report)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"lora-switch-{dt.datetime.now():%Y-%m-%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
