"""A checkpoint loaded for generation: the diffusers pipeline's parts plus the prompt encoder over them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from sdapi.engine.conditioning import PromptEncoder
from sdapi.engine.conditioning_sdxl import REFINER_TIME_IDS, TIME_IDS, SdxlPromptEncoder
from sdapi.engine.conditioning_sdxl_refiner import SdxlRefinerPromptEncoder

INPAINT_UNET_CHANNELS = 9


@dataclass
class LoadedModel:
    """A pipeline ready to generate, with its prompt encoder.

    Args:
        pipe: the diffusers pipeline (its components are used, not its ``__call__``).
        encoder: A1111-style prompt encoder over the pipeline's tokenizer(s)/text encoder(s)
            (:func:`prompt_encoder`).
        device, dtype: where and in which precision the UNet/VAE run.
        fast: the same model as fast-mode jobs run it, once one has (it lives and goes with this one).
        embeddings: ``(file versions, database)``: the textual-inversion database last built for this model
            (:class:`sdapi.engine.embedding_cache.EmbeddingFiles`).
        vae: which VAE weights ``pipe.vae`` holds now, and a copy of the checkpoint's own
            (:class:`sdapi.engine.vae_switch.VaeState`).
    """

    pipe: object
    encoder: PromptEncoder
    device: torch.device
    dtype: torch.dtype
    fast: "LoadedModel | None" = field(default=None, repr=False, compare=False)
    embeddings: Any = field(default=None, repr=False, compare=False)
    vae_state: Any = field(default=None, repr=False, compare=False)

    @property
    def unet(self):
        return self.pipe.unet

    @property
    def vae(self):
        return self.pipe.vae

    @property
    def v_prediction(self) -> bool:
        """The UNet predicts v (SD 2.x 768-v), so A1111 wraps it in k-diffusion's ``CompVisVDenoiser``."""
        return self.pipe.scheduler.config.get("prediction_type") == "v_prediction"

    @property
    def sdxl(self) -> bool:
        """An SDXL model (base, inpainting or refiner, as A1111's ``is_sdxl``): bigG, and the UNet's added vector
        (pooled text, size numbers)."""
        return getattr(self.pipe, "text_encoder_2", None) is not None

    @property
    def sdxl_refiner(self) -> bool:
        """The SDXL refiner: bigG alone, and an aesthetic score among its added numbers."""
        return self.sdxl and getattr(self.pipe, "text_encoder", None) is None

    @property
    def time_ids(self) -> int:
        """How many numbers end the UNet's added vector (after the pooled text): 6, or the refiner's 5."""
        return REFINER_TIME_IDS if self.sdxl_refiner else TIME_IDS

    @property
    def inpainting(self) -> bool:
        """The UNet takes the inpainting conditioning (A1111's ``hybrid``/``concat`` key): 9 input channels."""
        return int(self.unet.config.in_channels) == INPAINT_UNET_CHANNELS


def prompt_encoder(pipe, device: torch.device) -> PromptEncoder | SdxlPromptEncoder | SdxlRefinerPromptEncoder:
    """The A1111-style prompt encoder for a pipeline: SDXL's two-encoder one, the SDXL refiner's bigG one, or the
    SD 1.x/2.x one."""
    if getattr(pipe, "text_encoder_2", None) is not None and getattr(pipe, "text_encoder", None) is None:
        return SdxlRefinerPromptEncoder(pipe, device)
    if getattr(pipe, "text_encoder_2", None) is not None:
        return SdxlPromptEncoder(pipe, device)
    return PromptEncoder(pipe.tokenizer, pipe.text_encoder, device)
