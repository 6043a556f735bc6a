"""The LoRA training loop: kohya's ``train_network.py`` semantics on a diffusers pipeline.

Per optimizer step: captions processed (shuffle/keep/dropout), encoded with clip skip; cached latents noised at
uniform timesteps (plus noise offset / multires noise); the UNet's prediction compared with the noise (or v) by
MSE, weighted by Min-SNR-γ and ``prior_loss_weight``; gradients accumulated, clipped, stepped; lr scheduled.
Files are saved every ``save_every_n_epochs`` and at the end; samples are drawn every ``sample_every_n_epochs``.

An SDXL base model trains as kohya's ``sdxl_train_network.py`` does: both text encoders (each with its own
LoRA modules and learning rate), the UNet's added vector of bigG's pooled output and the image's size numbers
(:mod:`.text_sdxl`), and with ``cache_text_encoder_outputs`` each caption encoded once before the first step.
"""

from __future__ import annotations

import collections
import contextlib
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sdapi.engine.training.latents import LatentSource
from sdapi.engine.training.network import TrainableLora, load_network_weights
from sdapi.engine.training.noise import make_noise, min_snr_weights, sample_timesteps
from sdapi.engine.training.optimizers import build_optimizer
from sdapi.engine.training.reporting import Reporter, StepReport, TrainResult
from sdapi.engine.training.sampling import draw_sample
from sdapi.engine.training.saving import SAVE_DTYPES, RunFacts, lora_metadata, save_lora
from sdapi.engine.training.setup import (
    choose_precision,
    enable_memory_savers,
    load_base,
    text_encoders,
)
from sdapi.engine.training.text import CaptionEncoder
from sdapi.engine.training.text_sdxl import SdxlCaptionEncoder, time_ids
from sdapi.engine.training.captions import process_caption
from sdapi.engine.training.file_names import epoch_file_name
from sdapi.engine.training.plan import Entry, epoch_batches
from sdapi.engine.training.plan import TrainPlan


@dataclass
class TrainEnvironment:
    """Where a job runs.

    Args:
        device: the training device.
        cache_dir: the engine's config cache (for loading the checkpoint).
        job_dir: the job's own folder (samples, latent cache).
        model_hash: the base checkpoint's sha256, for ``ss_new_sd_model_hash``.
        legacy_model_hash: its A1111 legacy hash, for ``ss_sd_model_hash``.
    """

    device: torch.device
    cache_dir: Path
    job_dir: Path
    model_hash: str | None = None
    legacy_model_hash: str | None = None


class LoraTrainer:
    """One training job on one device.

    Args:
        plan: the validated job.
        env: device and folders.
        reporter: progress, files and the cancel flag.
    """

    def __init__(self, plan: TrainPlan, env: TrainEnvironment, reporter: Reporter):
        self.plan, self.env, self.reporter = plan, env, reporter
        self.config = plan.config
        self.device = env.device
        self.outputs: list[dict[str, Any]] = []
        self.step = 0
        seed = self.config["seed"] if self.config["seed"] not in (None, -1) else random.randrange(2 ** 31)
        self.seed = seed
        self.rng = random.Random(seed)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    # -- preparation ---------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Load the base model, attach the LoRA, cache latents, build optimizer and lr scheduler."""
        plan, warn = self.plan, self.reporter.log
        self.reporter.status("preparing", "loading the base model")
        self.precision = choose_precision(plan, self.device, warn)
        self.pipe = load_base(plan, self.device, self.precision, self.env.cache_dir)
        enable_memory_savers(self.pipe, plan, self.device, warn)
        self.v_prediction = plan.v_prediction or self.pipe.scheduler.config.get("prediction_type") == "v_prediction"
        self.text_encoders = text_encoders(self.pipe)
        # The LoRA's initial down weights come from the job's seed (kohya seeds everything), not the process's RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.network = TrainableLora(self.pipe.unet, self.pipe.text_encoder, plan.network,
                                         self.pipe.text_encoder_2 if self.sdxl else None).to(self.device)
        if plan.network_weights is not None:
            warn(f"network_weights: {load_network_weights(self.network, plan.network_weights)} modules loaded "
                 f"from {plan.network_weights.name}")
        self.network.attach()
        warn(f"LoRA: {len(self.network.text_loras)} text encoder modules, {len(self.network.unet_loras)} UNet "
             f"modules (dim {plan.network.dim}, alpha {plan.network.alpha}"
             + (f", conv_dim {plan.network.conv_dim}, conv_alpha {plan.network.conv_alpha})" if plan.network.conv_dim
                else ")"))
        if self.sdxl:
            self.captions = SdxlCaptionEncoder(self.pipe, self.config["max_token_length"], self.device)
        else:
            self.captions = CaptionEncoder(self.pipe.tokenizer, self.pipe.text_encoder, self.config["clip_skip"],
                                           self.config["max_token_length"], self.device)
        self._prepare_latents()
        self._prepare_optimizer()
        from diffusers import DDPMScheduler

        self.noise_scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                             num_train_timesteps=1000, clip_sample=False)
        self.train_text = bool(self.network.text_loras) and any(
            p.requires_grad for m in self.network.text_loras for p in m.parameters())
        self.pipe.unet.train()
        for encoder in self.text_encoders:
            encoder.train(self.train_text)
        self.text_cache = self._cache_text() if self.config.get("cache_text_encoder_outputs") else None

    @property
    def sdxl(self) -> bool:
        """Whether the base model is SDXL (two text encoders)."""
        return getattr(self.pipe, "text_encoder_2", None) is not None

    @torch.no_grad()
    def _cache_text(self) -> dict[str, Any]:
        """Every caption's encoding, computed once (``cache_text_encoder_outputs``; validation made sure captions
        do not change between epochs and the text encoders do not train)."""
        self.reporter.status("preparing", "caching text encoder outputs")
        cache: dict[str, Any] = {}
        for entry in self.plan.entries:
            caption = process_caption(entry.item.caption, self.plan.captions, self.rng, 1)
            if caption not in cache:
                with self._autocast():
                    cache[caption] = self.captions.encode([caption])
        self.reporter.log(f"cache_text_encoder_outputs: {len(cache)} captions encoded once")
        return cache

    def _encode(self, captions: list[str]):
        """The batch's text conditioning: encoded now, or gathered from the cache."""
        if self.text_cache is None:
            return self.captions.encode(captions)
        parts = [self.text_cache[caption] for caption in captions]
        if isinstance(parts[0], tuple):
            return tuple(torch.cat(column) for column in zip(*parts))
        return torch.cat(parts)

    def _prepare_latents(self) -> None:
        c = self.config
        disk = self.env.job_dir / "latents" if c["cache_latents_to_disk"] else None
        self.latents = LatentSource(self.pipe.vae, self.device, self.generator, c["cache_latents"], disk)
        if c["cache_latents"] or disk is not None:
            flips = (False, True) if c["flip_aug"] else (False,)
            self.reporter.status("preparing", "caching latents")
            self.latents.fill(self.plan.entries, flips)

    def _prepare_optimizer(self) -> None:
        from diffusers.optimization import get_scheduler

        plan, c = self.plan, self.config
        groups = self.network.param_groups(plan.unet_lr, plan.text_encoder_lr, plan.text_encoder_2_lr)
        if not groups:
            raise ValueError("nothing to train: both learning rates are 0 or no module was targeted")
        # The UNet's group comes first when it trains: the text encoders' rates start after it.
        self.first_text_group = 1 if self.network.unet_loras and plan.unet_lr else 0
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer, self.optimizer_text = build_optimizer(plan.optimizer, groups, c["learning_rate"],
                                                              plan.optimizer_args, self.device, self.reporter.log)
        self.lr_scheduler = get_scheduler(c["lr_scheduler"], self.optimizer, num_warmup_steps=plan.warmup_steps,
                                          num_training_steps=plan.schedule.total_steps,
                                          num_cycles=c["lr_scheduler_num_cycles"], power=c["lr_scheduler_power"])
        self.scaler = torch.amp.GradScaler("cuda") if self.precision.autocast == torch.float16 else None
        self.facts = RunFacts(session_id=self.rng.randrange(2 ** 32), started_at=time.time(),
                              optimizer=self.optimizer_text, mixed_precision=self.precision.mixed,
                              model_type=plan.model_type or ("sdxl" if self.sdxl else None),
                              model_hash=self.env.model_hash,
                              legacy_model_hash=self.env.legacy_model_hash)

    # -- one step -------------------------------------------------------------------------------------------

    def _autocast(self):
        if self.precision.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision.autocast)

    def batch_loss(self, batch: list[Entry], epoch: int) -> torch.Tensor:
        """The weighted loss of one batch (before accumulation scaling)."""
        c = self.config
        flips = [c["flip_aug"] and self.rng.random() < 0.5 for _ in batch]
        latents = torch.stack([self.latents.get(e, f) for e, f in zip(batch, flips)]).to(self.device)
        captions = [process_caption(e.item.caption, self.plan.captions, self.rng, epoch) for e in batch]
        with self._autocast():
            with torch.set_grad_enabled(self.train_text):
                conditioning = self._encode(captions)
            noise = make_noise(latents, self.generator, c["noise_offset"], c["multires_noise_iterations"],
                               c["multires_noise_discount"])
            timesteps = sample_timesteps(len(batch), self.generator, c["min_timestep"], c["max_timestep"], self.device)
            noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
            prediction = self._predict(noisy, timesteps, conditioning, batch, flips)
        target = self.noise_scheduler.get_velocity(latents, noise, timesteps) if self.v_prediction else noise
        loss = torch.nn.functional.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        weights = torch.tensor([c["prior_loss_weight"] if e.is_reg else 1.0 for e in batch], device=loss.device)
        loss = loss * weights
        if c["min_snr_gamma"]:
            loss = loss * min_snr_weights(self.noise_scheduler.alphas_cumprod, timesteps, c["min_snr_gamma"],
                                          self.v_prediction)
        return loss.mean()

    def _predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning, batch: list[Entry],
                 flips: list[bool]) -> torch.Tensor:
        """The UNet's prediction; SDXL's also takes the pooled text and each image's size numbers."""
        dtype = self.precision.weight_dtype
        if not self.sdxl:
            return self.pipe.unet(noisy.to(dtype), timesteps, conditioning.to(dtype)).sample
        context, pooled = conditioning
        sizes = torch.tensor([time_ids(e.bucket, (e.item.width, e.item.height), f) for e, f in zip(batch, flips)],
                             device=self.device, dtype=dtype)
        return self.pipe.unet(noisy.to(dtype), timesteps, context.to(dtype),
                              added_cond_kwargs={"text_embeds": pooled.to(dtype), "time_ids": sizes}).sample

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _optimizer_step(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.config["max_grad_norm"]:
            torch.nn.utils.clip_grad_norm_(self.params, self.config["max_grad_norm"])
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def current_lrs(self) -> tuple[float | None, float | None]:
        """(UNet lr, text encoder lr) now; ``None`` for a part that does not train."""
        lrs = self.lr_scheduler.get_last_lr()
        unet = lrs[0] if self.network.unet_loras and self.plan.unet_lr else None
        text = lrs[self.first_text_group] if self.train_text else None
        return unet, text

    # -- the loop ------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Prepare, train every epoch, save and sample; stop early on cancel."""
        self.prepare()
        plan, schedule = self.plan, self.plan.schedule
        accumulation = self.config["gradient_accumulation_steps"]
        self.reporter.status("running", None)
        if self.config["sample_at_first"]:
            self.sample(0)
        window = collections.deque(maxlen=max(1, schedule.updates_per_epoch))
        started = time.perf_counter()
        for epoch in range(1, schedule.epochs + 1):
            epoch_losses: list[float] = []
            batches = epoch_batches(plan.entries, self.config["train_batch_size"], self.rng)
            pending = 0.0
            for index, batch in enumerate(batches):
                if self.reporter.should_stop():
                    return self._cancelled(epoch)
                loss = self.batch_loss(batch, epoch)
                self._backward(loss / accumulation)
                pending += float(loss.detach()) / accumulation
                if (index + 1) % accumulation and index + 1 < len(batches):
                    continue
                self._optimizer_step()
                self.step += 1
                window.append(pending)
                epoch_losses.append(pending)
                self._report(epoch, pending, sum(window) / len(window), started)
                pending = 0.0
                if self.step >= schedule.total_steps:
                    break
            self.reporter.epoch_end(epoch, self.step, sum(epoch_losses) / max(1, len(epoch_losses)))
            last = epoch == schedule.epochs or self.step >= schedule.total_steps
            every = self.config["save_every_n_epochs"]
            if not last and every and epoch % every == 0:
                self.save(epoch, epoch_file_name(plan.output_name, epoch))
            if plan.samples and plan.sample_every_n_epochs and (epoch % plan.sample_every_n_epochs == 0 or last):
                self.sample(epoch)
            if last:
                break
        self.save(epoch, f"{plan.output_name}.safetensors")
        return TrainResult("done", self.step, self.outputs)

    def _report(self, epoch: int, loss: float, average: float, started: float) -> None:
        total = self.plan.schedule.total_steps
        speed = self.step / max(1e-9, time.perf_counter() - started)
        lr_unet, lr_text = self.current_lrs()
        self.reporter.step(StepReport(self.step, total, epoch, self.plan.schedule.epochs, loss, average, lr_unet,
                                      lr_text, speed, (total - self.step) / speed if speed else 0.0))

    def _cancelled(self, epoch: int) -> TrainResult:
        if self.reporter.save_on_stop() and self.step > 0:
            self.save(epoch, f"{self.plan.output_name}-cancelled.safetensors")
        return TrainResult("cancelled", self.step, self.outputs)

    # -- files ---------------------------------------------------------------------------------------------

    def save(self, epoch: int, file_name: str) -> None:
        """Write the LoRA as it is now, then prune old epoch files (``save_last_n_epochs``)."""
        self.reporter.status("saving", f"saving {file_name}")
        tensors = self.network.kohya_state_dict(SAVE_DTYPES[self.config["save_precision"]])
        metadata = lora_metadata(self.plan, self.facts, epoch, self.step)
        output = save_lora(tensors, metadata, self.plan.output_dir / file_name, epoch, self.step)
        self.outputs.append(output)
        self.reporter.saved(output)
        self._prune(epoch)
        self.reporter.status("running", None)

    def _prune(self, epoch: int) -> None:
        keep = self.config["save_last_n_epochs"]
        every = self.config["save_every_n_epochs"]
        if not keep or not every:
            return
        old = epoch - every * keep
        if old > 0:
            path = self.plan.output_dir / epoch_file_name(self.plan.output_name, old)
            if path.is_file():
                path.unlink()
                self.reporter.log(f"removed {path.name} (save_last_n_epochs={keep})")

    def sample(self, epoch: int) -> None:
        """Draw every sample prompt into ``<job dir>/sample``."""
        self.reporter.status("sampling", f"sampling epoch {epoch}")
        folder = self.env.job_dir / "sample"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d%H%M%S")
        for index, prompt in enumerate(self.plan.samples):
            image = draw_sample(self.pipe, prompt, self.config["clip_skip"], self.device)
            name = f"{self.plan.output_name}_e{epoch:06d}_{index:02d}_{stamp}_{prompt.seed}.png"
            image.save(folder / name)
            self.reporter.sampled({"epoch": epoch, "step": self.step, "index": index, "file": name,
                                   "prompt": prompt.prompt, "seed": prompt.seed})
        self.reporter.status("running", None)
