"""The engine's own errors. The serving layer maps each to A1111's HTTP answer (``sdapi.errors``).

No torch here: callers above the engine catch these without importing it.
"""

from __future__ import annotations


class SamplingInterrupted(Exception):
    """The job was interrupted, skipped or cancelled while it worked (A1111's ``InterruptedException``); caught
    inside the engine, which then returns what it finished."""


class EngineError(Exception):
    """Base of every error the engine raises on purpose (anything else is a bug or the device failing).

    ``a1111_name``, where set, is the exception name A1111 reports for the same failure.
    """

    a1111_name: str | None = None


class UnknownSampler(EngineError):
    """A sampler name A1111 would not find (its 404 ``Sampler not found``)."""


class UnknownUpscaler(EngineError):
    """An upscaler name that is not in the registry or on disk (A1111: a 500 ``could not find upscaler``)."""


class UnsupportedUpscaler(EngineError):
    """A model upscaler file no loader here understands."""


class UnsupportedCheckpoint(EngineError):
    """A checkpoint the engine cannot load or sample (an unknown architecture, a pickled ``.ckpt``...)."""


class UnsupportedRequest(EngineError):
    """A combination the engine cannot run for this model (a noise schedule without a k-diffusion equivalent,
    a sampler that cannot sample an inpainting UNet...)."""


class AndWithCompVis(EngineError, AssertionError):
    """``AND`` with DDIM, PLMS or UniPC: A1111's ``AssertionError`` (a 500 with its message)."""

    a1111_name = "AssertionError"


class NansException(EngineError):
    """A1111's name for a generation whose latents became NaN (reported as a 500)."""


class DeviceOutOfMemory(EngineError):
    """The device ran out of memory during a job; the job fails instead of silently dropping work."""


class ReplicaLost(EngineError):
    """The engine replica running a job died (Ray mode); the replica is restarted, the job is not retried once it
    had started sampling."""
