"""Prompt text → SDXL conditioning, built the way A1111 v1.10.1 builds it (``sd_models_xl`` over sgm's conditioner).

SDXL has two text encoders, each wrapped by A1111 as its SD 1.x one is: the same 75-token chunks, comma
backtracking, emphasis with the mean restored, BREAK, and the second one's ``!`` padding after EOS.

* CLIP ViT-L gives its penultimate layer's hidden states without the final LayerNorm (sgm's ``layer: hidden,
  layer_idx: 11``); with A1111's ``sdxl_clip_l_skip`` option on it gives ``hidden_states[-CLIP_stop_at_last_layers]``
  instead.
* OpenCLIP ViT-bigG gives its penultimate layer (no final LayerNorm, no clip skip), and the pooled output: the
  last layer through the final LayerNorm at the EOS token, times the text projection, from the first chunk.

The cross-attention context is both, side by side (768 + 1280 = 2048 wide for the real model). The UNet's added
vector is the pooled output with six size numbers: original size, crop top/left (the ``sdxl_crop_top`` and
``sdxl_crop_left`` options) and target size, each as ``(height, width)``; A1111 gives both sizes as the size being
generated. sgm embeds those numbers with sinusoids before its UNet; diffusers' SDXL UNet does the same inside
(``add_time_proj``), so they travel raw here.

An empty negative prompt gives zeros for both text parts (A1111's ``force_zero_embeddings``), the size numbers stay.

A textual-inversion embedding for SDXL has a part per encoder (``clip_l``, ``clip_g``); both encoders find its name
in the same places (one vocabulary) and each writes its own part there (later A1111's ``textual_inversion_key``).

The SDXL refiner has bigG alone and five numbers in place of the six (:mod:`.conditioning_sdxl_refiner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from sdapi.engine.conditioning import PromptEncoder
from sdapi.engine.embeddings import EmbeddingDatabase, ModelWidths

# sgm's CLIP-L layer_idx 11 of 12 layers: the penultimate one.
PENULTIMATE = 2
# Size numbers after the pooled text in an added vector: original size, crop, target size.
TIME_IDS = 6
# The refiner's (sgm's sd_xl_refiner.yaml embedders): original size, crop, aesthetic score.
REFINER_TIME_IDS = 5


@dataclass(frozen=True)
class SizeConditioning:
    """SDXL's size and crop conditioning of one job.

    Args:
        width, height: the size being generated (A1111 uses it as original and target size).
        crop_top, crop_left: A1111's ``sdxl_crop_top``/``sdxl_crop_left`` options.
        clip_l_skip: A1111's ``sdxl_clip_l_skip``: CLIP-L follows ``CLIP_stop_at_last_layers``.
        aesthetic_scores: the refiner's A1111 ``(sdxl_refiner_high_aesthetic_score,
            sdxl_refiner_low_aesthetic_score)``: for prompts and for negative prompts.
    """

    width: int
    height: int
    crop_top: int = 0
    crop_left: int = 0
    clip_l_skip: bool = False
    aesthetic_scores: tuple[float, float] = (6.0, 2.5)

    def time_ids(self) -> list[float]:
        """diffusers' ``add_time_ids``: original ``(h, w)``, crop ``(top, left)``, target ``(h, w)``."""
        return [float(v) for v in (self.height, self.width, self.crop_top, self.crop_left, self.height, self.width)]

    def refiner_time_ids(self, negative: bool) -> list[float]:
        """The refiner's: original ``(h, w)``, crop ``(top, left)`` and the aesthetic score (A1111 gives negative
        prompts the low one)."""
        score = self.aesthetic_scores[1] if negative else self.aesthetic_scores[0]
        return [float(v) for v in (self.height, self.width, self.crop_top, self.crop_left, score)]


class ClipLEncoder(PromptEncoder):
    """SDXL's first text encoder: hidden states ``[-clip_skip]`` with no final LayerNorm."""

    def transformer(self, ids: torch.Tensor, clip_skip: int) -> tuple[torch.Tensor, None]:
        out = self.text_encoder(input_ids=ids, output_hidden_states=True)
        return out.hidden_states[-clip_skip], None


class BigGEncoder(PromptEncoder):
    """SDXL's second text encoder: the penultimate layer, and the projected pooled output."""

    def transformer(self, ids: torch.Tensor, clip_skip: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.text_encoder(input_ids=ids, output_hidden_states=True)
        return out.hidden_states[-PENULTIMATE], out.text_embeds


class SdxlEncoding:
    """What every SDXL prompt encoder (base, refiner) derives from its :meth:`encode_sdxl`."""

    def encode(self, texts: list[str], clip_skip: int = 1, backtrack: int = 20, emphasis: bool = True,
               multiplicity: list[int] | None = None, stop: Callable[[], bool] | None = None) -> torch.Tensor:
        """The cross-attention context alone, at the default size rules (see :meth:`encode_sdxl`)."""
        return self.encode_sdxl(texts, SizeConditioning(1024, 1024), clip_skip, backtrack, emphasis, multiplicity,
                                stop)[0]


class SdxlPromptEncoder(SdxlEncoding):
    """Encodes prompts with an SDXL pipeline's two tokenizers and text encoders, A1111-style.

    Args:
        pipe: a ``StableDiffusionXLPipeline`` (``tokenizer``/``text_encoder`` CLIP-L, ``tokenizer_2``/
            ``text_encoder_2`` bigG with projection).
        device: where the text encoders run.
    """

    def __init__(self, pipe, device: torch.device):
        self.clip_l = ClipLEncoder(pipe.tokenizer, pipe.text_encoder, device, embedding_key="clip_l")
        self.bigg = BigGEncoder(pipe.tokenizer_2, pipe.text_encoder_2, device, embedding_key="clip_g")
        self.device = device

    @property
    def embeddings(self) -> EmbeddingDatabase | None:
        """The job's textual-inversion database, shared by both encoders."""
        return self.clip_l.embeddings

    @embeddings.setter
    def embeddings(self, database: EmbeddingDatabase | None) -> None:
        self.clip_l.embeddings = self.bigg.embeddings = database

    def tokenize(self, text: str) -> list[int]:
        """CLIP-L's token ids (A1111 registers embedding names with the first tokenizer)."""
        return self.clip_l.tokenize(text)

    def widths(self) -> ModelWidths:
        """The widths an SDXL embedding's two parts must have."""
        return ModelWidths(clip_l=self.clip_l.width(), clip_g=self.bigg.width())

    @torch.no_grad()
    def encode_sdxl(self, texts: list[str], size: SizeConditioning, clip_skip: int = 1, backtrack: int = 20,
                    emphasis: bool = True, multiplicity: list[int] | None = None,
                    stop: Callable[[], bool] | None = None,
                    negative: bool = False, zero_empty: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Context and added vector for a batch of prompts.

        Args:
            texts: the prompts encoded together (one prompt's scheduled texts).
            size: the job's size and crop conditioning and CLIP-L skip rule.
            clip_skip: A1111's ``CLIP_stop_at_last_layers`` (used by CLIP-L only with ``size.clip_l_skip``).
            backtrack, emphasis, multiplicity, stop: as :meth:`PromptEncoder.encode`.
            negative: these are negative prompts.
            zero_empty: with ``negative``, empty texts give zeros for the text parts (A1111 does this only when every
                negative prompt of the batch is empty).

        Returns:
            ``(B, 77 * chunks, width_l + width_g)`` and ``(B, projection + 6)``.
        """
        skip_l = clip_skip if size.clip_l_skip else PENULTIMATE
        context_l = self.clip_l.encode(texts, skip_l, backtrack, emphasis, multiplicity, stop)
        context_g, pooled = self.bigg.encode_pooled(texts, PENULTIMATE, backtrack, emphasis, multiplicity, stop)
        context = torch.cat([context_l, context_g], dim=-1)
        if negative and zero_empty and all(text == "" for text in texts):
            context, pooled = torch.zeros_like(context), torch.zeros_like(pooled)
        time_ids = torch.tensor([size.time_ids()], dtype=pooled.dtype, device=pooled.device)
        return context, torch.cat([pooled, time_ids.expand(pooled.shape[0], -1)], dim=-1)
