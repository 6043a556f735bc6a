"""The engine that drives a device in this process: a small LRU of loaded checkpoints, LoRA and upscaler caches.

It implements :class:`sdapi.engine.api.Engine`; the serving layer calls it from its one worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import threading
from pathlib import Path
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from sdapi.engine.annotators.cache import AnnotatorCache  # noqa: E402
from sdapi.engine.api import (  # noqa: E402
    AnnotateJob,
    AnnotateResult,
    CaptionSettings,
    EmbeddingListing,
    GenerationJob,
    JobEvents,
    ModelInfo,
    TrainingJob,
    ReplicaStatus,
    UpscaleJob,
)
from sdapi.engine.blip import BlipCaptioner  # noqa: E402
from sdapi.engine.checkpoint_loader import load_pipeline  # noqa: E402
from sdapi.engine.controlnet_cache import ControlNetCache, JobControls  # noqa: E402
from sdapi.engine.circular import circular_padding  # noqa: E402
from sdapi.engine.embedding_cache import EmbeddingFiles, listing, used_names  # noqa: E402
from sdapi.engine.errors import DeviceOutOfMemory  # noqa: E402
from sdapi.engine.fast_mode import FastPlan, choose_fast_plan, cpu_has_native_bf16, precision_label  # noqa: E402
from sdapi.engine.attention_calls import call_processors_directly  # noqa: E402
from sdapi.engine.fast_model import fast_model, job_calls  # noqa: E402
from sdapi.engine.batching import batch_key  # noqa: E402
from sdapi.engine.generation import NotMergeable, run_img2img_group, run_txt2img_group  # noqa: E402
from sdapi.engine.lora import LoraApplier  # noqa: E402
from sdapi.engine.lora_cache import LoraCache  # noqa: E402
from sdapi.engine.lora_cost import MERGE, sampling_work  # noqa: E402
from sdapi.engine.lora_file import load_lora_network  # noqa: E402
from sdapi.engine.model import LoadedModel, prompt_encoder  # noqa: E402
from sdapi.engine.params import Img2ImgParams  # noqa: E402
from sdapi.engine.pipeline_cache import PipelineCache  # noqa: E402
from sdapi.engine.preview import LatentPreview  # noqa: E402
from sdapi.engine.runtime import Runtime, cuda_memory, enable_attention, images_that_fit  # noqa: E402
from sdapi.engine.batch_invariance import make_batch_invariant  # noqa: E402
from sdapi.engine.training.reporting import Reporter, TrainResult  # noqa: E402
from sdapi.engine.training.trainer import LoraTrainer, TrainEnvironment  # noqa: E402
from sdapi.engine.upscale_model import clear_network_cache, model_runner  # noqa: E402
from sdapi.engine.upscalers import enlarger, upscale_by  # noqa: E402
from sdapi.engine.vae_precision import upcast_vae_if_needed  # noqa: E402
from sdapi.engine.vae_switch import VaeSwitcher  # noqa: E402

log = logging.getLogger("sdapi")


class _LatentEvents:
    """Adapts :class:`JobEvents` to the sampling core, which reports latents: previews render on demand."""

    def __init__(self, events: JobEvents, sdxl: bool = False):
        self.events = events
        self.sdxl = sdxl

    @property
    def interrupted(self) -> bool:
        return self.events.interrupted

    def should_stop(self) -> bool:
        return self.events.should_stop()

    def next_batch(self) -> None:
        self.events.next_batch()

    def next_pass(self) -> None:
        self.events.next_pass()

    def sampling(self, steps: int) -> None:
        self.events.sampling(steps)

    def step(self, step: int, latents: torch.Tensor) -> None:
        self.events.step(step, LatentPreview(latents, self.sdxl))

    def batch_done(self) -> None:
        self.events.batch_done()


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError))


class LocalEngine:
    """Owns the device, the loaded pipelines and the per-file caches.

    Args:
        runtime: device/dtype/attention choices.
        cache_dir: where assembled diffusers config dirs are kept.
        extra_cached: A1111's ``sd_checkpoint_cache``: pipelines kept besides the current one.
        fast_plan: what fast-mode jobs do (default: chosen for the runtime's device).
    """

    def __init__(self, runtime: Runtime, cache_dir: Path, extra_cached: int = 0, fast_plan: FastPlan | None = None):
        self.runtime = runtime
        self.fast_plan = fast_plan or choose_fast_plan(runtime.device.type, cpu_has_native_bf16())
        self.cache_dir = cache_dir
        self.pipelines: PipelineCache[LoadedModel] = PipelineCache(self._load, extra_cached)
        self.loras = LoraApplier(LoraCache(functools.partial(load_lora_network, device=runtime.device,
                                                             dtype=runtime.dtype)))
        self._captioner: BlipCaptioner | None = None
        self._captioner_marker: float | None = None
        self._captioner_lock = threading.Lock()
        self.embedding_files = EmbeddingFiles()
        self.vaes = VaeSwitcher()
        self.controlnets = ControlNetCache(runtime.device, runtime.dtype)
        self.annotators = AnnotatorCache(runtime.device)
        # How many times a checkpoint file was read into a pipeline (a VAE switch must not add to it).
        self.checkpoint_loads = 0

    # -- checkpoints ----------------------------------------------------------------------------------------

    def _load(self, path: Path) -> LoadedModel:
        log.info("Loading checkpoint %s on %s (%s)", path.name, self.runtime.device, self.runtime.dtype)
        self.checkpoint_loads += 1
        pipe = load_pipeline(path, device=self.runtime.device, dtype=self.runtime.dtype, cache_dir=self.cache_dir)
        attention = enable_attention(pipe, self.runtime)
        call_processors_directly(pipe.unet, pipe.vae)
        upcast_vae_if_needed(pipe)
        make_batch_invariant(pipe.unet)
        log.info("Loaded %s (attention: %s)", path.name, attention)
        encoder = prompt_encoder(pipe, self.runtime.device)
        return LoadedModel(pipe=pipe, encoder=encoder, device=self.runtime.device, dtype=self.runtime.dtype)

    def model(self, path: Path) -> LoadedModel:
        """The loaded model for a checkpoint file (loaded once, then cached)."""
        return self.pipelines.get(Path(path))

    def fast_version(self, model: LoadedModel) -> LoadedModel:
        """``model`` as fast-mode jobs run it, built on first use."""
        if model.fast is None:
            log.info("Fast mode on %s: %s, %s compilation (compiled on first use)", self.runtime.device,
                     self.fast_plan.precision, self.fast_plan.compile_scope)
            model.fast = fast_model(model, self.fast_plan)
        return model.fast

    def load(self, checkpoint: Path) -> ModelInfo:
        model = self.model(checkpoint)
        return ModelInfo(Path(checkpoint), model.inpainting, model.v_prediction, model.sdxl)

    def loaded(self) -> list[Path]:
        return self.pipelines.loaded()

    def set_cache_size(self, extra: int) -> None:
        self.pipelines.extra = max(0, int(extra))

    # -- textual inversion ----------------------------------------------------------------------------------

    def embeddings(self, checkpoint: Path, files: tuple[Path, ...]) -> EmbeddingListing:
        return listing(self.embedding_files.database(self.model(checkpoint), tuple(files)))

    def embeddings_used(self, job: GenerationJob) -> list[str]:
        model = self.model(job.checkpoint)
        model.encoder.embeddings = self.embedding_files.database(model, job.embeddings)
        return used_names(model.encoder, job) if model.encoder.embeddings else []

    # -- jobs -----------------------------------------------------------------------------------------------

    def generate(self, job: GenerationJob, events: JobEvents | None = None) -> list[Image.Image]:
        return self._run([job], events)[0]

    def generate_batch(self, jobs: list[GenerationJob], events: JobEvents | None = None) -> list[list[Image.Image]]:
        if len(jobs) > 1 and (batch_key(jobs[0]) is None or len({batch_key(job) for job in jobs}) != 1):
            raise ValueError("generate_batch takes jobs with one batch key (engine.batching.merge_groups)")
        try:
            return self._run(jobs, events)
        except NotMergeable as exc:
            log.info("Jobs offered as one batch differ in token lengths: sampling them by length")
            return self._by_token_length(jobs, exc.lengths, events)

    def _by_token_length(self, jobs: list[GenerationJob], lengths: list[frozenset[int]],
                         events: JobEvents | None) -> list[list[Image.Image]]:
        """Each set of jobs whose prompts share one token length as a batch, the others alone; results in order."""
        results: list[list[Image.Image]] = [[] for _ in jobs]
        batches: dict[frozenset[int], list[int]] = {}
        for index, found in enumerate(lengths):
            batches.setdefault(found if len(found) == 1 else frozenset({-index - 1}), []).append(index)
        for indices in batches.values():
            for index, images in zip(indices, self._run([jobs[i] for i in indices], events)):
                results[index] = images
        return results

    def _run(self, jobs: list[GenerationJob], events: JobEvents | None) -> list[list[Image.Image]]:
        """One job, or several with one batch key sampled together: each job's images."""
        job = jobs[0]
        model = self.model(job.checkpoint)
        p = job.params
        params = [j.params for j in jobs]
        warn = events.warn if events is not None else None
        latent_events = _LatentEvents(events, model.sdxl) if events is not None else None
        # Every job of a batch shares its embedding files and its VAE (the batch key says so).
        model.encoder.embeddings = self.embedding_files.database(model, job.embeddings)
        self.vaes.apply(model, job.vae)
        try:
            with self._prepared(model, p, warn) as runs_on:
                others = functools.partial(self._other_model, p=p, warn=warn)
                controls = JobControls(p.controlnets, self.controlnets, model.unet.config) if p.controlnets else None
                if isinstance(p, Img2ImgParams):
                    return run_img2img_group(runs_on, params, latent_events, others, controls)
                return run_txt2img_group(runs_on, params, latent_events, job.tiling, others, controls)
        except Exception as exc:
            if _out_of_memory(exc):
                raise DeviceOutOfMemory(f"the {self.runtime.device.type} device ran out of memory: lower the size, "
                                        "batch_size or the number of LoRAs") from exc
            raise

    @contextlib.contextmanager
    def _prepared(self, model: LoadedModel, p, warn) -> Iterator[LoadedModel]:
        """``model`` with a job's LoRAs and tiling applied, as the job runs it (its fast version in fast mode)."""
        # Every job of a batch shares the LoRA set and the per-image work: one merge serves them all. A fast job
        # merges every layer: its compiled UNet would not see hooks added after it was traced.
        with self.loras.applied(model.pipe, p.loras, warn, sampling_work(p), MERGE if p.fast else None), \
                circular_padding([model.unet, model.vae], p.circular):
            yield self.fast_version(model).for_job(*job_calls(model, self.fast_plan, p.width, p.height)) \
                if p.fast else model

    @contextlib.contextmanager
    def _other_model(self, checkpoint: str, p, warn) -> Iterator[LoadedModel]:
        """Another checkpoint for part of a job (hires checkpoint, refiner), prepared as the job's own."""
        with self._prepared(self.model(Path(checkpoint)), p, warn) as model:
            yield model

    def batch_capacity(self, pixels: int) -> int:
        return images_that_fit(pixels, self.runtime.device)

    def upscale(self, job: UpscaleJob) -> list[Image.Image]:
        run_model = model_runner(self.runtime.device, job.tiling)
        if job.size is not None:
            enlarge = enlarger(job.upscaler, run_model)
            width, height = job.size
            return [image.resize((width, height), resample=Image.Resampling.LANCZOS) if enlarge is None
                    else enlarge(image, width, height) for image in job.images]
        return [upscale_by(job.upscaler, image, job.scale, run_model) for image in job.images]

    def caption(self, images: list[Image.Image], model_dir: Path, settings: CaptionSettings) -> list[str]:
        folder = Path(model_dir)
        marker = (folder / "config.json").stat().st_mtime
        with self._captioner_lock:
            if self._captioner is None or (self._captioner.folder, self._captioner_marker) != (folder, marker):
                self._captioner = None  # free the old one before loading its replacement
                self._captioner = BlipCaptioner(folder, self.runtime.device)
                self._captioner_marker = marker
            captioner = self._captioner
        try:
            return [captioner.caption(image, settings) for image in images]
        finally:
            if not settings.keep_loaded:
                captioner.offload()

    def annotate(self, job: AnnotateJob) -> AnnotateResult:
        image = np.array(job.image.convert("RGB"), dtype=np.uint8)
        detected, poses = self.annotators.run(job.network, job.files, image, job.options)
        return AnnotateResult(Image.fromarray(np.ascontiguousarray(detected)), poses)

    def train(self, job: TrainingJob, reporter: Reporter) -> TrainResult:
        self.unload_all()  # the trainer loads its own copy of the checkpoint
        env = TrainEnvironment(device=self.runtime.device, cache_dir=self.cache_dir, job_dir=job.job_dir,
                               model_hash=job.model_hash, legacy_model_hash=job.legacy_model_hash)
        try:
            return LoraTrainer(job.plan, env, reporter).run()
        finally:
            self.unload_all()  # frees the trainer's copy; generation reloads its model on demand

    def training_slots(self) -> int:
        return 0  # training takes the one device, queued with generation

    # -- memory ---------------------------------------------------------------------------------------------

    def memory(self) -> dict:
        return cuda_memory()

    def device_name(self) -> str:
        return self.runtime.device.type

    def fast_precision(self, checkpoint: Path, width: int, height: int) -> str:
        unet, vae = job_calls(self.model(Path(checkpoint)), self.fast_plan, width, height)
        return precision_label(unet.autocast_dtype, vae.autocast_dtype)

    def parallel_jobs(self) -> int:
        return 1  # one device, one job at a time

    def replicas(self) -> list[ReplicaStatus]:
        return [ReplicaStatus("local", self.device_name(), tuple(str(p) for p in self.loaded()),
                              self.checkpoint_loads)]

    def unload_all(self) -> None:
        self.pipelines.clear()
        self.loras.clear()
        self.vaes.clear()
        self.controlnets.clear()
        self.annotators.clear()
        clear_network_cache()
        with self._captioner_lock:
            self._captioner = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
