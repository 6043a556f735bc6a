"""UNet sampling throughput on a GPU: SD 1.5-shaped and SDXL-shaped random-weight UNets, it/s and share of peak.

Each model is a diffusers ``UNet2DConditionModel`` with random weights (nothing is downloaded):

* **sd15** at 512×512: the shipped ``sdapi/configs/sd15/unet/config.json``;
* **sdxl** at 1024×1024: that config with SDXL base 1.0's UNet architecture put over it (sdapi ships no SDXL
  config): 3 blocks of 320/640/1280 channels, 1/2/10 transformer layers, 5/10/20 heads, linear projections,
  2048-wide text conditioning and the ``text_time`` added embedding.

One iteration is one CFG sampling step: a UNet call on a batch of 2 (conditional and unconditional) under
``torch.inference_mode``, fp16 on CUDA (fp32 on CPU), diffusers' default SDPA attention. After ``--warmup``
calls, ``--steps`` calls are timed (synchronised); it/s is ``steps / seconds`` and the achieved TFLOP/s is
it/s × the work of one step (**SD 1.5 512²: 1.607 TFLOP; SDXL 1024²: 13.52 TFLOP**), reported as a fraction of
``--peak-tflops`` (the GPU's dense fp16 tensor peak; a few known GPUs are filled in when it is not given).

``--smoke`` runs on CPU with both topologies shrunk (channels / 10, 64-wide conditioning), 64×64 and 1 step:
it checks the script end to end in seconds and its figures mean nothing.

Run: ``.venv/bin/python benchmarks/gpu_throughput.py [--steps 20] [--peak-tflops 989]`` on a GPU machine;
``--smoke`` anywhere. Results are printed and written as JSON to ``benchmarks/results/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SD15_CONFIG = Path(__file__).resolve().parents[1] / "sdapi" / "configs" / "sd15" / "unet" / "config.json"
TFLOP_PER_STEP = {"sd15": 1.607, "sdxl": 13.52}
SIZES = {"sd15": 512, "sdxl": 1024}
# Dense fp16/bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, used when --peak-tflops is not given.
KNOWN_PEAKS = {"H200": 989.4, "H100 SXM": 989.4, "H100 PCIe": 756.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
               "RTX 4090": 165.2, "A10G": 70.0, "T4": 65.0}
SDXL_ARCHITECTURE = {
    "sample_size": 128,
    "block_out_channels": [320, 640, 1280],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
TIME_IDS = 6  # original size, crop corner, target size


def unet_config(name: str, smoke: bool) -> dict:
    """The UNet config of ``name`` (``sd15`` or ``sdxl``), shrunk for the smoke run."""
    config = json.loads(SD15_CONFIG.read_text())
    if name == "sdxl":
        config.update(SDXL_ARCHITECTURE)
    if smoke:
        config["block_out_channels"] = [channels // 10 for channels in config["block_out_channels"]]
        config["attention_head_dim"] = 8  # heads of 4 channels at the smallest width
        config["cross_attention_dim"] = 64
    return config


def pooled_width(config: dict) -> int:
    """Width of SDXL's pooled text embedding: what the added embedding takes besides the time ids."""
    return config["projection_class_embeddings_input_dim"] - TIME_IDS * config["addition_time_embed_dim"]


def build(config: dict, device, dtype):
    """A random-weight UNet on ``device`` in ``dtype``, ready for inference."""
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device(device):
        unet = UNet2DConditionModel.from_config(config)
    return (unet if dtype == torch.float32 else unet.to(dtype=dtype)).eval()


def step_inputs(config: dict, size: int, device, dtype) -> dict:
    """One CFG step's UNet arguments: 2 latents of ``size / 8``, 77 text tokens, SDXL's added conditions."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(0)
    side = size // 8

    def noise(*shape):
        return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)

    inputs = {"sample": noise(2, config["in_channels"], side, side), "timestep": torch.tensor(500, device=device),
              "encoder_hidden_states": noise(2, 77, config["cross_attention_dim"])}
    if config.get("addition_embed_type") == "text_time":
        time_ids = torch.tensor([[size, size, 0, 0, size, size]] * 2, device=device, dtype=dtype)
        inputs["added_cond_kwargs"] = {"text_embeds": noise(2, pooled_width(config)), "time_ids": time_ids}
    return inputs


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(unet, inputs: dict, device, warmup: int, steps: int) -> float:
    """Seconds for ``steps`` UNet calls after ``warmup`` untimed ones."""
    import torch

    with torch.inference_mode():
        for _ in range(warmup):
            unet(**inputs)
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            unet(**inputs)
        synchronize(device)
    return time.perf_counter() - started


def peak_tflops(given: float | None, device_name: str | None) -> float | None:
    """``--peak-tflops``, or the known peak of a GPU whose name contains a listed model."""
    if given is not None:
        return given
    for model, peak in KNOWN_PEAKS.items():
        if device_name and model.lower() in device_name.lower():
            return peak
    return None


def measure(name: str, args: argparse.Namespace, device, dtype, peak: float | None) -> dict:
    """Build one model, time it and report it/s and, at full size, the share of the GPU's peak."""
    import torch

    config = unet_config(name, args.smoke)
    size = 64 if args.smoke else SIZES[name]
    unet = build(config, device, dtype)
    seconds = time_steps(unet, step_inputs(config, size, device, dtype), device, args.warmup, args.steps)
    its = args.steps / seconds
    result = {"size": size, "steps": args.steps, "seconds": round(seconds, 4), "it_per_s": round(its, 3),
              "parameters_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1)}
    if not args.smoke:
        achieved = its * TFLOP_PER_STEP[name]
        result["tflop_per_step"] = TFLOP_PER_STEP[name]
        result["achieved_tflops"] = round(achieved, 2)
        result["fraction_of_peak"] = round(achieved / peak, 4) if peak else None
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    del unet
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(SIZES), default=sorted(SIZES))
    parser.add_argument("--steps", type=int, default=20, help="timed CFG steps per model (default 20)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense fp16 peak, TFLOP/s")
    parser.add_argument("--smoke", action="store_true", help="CPU, shrunk models, 64x64, 1 step")
    parser.add_argument("--out", type=Path, help="result JSON (default benchmarks/results/gpu-throughput-<date>.json)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup = 1, 0

    import torch

    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    machine = describe()
    peak = peak_tflops(args.peak_tflops, machine.get("cuda_device"))
    report = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine,
              "device": device.type, "dtype": str(dtype).removeprefix("torch."), "smoke": args.smoke,
              "peak_tflops": peak, "models": {}}
    for name in args.models:
        report["models"][name] = measure(name, args, device, dtype, peak)
        print(f"{name}: {json.dumps(report['models'][name])}", flush=True)
    out = args.out or RESULTS / f"gpu-throughput-{dt.datetime.now():%Y-%m-%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
