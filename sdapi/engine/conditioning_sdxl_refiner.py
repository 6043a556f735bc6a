"""Prompt text → SDXL refiner conditioning, built the way A1111 v1.10.1 builds it (``sd_models_xl`` over sgm's
conditioner as ``sd_xl_refiner.yaml`` configures it).

The refiner's conditioner has one text encoder, OpenCLIP ViT-bigG, wrapped by A1111 as the base model's second one
(same chunks, emphasis, ``!`` padding): its penultimate layer is the whole cross-attention context (1280 wide for
the real model) and its pooled output starts the UNet's added vector. Three number embedders follow in sgm's order:
original size ``(height, width)``, crop ``(top, left)`` and the aesthetic score, five numbers where the base model
has six (no target size). A1111 gives the size being generated as original size, the ``sdxl_crop_top``/
``sdxl_crop_left`` options as crop, and ``sdxl_refiner_high_aesthetic_score`` to prompts,
``sdxl_refiner_low_aesthetic_score`` to negative prompts (its ``is_negative_prompt``).

An empty negative prompt gives zeros for the text parts (A1111's ``force_zero_embeddings``), the numbers stay.
"""

from __future__ import annotations

from typing import Callable

import torch

from sdapi.engine.embeddings import ModelWidths

from sdapi.engine.conditioning_sdxl import PENULTIMATE, BigGEncoder, SdxlEncoding, SizeConditioning


class SdxlRefinerPromptEncoder(SdxlEncoding):
    """Encodes prompts with an SDXL refiner pipeline's bigG tokenizer and text encoder, A1111-style.

    Args:
        pipe: a ``StableDiffusionXLImg2ImgPipeline`` without a first text encoder (``tokenizer_2``/
            ``text_encoder_2`` bigG with projection).
        device: where the text encoder runs.
    """

    def __init__(self, pipe, device: torch.device):
        self.bigg = BigGEncoder(pipe.tokenizer_2, pipe.text_encoder_2, device)
        self.device = device
        # Set by the job's textual-inversion lookup; none fits (see :meth:`widths`), so it stays unused.
        self.embeddings = None

    def tokenize(self, text: str) -> list[int]:
        """bigG's token ids."""
        return self.bigg.tokenize(text)

    def widths(self) -> ModelWidths:
        """No textual-inversion embedding applies to a refiner: SDXL embeddings carry a CLIP-L part, which the
        refiner has no encoder for (its CLIP-L width counts as 0), so each goes to ``skipped``."""
        return ModelWidths(clip_l=0, clip_g=self.bigg.width())

    @torch.no_grad()
    def encode_sdxl(self, texts: list[str], size: SizeConditioning, clip_skip: int = 1, backtrack: int = 20,
                    emphasis: bool = True, multiplicity: list[int] | None = None,
                    stop: Callable[[], bool] | None = None,
                    negative: bool = False, zero_empty: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Context and added vector for a batch of prompts.

        Args:
            texts: the prompts encoded together (one prompt's scheduled texts).
            size: the job's size, crop and aesthetic-score conditioning.
            clip_skip: unused: A1111 applies no clip skip to bigG.
            backtrack, emphasis, multiplicity, stop: as :meth:`PromptEncoder.encode`.
            negative: these are negative prompts (the low aesthetic score).
            zero_empty: with ``negative``, empty texts give zeros for the text parts (A1111 does this only when every
                negative prompt of the batch is empty).

        Returns:
            ``(B, 77 * chunks, width_g)`` and ``(B, projection + 5)``.
        """
        context, pooled = self.bigg.encode_pooled(texts, PENULTIMATE, backtrack, emphasis, multiplicity, stop)
        if negative and zero_empty and all(text == "" for text in texts):
            context, pooled = torch.zeros_like(context), torch.zeros_like(pooled)
        numbers = torch.tensor([size.refiner_time_ids(negative)], dtype=pooled.dtype, device=pooled.device)
        return context, torch.cat([pooled, numbers.expand(pooled.shape[0], -1)], dim=-1)
