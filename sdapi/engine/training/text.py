"""Caption conditioning as kohya computes it for training: clip skip and 75/150/225-token captions.

A caption longer than 75 tokens is tokenized to ``max_token_length + 2`` ids and cut into chunks of
``BOS + 75 ids + EOS``; each chunk is encoded on its own and the chunks are joined back into one
``1 + max_token_length + 1`` sequence (the first BOS state, every chunk's middle, the last EOS state).
"""

from __future__ import annotations

import torch

CHUNK = 77


def chunk_ids(ids: torch.Tensor, pad_id: int, eos_id: int) -> torch.Tensor:
    """Cut one caption's ids (``max_token_length + 2`` long) into ``(chunks, 77)``.

    Args:
        ids: the padded ids of one caption.
        pad_id, eos_id: the tokenizer's; SD2's pad differs from EOS, and a chunk cut mid-text then ends in EOS.
    """
    if ids.shape[0] <= CHUNK:
        return ids[None]
    chunks = []
    for start in range(1, ids.shape[0] - CHUNK + 2, CHUNK - 2):
        chunk = torch.cat([ids[:1], ids[start:start + CHUNK - 2], ids[-1:]])
        if pad_id != eos_id:
            if chunk[-2] not in (eos_id, pad_id):
                chunk[-1] = eos_id
            if chunk[1] == pad_id:
                chunk[1] = eos_id
        chunks.append(chunk)
    return torch.stack(chunks)


class CaptionEncoder:
    """Encodes a batch of captions for the UNet.

    Args:
        tokenizer: the pipeline's CLIP tokenizer.
        text_encoder: the pipeline's ``CLIPTextModel`` (with or without ``.text_model``).
        clip_skip: kohya's ``clip_skip`` (2 = penultimate layer + final LayerNorm); ``None``/1: last layer.
        max_token_length: 75, 150 or 225 (``None``: 75).
        device: where the text encoder runs.
    """

    def __init__(self, tokenizer, text_encoder, clip_skip: int | None, max_token_length: int | None,
                 device: torch.device):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.clip_skip = clip_skip or 1
        self.max_token_length = max_token_length or 75
        self.device = device

    def input_ids(self, captions: list[str]) -> torch.Tensor:
        """``(batch, chunks, 77)`` token ids."""
        ids = self.tokenizer(captions, padding="max_length", truncation=True, max_length=self.max_token_length + 2,
                             return_tensors="pt").input_ids
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        return torch.stack([chunk_ids(row, pad_id, self.tokenizer.eos_token_id) for row in ids])

    def hidden_states(self, ids: torch.Tensor) -> torch.Tensor:
        """The text encoder's states for ``(N, 77)`` ids, clip skip applied."""
        out = self.text_encoder(input_ids=ids, output_hidden_states=self.clip_skip > 1)
        if self.clip_skip > 1:
            text_model = getattr(self.text_encoder, "text_model", self.text_encoder)
            return text_model.final_layer_norm(out.hidden_states[-self.clip_skip])
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    def encode(self, captions: list[str]) -> torch.Tensor:
        """``(batch, 1 + max_token_length + 1, hidden)`` conditioning (``(batch, 77, hidden)`` for 75)."""
        ids = self.input_ids(captions).to(self.device)
        batch, chunks = ids.shape[:2]
        return join_chunks(self.hidden_states(ids.reshape(-1, CHUNK)), batch, chunks)


def join_chunks(states: torch.Tensor, batch: int, chunks: int) -> torch.Tensor:
    """``(batch * chunks, 77, hidden)`` chunk states → one sequence per caption: the first BOS state, every
    chunk's middle 75, the last state."""
    states = states.reshape(batch, chunks * CHUNK, -1)
    if chunks == 1:
        return states
    parts = [states[:, :1]] + [states[:, i:i + CHUNK - 2] for i in range(1, chunks * CHUNK, CHUNK)]
    return torch.cat(parts + [states[:, -1:]], dim=1)
