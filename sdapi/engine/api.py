"""The engine's interface: what the layers above ask of the device, and what they get back. No torch here.

Everything that crosses it is plain data (paths, numbers, dataclasses, PIL images), so an implementation in
another process (a Ray Serve replica) can stand behind the same interface: jobs in, images and progress events
out. :class:`sdapi.engine.local.LocalEngine` is the implementation that drives a device in this process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from PIL import Image

from sdapi.engine.params import Img2ImgParams, Txt2ImgParams
from sdapi.engine.training.plan import TrainPlan
from sdapi.engine.training.reporting import Reporter, TrainResult
from sdapi.engine.upscalers import Tiling, UpscalerSpec


@runtime_checkable
class Preview(Protocol):
    """A live preview of the running batch, rendered only when somebody asks for it."""

    def image(self) -> Image.Image | None: ...


class JobEvents(Protocol):
    """What a running job tells the outside world, and asks it (A1111's ``shared.state``).

    The engine calls these from its worker; implementations must be cheap and thread-safe.
    """

    @property
    def interrupted(self) -> bool:
        """The whole job was interrupted: no further batch starts."""

    def should_stop(self) -> bool:
        """The current batch must stop sampling (interrupt or skip)."""

    def next_batch(self) -> None:
        """A batch starts (A1111's ``state.job``: "Batch i out of n")."""

    def next_pass(self) -> None:
        """A second sampling pass of the same batch starts (the hires fix; A1111's ``nextjob``)."""

    def sampling(self, steps: int) -> None:
        """A sampling run of ``steps`` steps starts (A1111's ``launch_sampling``)."""

    def step(self, step: int, preview: Preview | None) -> None:
        """Sampling reached ``step``; ``preview`` renders its current latent."""

    def batch_done(self) -> None:
        """The batch's images are finished."""

    def warn(self, message: str) -> None:
        """Something in the job was not applied as asked (a LoRA file that cannot load...)."""


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a loaded checkpoint that shape a response.

    Args:
        checkpoint: the file.
        inpainting: the UNet takes the inpainting conditioning (9 input channels).
        v_prediction: the UNet predicts v.
        sdxl: an SDXL model (base, inpainting or refiner).
    """

    checkpoint: Path
    inpainting: bool
    v_prediction: bool = False
    sdxl: bool = False


@dataclass
class GenerationJob:
    """One txt2img or img2img job.

    Args:
        checkpoint: the checkpoint file (a path every engine replica can read).
        params: the resolved parameters (img2img when they are ``Img2ImgParams``).
        tiling: model upscalers' tile options (hires fix with an ESRGAN-type upscaler).
        embeddings: the textual-inversion files the prompts may name, in folder order (later ones win a name).
        vae: a VAE file to decode and encode with instead of the checkpoint's own (``None``: its own).
    """

    checkpoint: Path
    params: Txt2ImgParams | Img2ImgParams
    tiling: Tiling = field(default_factory=Tiling)
    embeddings: tuple[Path, ...] = ()
    vae: Path | None = None


@dataclass(frozen=True)
class EmbeddingInfo:
    """One textual-inversion embedding as ``/sdapi/v1/embeddings`` lists it (A1111's ``Embedding`` fields).

    Args:
        name: the name prompts use.
        filename: its file.
        step, sd_checkpoint, sd_checkpoint_name: training facts the file records, if any.
        shape: the vector width (SDXL: both parts' widths added).
        vectors: how many vectors (places in a chunk) it takes.
    """

    name: str
    filename: Path
    step: int | None
    sd_checkpoint: str | None
    sd_checkpoint_name: str | None
    shape: int
    vectors: int

    def as_item(self) -> dict:
        """The ``EmbeddingItem``."""
        return {"step": self.step, "sd_checkpoint": self.sd_checkpoint, "sd_checkpoint_name": self.sd_checkpoint_name,
                "shape": self.shape, "vectors": self.vectors}


@dataclass(frozen=True)
class EmbeddingListing:
    """The embeddings of the files given, for one checkpoint: those it can use (A1111's order: by name, case
    ignored) and those whose vectors do not fit it (in folder order)."""

    loaded: tuple[EmbeddingInfo, ...] = ()
    skipped: tuple[EmbeddingInfo, ...] = ()

    def as_response(self) -> dict:
        """``EmbeddingsResponse``."""
        return {"loaded": {e.name: e.as_item() for e in self.loaded},
                "skipped": {e.name: e.as_item() for e in self.skipped}}

    def file_of(self, name: str) -> Path | None:
        """The file of a loaded embedding."""
        return next((e.filename for e in self.loaded if e.name == name), None)


@dataclass
class UpscaleJob:
    """Images through one upscaler.

    Args:
        images: the sources.
        upscaler: the registry row (pixel filter or model file).
        tiling: model upscalers' tile options.
        scale: A1111's ``Upscaler.upscale``: the result is ``int(w * scale) x int(h * scale)``.
        size: or A1111's ``resize`` with an upscaler: enlarge by the larger ratio, then Lanczos to exactly this.
    """

    images: list[Image.Image]
    upscaler: UpscalerSpec
    tiling: Tiling = field(default_factory=Tiling)
    scale: float | None = None
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class CaptionSettings:
    """A1111's ``interrogate_clip_*`` generation options (its defaults: 1 beam, 24 to 48 tokens).

    Args:
        keep_loaded: A1111's ``interrogate_keep_models_in_memory``: leave the captioner on the accelerator.
    """

    num_beams: int = 1
    min_length: int = 24
    max_length: int = 48
    keep_loaded: bool = False


@dataclass(frozen=True)
class TrainingJob:
    """One LoRA training run.

    Args:
        plan: the checked plan (:class:`sdapi.engine.training.plan.TrainPlan`).
        job_dir: the job's own folder (samples, latent cache).
        model_hash: the base checkpoint's sha256, for ``ss_new_sd_model_hash``.
        legacy_model_hash: its 8-hex legacy hash, for ``ss_sd_model_hash``.
    """

    plan: TrainPlan
    job_dir: Path
    model_hash: str | None = None
    legacy_model_hash: str | None = None


@dataclass(frozen=True)
class AnnotateJob:
    """A model-based ControlNet preprocessor's network run on one image.

    Args:
        network: the network's name (``hed``, ``lineart``, ``lineart_anime``, ``midas``, ``mlsd``, ``openpose``).
        files: its annotator files by role (``model``; OpenPose's ``body``, ``hand``, ``face``).
        image: the input, already resized and padded as the preprocessor does it (RGB).
        options: the network's switches (``safe``, ``output``, ``bg_threshold``, ``value_threshold``/
            ``distance_threshold``, ``body``/``hand``/``face``).
    """

    network: str
    files: dict[str, Path]
    image: Image.Image
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AnnotateResult:
    """A network's map (mode ``L`` or ``RGB``, the input's size) and, for OpenPose, the extension's pose JSON."""

    image: Image.Image
    poses: dict | None = None


@dataclass(frozen=True)
class ReplicaStatus:
    """One engine replica as ``/sdapi/v1/cluster`` shows it.

    Args:
        replica_id: its name (``local`` for the in-process engine).
        device: the device its jobs run on.
        loaded: the checkpoint files it holds, least recently used first.
        checkpoint_loads: how many times it read a checkpoint file (affinity keeps this low).
        running: the job it runs now (``None``: idle).
        jobs_done: jobs it finished since it started.
    """

    replica_id: str
    device: str
    loaded: tuple[str, ...] = ()
    checkpoint_loads: int = 0
    running: str | None = None
    jobs_done: int = 0


class Engine(Protocol):
    """The device behind the server: loads checkpoints, generates, upscales, trains.

    Every method may block for as long as the work takes; the serving layer calls them from its queue's workers
    (one, unless :meth:`parallel_jobs` says more).
    """

    def load(self, checkpoint: Path) -> ModelInfo:
        """Load (or switch to) a checkpoint; the engine keeps a small LRU of loaded ones.

        Raises:
            UnsupportedCheckpoint: a file it cannot load.
        """

    def generate(self, job: GenerationJob, events: JobEvents | None = None) -> list[Image.Image]:
        """Generate a job's images (fewer when interrupted), LoRAs applied for this job only.

        Raises:
            EngineError: an unknown sampler, NaNs, ``AND`` with a CompVis sampler, out of memory...
        """

    def generate_batch(self, jobs: list[GenerationJob], events: JobEvents | None = None) -> list[list[Image.Image]]:
        """Several jobs sampled as one batch, each job's images exactly those it gets alone (cross-request
        batching); ``jobs`` share one :func:`sdapi.engine.batching.batch_key`.

        Raises:
            EngineError: as :meth:`generate`, for the whole batch (the caller may run the jobs alone instead).
        """

    def embeddings(self, checkpoint: Path, files: tuple[Path, ...]) -> EmbeddingListing:
        """Read the embedding files (each version once) and sort them out for a checkpoint (loaded if needed).

        Files that hold no readable embedding are logged and left out of both lists.
        """

    def embeddings_used(self, job: GenerationJob) -> list[str]:
        """The names of the embeddings a job's prompts use: its positive prompts' in order of first use, then its
        negative prompts' (A1111's ``TI hashes`` order; a name in both comes twice, as there)."""

    def batch_capacity(self, pixels: int) -> int:
        """How many images of ``pixels`` pixels one sampling batch may hold on this device (free memory)."""

    def upscale(self, job: UpscaleJob) -> list[Image.Image]:
        """The job's images through its upscaler."""

    def caption(self, images: list[Image.Image], model_dir: Path, settings: CaptionSettings) -> list[str]:
        """BLIP captions for ``images`` with the captioner in ``model_dir`` (loaded once, kept while it is the one
        asked for; moved off the accelerator after each call unless ``settings.keep_loaded``)."""

    def annotate(self, job: AnnotateJob) -> AnnotateResult:
        """Run a ControlNet annotator network (loaded once, then kept in a small LRU).

        Raises:
            UnsupportedRequest: an annotator file that is not the network it should hold.
        """

    def train(self, job: TrainingJob, reporter: Reporter) -> TrainResult:
        """Run a LoRA training job; ``reporter`` receives its progress and files, and says when to stop."""

    def training_slots(self) -> int:
        """How many LoRA training jobs it runs at once beside generation, each on a device of its own (Ray); 0:
        training runs on the generation device, queued with generation."""

    def loaded(self) -> list[Path]:
        """Checkpoints in memory, least recently used first."""

    def set_cache_size(self, extra: int) -> None:
        """Keep ``extra`` checkpoints loaded besides the current one (A1111's ``sd_checkpoint_cache``)."""

    def memory(self) -> dict:
        """Device memory in A1111's ``/memory`` ``cuda`` shape, or ``{"error": ...}``."""

    def unload_all(self) -> None:
        """Free every device tensor the engine holds: checkpoints, LoRA files, upscaler networks."""

    def device_name(self) -> str:
        """The device jobs run on (``cpu``, ``cuda``...)."""

    def fast_precision(self, checkpoint: Path, width: int, height: int) -> str:
        """The precision a fast-mode job of this checkpoint and first-pass size computes in on this device
        (``bf16``, ``fp16`` or ``fp32``), for its infotext."""

    def parallel_jobs(self) -> int:
        """How many jobs it runs at once (one per replica); the serving layer gives its queue as many workers."""

    def replicas(self) -> list[ReplicaStatus]:
        """Its replicas now (the in-process engine is one)."""


# Builds the engine for a process: the app's lifespan calls it once (the local engine imports torch lazily).
EngineFactory = Callable[[], Engine]
