"""Reusing a text encoder's output for a prompt batch it already encoded, as A1111 does between jobs.

A1111 v1.2.1 keeps the last job's conditioning and unconditional conditioning and reuses them when the next job
asks for the same prompts. Here each prompt encoder keeps its last few batches, keyed by everything the output
depends on: the texts and encoding options, the embeddings database the job gave it, and the state of the text
encoder's weights. A weight changes only in place (a LoRA merged for a job, and the exact restore after it), and
every in-place change bumps the tensor's version counter, so the sum of the counters names the state; while any
hook sits on the encoder (a hooked LoRA) nothing is reused or kept. Encoding is
deterministic, so a reused output is bit for bit what encoding again would give.
"""

from __future__ import annotations

import collections
from typing import Any, Hashable

import torch

DEFAULT_SIZE = 8


def weights_state(module: torch.nn.Module) -> int | None:
    """The sum of the version counters of ``module``'s parameters, or ``None`` when that does not name what it
    computes: while a hook could change it, or for an encoder that is not a module."""
    if not isinstance(module, torch.nn.Module):
        return None
    if torch.nn.modules.module._global_forward_hooks or torch.nn.modules.module._global_forward_pre_hooks:
        return None
    versions = 0
    for sub in module.modules():
        if sub._forward_hooks or sub._forward_pre_hooks:
            return None
        for param in sub._parameters.values():
            if param is not None:
                versions += param._version
    return versions


class EncodeCache:
    """The last few encoder outputs of one prompt encoder (least recently used first out).

    Args:
        size: how many batches it keeps.
    """

    def __init__(self, size: int = DEFAULT_SIZE):
        self.size = size
        self._entries: collections.OrderedDict[Hashable, tuple[Any, tuple]] = collections.OrderedDict()

    def get(self, key: Hashable, embeddings: Any) -> tuple | None:
        """Fresh copies of the outputs stored under ``key`` for the same ``embeddings`` object, or ``None``."""
        entry = self._entries.get(key)
        if entry is None or entry[0] is not embeddings:
            return None
        self._entries.move_to_end(key)
        return _copies(entry[1])

    def put(self, key: Hashable, embeddings: Any, outputs: tuple) -> None:
        """Keep copies of ``outputs`` (callers may change theirs in place)."""
        self._entries[key] = (embeddings, _copies(outputs))
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def _copies(outputs: tuple) -> tuple:
    return tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in outputs)
