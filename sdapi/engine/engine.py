"""The engine facade: loads checkpoints into a small cache and runs generation jobs on the device."""

from __future__ import annotations

import functools
import gc
import logging
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from sdapi.engine.checkpoint_loader import load_pipeline  # noqa: E402
from sdapi.engine.circular import circular_padding  # noqa: E402
from sdapi.engine.conditioning import PromptEncoder  # noqa: E402
from sdapi.engine.control import JobControl  # noqa: E402
from sdapi.engine.hires import hires_pass  # noqa: E402
from sdapi.engine.image_cond import is_inpainting  # noqa: E402
from sdapi.engine.img2img_job import run_img2img  # noqa: E402
from sdapi.engine.lora import LoraApplier  # noqa: E402
from sdapi.engine.lora_cache import LoraCache  # noqa: E402
from sdapi.engine.lora_file import load_lora_network  # noqa: E402
from sdapi.engine.params import Img2ImgParams, Txt2ImgParams  # noqa: E402
from sdapi.engine.pipeline_cache import PipelineCache  # noqa: E402
from sdapi.engine.preview import approx_cheap  # noqa: E402
from sdapi.engine.runtime import Runtime, cuda_memory, enable_attention  # noqa: E402
from sdapi.engine.txt2img import LoadedModel, run_txt2img  # noqa: E402
from sdapi.engine.upscale_model import model_runner  # noqa: E402
from sdapi.upscalers import Tiling, UpscalerSpec, upscale_by  # noqa: E402

log = logging.getLogger("sdapi")


class Engine:
    """Owns the device and the loaded pipelines.

    Args:
        runtime: device/dtype/attention choices.
        cache_dir: where assembled diffusers config dirs are kept.
        extra_cached: A1111's ``sd_checkpoint_cache``: pipelines kept besides the current one.
    """

    def __init__(self, runtime: Runtime, cache_dir: Path, extra_cached: int = 0):
        self.runtime = runtime
        self.cache_dir = cache_dir
        self.pipelines: PipelineCache[LoadedModel] = PipelineCache(self._load, extra_cached)
        self.loras = LoraApplier(LoraCache(functools.partial(load_lora_network, device=runtime.device,
                                                             dtype=runtime.dtype)))

    def _load(self, path: Path) -> LoadedModel:
        log.info("Loading checkpoint %s on %s (%s)", path, self.runtime.device, self.runtime.dtype)
        pipe = load_pipeline(path, device=self.runtime.device, dtype=self.runtime.dtype, cache_dir=self.cache_dir)
        attention = enable_attention(pipe, self.runtime)
        log.info("Loaded %s (attention: %s)", path.name, attention)
        encoder = PromptEncoder(pipe.tokenizer, pipe.text_encoder, self.runtime.device)
        return LoadedModel(pipe=pipe, encoder=encoder, device=self.runtime.device, dtype=self.runtime.dtype)

    def unload_all(self) -> None:
        """Drop every loaded pipeline and return the memory (``/unload-checkpoint``)."""
        self.pipelines.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @staticmethod
    def preview(latents) -> Image.Image | None:
        """A cheap live preview of the first image of a batch of latents."""
        return approx_cheap(latents)

    @staticmethod
    def memory() -> dict:
        """CUDA memory figures in A1111's ``/memory`` shape, or ``{"error": "unavailable"}``."""
        return cuda_memory()

    def model(self, path: Path) -> LoadedModel:
        """The loaded model for a checkpoint file (loaded once, then cached)."""
        return self.pipelines.get(Path(path))

    def txt2img(self, path: Path, params: Txt2ImgParams, control: JobControl | None = None,
                tiling: Tiling = Tiling()) -> list[Image.Image]:
        """Generate ``params`` with the checkpoint at ``path`` (its LoRAs applied for this job only).

        Args:
            tiling: model upscalers' tile options (a hires fix with an ESRGAN-type upscaler).
        """
        model = self.model(path)
        second_pass = None
        if params.hires is not None:
            def second_pass(latents, batch, conds):
                return hires_pass(model, params, batch, latents, conds, control, tiling)
        with self.loras.applied(model.pipe, params.loras), self._circular(model, params):
            return run_txt2img(model, params, control, second_pass)

    @staticmethod
    def _circular(model: LoadedModel, params: Txt2ImgParams):
        return circular_padding([model.unet, model.vae], params.circular)

    def is_inpainting(self, path: Path) -> bool:
        """Whether the checkpoint at ``path`` is an inpainting model (9-channel UNet); loads it if needed."""
        return is_inpainting(self.model(path))

    def img2img(self, path: Path, params: Img2ImgParams, control: JobControl | None = None) -> list[Image.Image]:
        """Generate an img2img/inpainting job with the checkpoint at ``path`` (LoRAs applied for this job only)."""
        model = self.model(path)
        with self.loras.applied(model.pipe, params.loras), self._circular(model, params):
            return run_img2img(model, params, control)

    def upscale(self, spec: UpscalerSpec, image: Image.Image, scale: float, tiling: Tiling = Tiling()) -> Image.Image:
        """``image`` enlarged by ``scale`` with an upscaler row (A1111's ``Upscaler.upscale``)."""
        return upscale_by(spec, image, scale, self.upscaler_runner(tiling))

    def upscaler_runner(self, tiling: Tiling = Tiling()):
        """A ``sdapi.upscalers.ModelRunner``: one pass of a model upscaler row on this engine's device."""
        return model_runner(self.runtime.device, tiling)
