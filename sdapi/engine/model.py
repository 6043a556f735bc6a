"""A checkpoint loaded for generation: the diffusers pipeline's parts plus the prompt encoder over them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sdapi.engine.conditioning import PromptEncoder

INPAINT_UNET_CHANNELS = 9


@dataclass
class LoadedModel:
    """A pipeline ready to generate, with its prompt encoder.

    Args:
        pipe: the diffusers pipeline (its components are used, not its ``__call__``).
        encoder: A1111-style prompt encoder over the pipeline's tokenizer/text encoder.
        device, dtype: where and in which precision the UNet/VAE run.
    """

    pipe: object
    encoder: PromptEncoder
    device: torch.device
    dtype: torch.dtype

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
        """An SDXL UNet (it takes pooled text embeddings and size conditioning: ``addition_embed_type``)."""
        return self.unet.config.get("addition_embed_type") == "text_time"

    @property
    def inpainting(self) -> bool:
        """The UNet takes the inpainting conditioning (A1111's ``hybrid``/``concat`` key): 9 input channels."""
        return int(self.unet.config.in_channels) == INPAINT_UNET_CHANNELS
