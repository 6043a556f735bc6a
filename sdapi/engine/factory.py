"""Building the engine a process serves with, without importing torch until it is built."""

from __future__ import annotations

from sdapi.engine.api import Engine
from sdapi.settings import Settings


def local_engine(settings: Settings, extra_cached: int = 0) -> Engine:
    """The engine that drives this process's device (``--device``, ``--no-half``, ``--precision``,
    ``--xformers``, ``--threads``).

    Args:
        extra_cached: A1111's ``sd_checkpoint_cache``: checkpoints kept loaded besides the current one.
    """
    from sdapi.engine.local import LocalEngine  # torch loads here, not when the app is imported
    from sdapi.engine.runtime import choose_runtime

    runtime = choose_runtime(settings.device, settings.no_half, settings.precision, settings.xformers,
                             settings.num_threads)
    return LocalEngine(runtime, settings.cache_dir, extra_cached=extra_cached)
