"""SDXL conditioning for training, as kohya's ``sdxl_train_network.py`` computes it.

* Text (``train_util.get_hidden_states_sdxl``): each caption is cut into 75-token chunks for both tokenizers as
  for SD 1.x (:mod:`.text`); CLIP-L gives its penultimate layer (``hidden_states[11]`` of 12), bigG its
  penultimate layer too, both without the final LayerNorm, side by side; the pooled output is bigG's projected
  EOS state of the caption's first chunk. ``clip_skip`` plays no part (kohya warns it is unused on SDXL).
* Size numbers (``train_util`` and ``sdxl_train_util.get_size_embeddings``): original size ``(h, w)`` of the image
  file, crop ``(top, left)`` and target size ``(h, w)`` = the bucket. The crop is kohya's
  ``BucketManager.get_crop_ltrb``, which follows Stability AI's preprocessing (the margin of the image fitted
  inside the bucket), and a flipped image's left edge is measured from the right.

These are the numbers generation feeds the UNet (:mod:`sdapi.engine.conditioning_sdxl`): the context, and the
pooled output with six raw size numbers that diffusers' UNet embeds itself (``added_cond_kwargs``).
"""

from __future__ import annotations

import torch

from sdapi.engine.conditioning_sdxl import PENULTIMATE
from sdapi.engine.training.buckets import Size
from sdapi.engine.training.text import CHUNK, CaptionEncoder, join_chunks


def crop_top_left(bucket: Size, image_size: Size, flip: bool) -> tuple[int, int]:
    """kohya's SDXL crop numbers ``(top, left)`` for an image of ``image_size`` ``(w, h)`` in ``bucket`` ``(w, h)``."""
    bucket_w, bucket_h = bucket
    image_ratio = image_size[0] / image_size[1]
    if bucket_w / bucket_h > image_ratio:
        fitted_w, fitted_h = bucket_h * image_ratio, bucket_h
    else:
        fitted_w, fitted_h = bucket_w, bucket_w / image_ratio
    left, top = (bucket_w - fitted_w) // 2, (bucket_h - fitted_h) // 2
    if flip:
        left = bucket_w - (left + fitted_w)
    return int(top), int(left)


def time_ids(bucket: Size, image_size: Size, flip: bool) -> list[float]:
    """diffusers' ``add_time_ids`` of one training image: original ``(h, w)``, crop ``(top, left)``, target."""
    top, left = crop_top_left(bucket, image_size, flip)
    return [float(v) for v in (image_size[1], image_size[0], top, left, bucket[1], bucket[0])]


class SdxlCaptionEncoder:
    """Encodes a batch of captions with an SDXL pipeline's two text encoders.

    Args:
        pipe: the ``StableDiffusionXLPipeline`` being trained (its encoders may carry LoRA hooks).
        max_token_length: 75, 150 or 225 (``None``: 75).
        device: where the text encoders run.
    """

    def __init__(self, pipe, max_token_length: int | None, device: torch.device):
        self.clip_l = CaptionEncoder(pipe.tokenizer, pipe.text_encoder, None, max_token_length, device)
        self.bigg = CaptionEncoder(pipe.tokenizer_2, pipe.text_encoder_2, None, max_token_length, device)
        self.device = device

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, tokens, width_l + width_g)`` context and ``(batch, projection)`` pooled output."""
        ids_l = self.clip_l.input_ids(captions).to(self.device)
        ids_g = self.bigg.input_ids(captions).to(self.device)
        batch, chunks = ids_l.shape[:2]
        out_l = self.clip_l.text_encoder(input_ids=ids_l.reshape(-1, CHUNK), output_hidden_states=True)
        out_g = self.bigg.text_encoder(input_ids=ids_g.reshape(-1, CHUNK), output_hidden_states=True)
        context = torch.cat([join_chunks(out_l.hidden_states[-PENULTIMATE], batch, chunks),
                             join_chunks(out_g.hidden_states[-PENULTIMATE], batch, chunks)], dim=-1)
        pooled = out_g.text_embeds.reshape(batch, chunks, -1)[:, 0]
        return context, pooled
