"""LoRA training speed: optimizer steps per second.

* **cpu-demo** (always): a full job through sdapi's trainer (``LoraTrainer``, the code ``POST /lora/train`` runs)
  on the built-in demo checkpoint, 64×64 images, batch 1, LoRA dim 4 on UNet and text encoder, cached latents.
  The figure is steps/s of the training loop (model loading and latent caching excluded).
* **gpu-sd15-512** (only when CUDA exists): a real-size SD 1.5 UNet and CLIP ViT-L text encoder with random
  weights (built from the shipped configs, nothing downloaded), fp16 frozen weights, fp32 LoRA (dim 32, alpha 16,
  kohya's 192 UNet + 72 text-encoder modules) under fp16 autocast, SDPA attention, AdamW, batch 1, 512×512
  (64×64 latents, as cached latents are), 75-token captions, the same loss code as the trainer. This is the
  figure to compare with kohya's published speeds (it/s at batch 1, 512², on the same GPU).

Results are printed and written as JSON to ``benchmarks/results/``.

Run: ``OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/train_speed.py [--steps 60] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = Path(__file__).resolve().parents[1] / "sdapi" / "configs" / "sd15"


class SpeedReporter:
    """Keeps the trainer's own it/s figure; everything else is dropped."""

    def __init__(self):
        self.last = None

    def status(self, status, text=None): ...
    def log(self, message): ...
    def epoch_end(self, epoch, step, average): ...
    def saved(self, output): ...
    def sampled(self, sample): ...
    def should_stop(self): return False
    def save_on_stop(self): return False

    def step(self, report):
        self.last = report


def cpu_demo(steps: int) -> dict:
    """A full demo-checkpoint job through ``LoraTrainer`` on CPU."""
    import torch
    from PIL import Image

    from sdapi.checkpoints import CheckpointCatalog, HashCache
    from sdapi.dataset.paths import PathGuard
    from sdapi.engine.demo_files import write_demo_models
    from sdapi.engine.training.trainer import LoraTrainer, TrainEnvironment
    from sdapi.protocol.training import TrainRequest
    from sdapi.training.validate import ValidationContext, build_plan

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_demo_models(root)
        folder = root / "ds" / f"{steps}_bench"
        folder.mkdir(parents=True)
        Image.new("RGB", (64, 64), (200, 40, 40)).save(folder / "a.png")
        catalog = CheckpointCatalog(root / "models" / "Stable-diffusion", HashCache(root / "cache.json"))
        catalog.refresh()
        req = TrainRequest(pretrained_model_name_or_path="demo-sd15.safetensors", train_data_dir="ds",
                           resolution="64,64", min_bucket_reso=64, max_bucket_reso=128, output_name="bench",
                           max_train_epochs=1, network_dim=4, network_alpha=4, optimizer_type="AdamW", log_with=None)
        plan = build_plan(req, ValidationContext(PathGuard.for_roots(root), root / "models" / "Lora", catalog.find),
                          root / "job")
        reporter = SpeedReporter()
        started = time.perf_counter()
        LoraTrainer(plan, TrainEnvironment(torch.device("cpu"), root / "cache", root / "job"), reporter).run()
        total = time.perf_counter() - started
    return {"steps": reporter.last.step, "steps_per_s": round(reporter.last.it_per_s, 2),
            "job_seconds_with_loading": round(total, 2)}


def sd15_steps(steps: int, device_name: str = "cuda", unet_config: dict | None = None,
               text_config: dict | None = None, latent_size: int = 64, warmup: int = 5) -> dict:
    """LoRA dim 32 training steps on an SD 1.5-shaped UNet + text encoder with random weights.

    Defaults are the real SD 1.5 configs at 512² (64×64 latents) on CUDA with fp16 weights under autocast;
    other configs/devices only serve to check this loop runs (fp32, no autocast off CUDA).
    """
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdapi.engine.training.network import TrainableLora
    from sdapi.engine.training.noise import make_noise, sample_timesteps
    from sdapi.engine.training.plan import NetworkSpec

    device = torch.device(device_name)
    cuda = device.type == "cuda"
    dtype = torch.float16 if cuda else torch.float32
    unet = UNet2DConditionModel.from_config(unet_config or json.loads((CONFIGS / "unet" / "config.json").read_text()))
    text = CLIPTextModel(CLIPTextConfig(**(text_config or json.loads(
        (CONFIGS / "text_encoder" / "config.json").read_text()))))
    unet.to(device, dtype).requires_grad_(False)
    unet.set_attn_processor(AttnProcessor2_0())
    text.to(device, dtype).requires_grad_(False)
    unet.train()
    text.train()
    network = TrainableLora(unet, text, NetworkSpec(dim=32, alpha=16)).to(device)
    network.attach()
    groups = network.param_groups(1e-4, 1e-5)
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False)
    generator = torch.Generator(device=device).manual_seed(0)
    latents = torch.randn(1, 4, latent_size, latent_size, device=device)
    ids = torch.randint(0, 49407, (1, 77), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            cond = text(input_ids=ids).last_hidden_state
            noise = make_noise(latents, generator, None, None, 0.3)
            t = sample_timesteps(1, generator, None, None, device)
            pred = unet(scheduler.add_noise(latents, noise, t).to(dtype), t, cond.to(dtype)).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise.float())
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    result = {"steps": steps, "steps_per_s": round(steps / elapsed, 2),
              "lora_modules": {"unet": len(network.unet_loras), "text_encoder": len(network.text_loras)}}
    if cuda:
        result.update(device=torch.cuda.get_device_name(0),
                      peak_memory_gib=round(torch.cuda.max_memory_allocated() / 2 ** 30, 2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-only", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.machine(),
               "torch": torch.__version__, "threads": args.threads}
    if not args.gpu_only:
        results["cpu-demo"] = cpu_demo(args.steps)
        print(f"cpu-demo: {results['cpu-demo']['steps_per_s']} steps/s ({args.threads} threads)")
    if torch.cuda.is_available():
        results["gpu-sd15-512"] = sd15_steps(args.steps)
        print(f"gpu-sd15-512: {results['gpu-sd15-512']['steps_per_s']} steps/s on {results['gpu-sd15-512']['device']}")
    else:
        print("gpu-sd15-512: skipped (no CUDA)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"train_speed-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"written {out}")


if __name__ == "__main__":
    main()
