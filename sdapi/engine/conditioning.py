"""Prompt text → CLIP conditioning, built the way A1111 v1.2.1 builds it for SD 1.x/2.x.

Tokens are laid into 75-token chunks (a full chunk moves its tail after a recent comma into the next one,
A1111's ``comma_padding_backtrack``), each chunk is wrapped as ``[BOS] + 75 + [EOS]`` and encoded on its own,
and the chunks are concatenated. Per-token weights come from A1111's emphasis syntax
(:func:`sdapi.prompts.attention.parse_attention`, unless the ``enable_emphasis`` option is off); they multiply the
hidden states, and then the mean over the batch is restored.

A textual-inversion embedding's name (:mod:`sdapi.engine.embeddings`) takes as many places in its chunk as it has
vectors, filled with placeholder ids whose token embeddings are replaced by its vectors before the transformer
(A1111's ``EmbeddingsWithFixes``); one that would cross the chunk's end starts the next chunk.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from sdapi.engine.embeddings import EmbeddingDatabase, ModelWidths, TextualInversion
from sdapi.engine.encode_cache import EncodeCache, weights_state
from sdapi.engine.errors import SamplingInterrupted
from sdapi.prompts.attention import BREAK_WEIGHT, is_break, parse_attention

CHUNK_LENGTH = 75
# The id an embedding's places hold until its vectors replace their token embeddings (A1111 uses 0 too).
EMBEDDING_PLACEHOLDER = 0

# Finds an embedding's name at a position of a run of ids: ``(embedding, ids its name takes)`` or ``None``.
EmbeddingFinder = Callable[[list[int], int], "tuple[TextualInversion, int] | None"]


@dataclass
class PromptChunk:
    """Up to 75 token ids with their weights (before BOS/EOS are added).

    ``fixes`` are A1111's ``PromptChunkFix``es: ``(offset among the 75, embedding)`` whose vectors go there.
    """

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    fixes: list[tuple[int, Any]] = field(default_factory=list)


def split_into_chunks(
    token_weights: list[tuple[list[int], float]],
    comma_id: int | None,
    end_id: int,
    start_id: int,
    backtrack: int = 20,
    find: EmbeddingFinder | None = None,
) -> list[PromptChunk]:
    """Lay weighted token runs into padded 77-id chunks with A1111's comma backtracking.

    Args:
        token_weights: ``(token ids, weight)`` runs in prompt order; a run with weight ``-1`` and no tokens is BREAK.
        comma_id: id of ``,</w>``; ``None`` disables backtracking.
        end_id, start_id: EOS (also used as padding, as A1111 does for SD1) and BOS.
        backtrack: how far back (in tokens) a comma may move the tail of a full chunk.
        find: where embeddings' names are (``None``: no embeddings); each found takes one place per vector, with
            the run's weight, starting a new chunk when it would not fit in this one.

    Returns:
        Chunks whose ``tokens`` are exactly 77 ids with ``weights`` 1.0 on BOS/EOS/padding.
    """
    chunks: list[PromptChunk] = []
    chunk = PromptChunk()
    last_comma = -1

    def close_chunk() -> None:
        nonlocal chunk, last_comma
        pad = CHUNK_LENGTH - len(chunk.tokens)
        tokens = [start_id] + chunk.tokens + [end_id] * pad + [end_id]
        weights = [1.0] + chunk.weights + [1.0] * pad + [1.0]
        chunks.append(PromptChunk(tokens, weights, chunk.fixes))
        chunk = PromptChunk()
        last_comma = -1

    for ids, weight in token_weights:
        if weight == -1 and not ids:
            close_chunk()
            continue
        position = 0
        while position < len(ids):
            token = ids[position]
            if token == comma_id:
                last_comma = len(chunk.tokens)
            elif (backtrack and len(chunk.tokens) == CHUNK_LENGTH and last_comma != -1
                  and len(chunk.tokens) - last_comma <= backtrack):
                cut = last_comma + 1
                # A1111 moves the tail's ids and weights but leaves its fixes with the closed chunk (v1.2.1 to
                # v1.10.1 alike): an embedding in the tail is then written over that chunk's padding.
                moved = PromptChunk(chunk.tokens[cut:], chunk.weights[cut:])
                chunk.tokens, chunk.weights = chunk.tokens[:cut], chunk.weights[:cut]
                close_chunk()
                chunk = moved
            if len(chunk.tokens) == CHUNK_LENGTH:
                close_chunk()
            found = find(ids, position) if find is not None else None
            if found is None:
                chunk.tokens.append(token)
                chunk.weights.append(weight)
                position += 1
                continue
            embedding, name_length = found
            if len(chunk.tokens) + embedding.count > CHUNK_LENGTH:
                close_chunk()
            chunk.fixes.append((len(chunk.tokens), embedding))
            chunk.tokens += [EMBEDDING_PLACEHOLDER] * embedding.count
            chunk.weights += [weight] * embedding.count
            position += name_length
    if chunk.tokens or not chunks:
        close_chunk()
    return chunks


class PromptEncoder:
    """Encodes prompts with a pipeline's tokenizer and text encoder, A1111-style.

    Args:
        tokenizer: a CLIP tokenizer.
        text_encoder: ``CLIPTextModel`` (works whether or not it wraps ``.text_model``).
        device: where the text encoder runs.
        embedding_key: which part of an SDXL embedding this encoder takes (``clip_l``/``clip_g``); ``None``: the
            embedding is one matrix (SD 1.x/2.x).

    ``embeddings`` is the textual-inversion database the engine gives it for the job (``None``: names are text);
    ``encoded`` its last outputs, reused for the same prompts (:mod:`sdapi.engine.encode_cache`).
    """

    def __init__(self, tokenizer, text_encoder, device: torch.device, embedding_key: str | None = None):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.device = device
        self.embedding_key = embedding_key
        self.embeddings: EmbeddingDatabase | None = None
        self.encoded = EncodeCache()
        vocab = tokenizer.get_vocab()
        self.comma_id = vocab.get(",</w>")
        self.start_id = tokenizer.bos_token_id
        self.end_id = tokenizer.eos_token_id
        # SD2's OpenCLIP tokenizer pads with "!" (id 0); SD1's pads with EOS, which makes padding a no-op.
        self.pad_id = tokenizer.pad_token_id

    def tokenize(self, text: str) -> list[int]:
        """Token ids without BOS/EOS."""
        return self.tokenizer(text, truncation=False, add_special_tokens=False)["input_ids"]

    def token_runs(self, text: str, emphasis: bool = True) -> list[tuple[list[int], float]]:
        """Weighted token runs of one prompt, BREAK markers included (``([], -1)``), as A1111 tokenizes them.

        Args:
            text: one scheduled prompt text.
            emphasis: A1111's ``enable_emphasis``; off, the whole text is one run of weight 1.0 (BREAK too).

        Returns:
            Runs for :func:`split_into_chunks`; runs that tokenize to nothing are dropped.
        """
        fragments = parse_attention(text) if emphasis else [(text, 1.0)]
        runs: list[tuple[list[int], float]] = []
        for fragment, weight in fragments:
            if is_break(fragment, weight):
                runs.append(([], BREAK_WEIGHT))
                continue
            ids = self.tokenize(fragment) if fragment else []
            if ids:
                runs.append((ids, weight))
        return runs

    def chunks(self, text: str, backtrack: int = 20, emphasis: bool = True) -> list[PromptChunk]:
        """Chunks for one prompt, with its emphasis weights (see :meth:`token_runs`) and embeddings."""
        find = self.embeddings.find_at if self.embeddings else None
        return split_into_chunks(self.token_runs(text, emphasis), self.comma_id, self.end_id, self.start_id,
                                 backtrack, find)

    def width(self) -> int:
        """The width of the text encoder's token embeddings (what an embedding's vectors must have)."""
        return int(self.text_encoder.get_input_embeddings().weight.shape[1])

    def widths(self) -> ModelWidths:
        """What an embedding's vectors must be for this model (SD 1.x/2.x: one matrix of :meth:`width`)."""
        return ModelWidths(single=self.width())

    @contextlib.contextmanager
    def _embedding_vectors(self, fixes: list[list[tuple[int, Any]]]) -> Iterator[None]:
        """While a chunk batch is encoded: each row's embeddings' vectors replace the token embeddings of their
        places (A1111's ``EmbeddingsWithFixes``; BOS comes first, hence ``offset + 1``)."""
        if not any(fixes):
            yield
            return

        def replace(_module, _args, output: torch.Tensor) -> torch.Tensor:
            rows = []
            for row_fixes, row in zip(fixes, output):
                for offset, embedding in row_fixes:
                    vectors = embedding.vectors_for(self.embedding_key).to(row.device, row.dtype)
                    count = min(row.shape[0] - offset - 1, vectors.shape[0])
                    row = torch.cat([row[:offset + 1], vectors[:count], row[offset + 1 + count:]])
                rows.append(row)
            return torch.stack(rows)

        handle = self.text_encoder.get_input_embeddings().register_forward_hook(replace)
        try:
            yield
        finally:
            handle.remove()

    @torch.no_grad()
    def encode(self, texts: list[str], clip_skip: int = 1, backtrack: int = 20, emphasis: bool = True,
               multiplicity: list[int] | None = None, stop: Callable[[], bool] | None = None) -> torch.Tensor:
        """Conditioning for a batch of prompts: ``(B, 77 * chunks, hidden)``.

        Prompts with fewer chunks are padded with empty chunks, as A1111 does within a batch.

        Args:
            texts: the prompts encoded together (A1111 encodes one prompt's scheduled texts as one batch).
            clip_skip: A1111's ``CLIP_stop_at_last_layers``.
            backtrack: A1111's ``comma_padding_backtrack``.
            emphasis: A1111's ``enable_emphasis``.
            multiplicity: how many times A1111's batch holds each text (it encodes repeats, we do not); it weighs
                each text in the batch mean that emphasis restores. ``None``: once each.
            stop: asked before each chunk: a long prompt stops encoding when the job is interrupted or cancelled.

        Raises:
            SamplingInterrupted: ``stop`` said so.
        """
        return self.encode_pooled(texts, clip_skip, backtrack, emphasis, multiplicity, stop)[0]

    @torch.no_grad()
    def encode_pooled(self, texts: list[str], clip_skip: int = 1, backtrack: int = 20, emphasis: bool = True,
                      multiplicity: list[int] | None = None,
                      stop: Callable[[], bool] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`encode`, plus the pooled output of each prompt's first chunk where the encoder has one.

        Returns:
            ``(B, 77 * chunks, hidden)`` and ``(B, projection)`` (``None`` for encoders without a pooled output).
        """
        state = weights_state(self.text_encoder)
        key = (tuple(texts), clip_skip, backtrack, emphasis, None if multiplicity is None else tuple(multiplicity),
               state)
        cached = None if state is None else self.encoded.get(key, self.embeddings)
        if cached is not None:
            return cached
        outputs = self._encode_pooled(texts, clip_skip, backtrack, emphasis, multiplicity, stop)
        if state is not None:
            self.encoded.put(key, self.embeddings, outputs)
        return outputs

    def _encode_pooled(self, texts: list[str], clip_skip: int, backtrack: int, emphasis: bool,
                       multiplicity: list[int] | None,
                       stop: Callable[[], bool] | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        per_prompt = [self.chunks(t, backtrack, emphasis) for t in texts]
        n = max(len(c) for c in per_prompt)
        empty = self.chunks("")[0]
        for chunks in per_prompt:
            chunks.extend([empty] * (n - len(chunks)))
        counts = None if multiplicity is None else torch.tensor(multiplicity, dtype=torch.float64)
        outputs, first_pooled = [], None
        for i in range(n):
            if stop is not None and stop():
                raise SamplingInterrupted()
            ids = torch.tensor([pad_after_end(c[i].tokens, self.end_id, self.pad_id) for c in per_prompt],
                               device=self.device)
            weights = torch.tensor([c[i].weights for c in per_prompt], device=self.device)
            with self._embedding_vectors([c[i].fixes for c in per_prompt]):
                z, pooled = self._encode_chunk(ids, weights, clip_skip, counts)
            outputs.append(z)
            # A1111 takes the pooled output of the first chunk only.
            first_pooled = pooled if i == 0 else first_pooled
        return torch.cat(outputs, dim=1), first_pooled

    def transformer(self, ids: torch.Tensor, clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The hidden states A1111's SD 1.x/2.x rule picks (no pooled output).

        CLIP skip > 1 takes an earlier layer's output through the final LayerNorm.
        """
        out = self.text_encoder(input_ids=ids, output_hidden_states=clip_skip > 1)
        if clip_skip > 1:
            text_model = getattr(self.text_encoder, "text_model", self.text_encoder)
            return text_model.final_layer_norm(out.hidden_states[-clip_skip]), None
        return (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]), None

    def _encode_chunk(self, ids: torch.Tensor, weights: torch.Tensor, clip_skip: int,
                      counts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        z, pooled = self.transformer(ids, clip_skip)
        if torch.all(weights == 1.0):
            return z, pooled
        original_mean = _batch_mean(z, counts)
        z = z * weights.unsqueeze(-1).to(z.dtype)
        new_mean = _batch_mean(z, counts)
        # Random tiny encoders can have a mean of exactly 0; dividing by it would turn the image to NaN.
        if new_mean.abs() > 1e-6:
            z = z * (original_mean / new_mean)
        return z, pooled  # emphasis leaves the pooled output alone, as in A1111


def _batch_mean(z: torch.Tensor, counts: torch.Tensor | None) -> torch.Tensor:
    """``z.mean()`` of A1111's batch, where text ``i`` of ``z`` stands for ``counts[i]`` identical rows."""
    if counts is None:
        return z.mean()
    per_text = z.mean(dim=(1, 2)).double()
    return ((per_text * counts.to(per_text.device)).sum() / counts.sum()).to(z.dtype)


def pad_after_end(tokens: list[int], end_id: int, pad_id: int | None) -> list[int]:
    """A1111's SD2 rule: every id after a chunk's first EOS becomes the pad id (SD1 pads with EOS: unchanged).

    Args:
        tokens: one chunk's 77 ids.
        end_id, pad_id: the tokenizer's EOS and pad ids.

    Returns:
        The ids the text encoder sees.
    """
    if pad_id is None or pad_id == end_id:
        return tokens
    first_end = tokens.index(end_id)
    return tokens[:first_end + 1] + [pad_id] * (len(tokens) - first_end - 1)
