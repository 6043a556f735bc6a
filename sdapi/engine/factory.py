"""Building the engine a process serves with, without importing torch until it is built."""

from __future__ import annotations

from sdapi.engine.api import Engine
from sdapi.settings import Settings


def local_engine(settings: Settings, extra_cached: int = 0) -> Engine:
    """The engine that drives this process's device (``--device``, ``--no-half``, ``--precision``,
    ``--xformers``, ``--threads``, ``--fast-compile``).

    Args:
        extra_cached: A1111's ``sd_checkpoint_cache``: checkpoints kept loaded besides the current one.
    """
    from sdapi.engine.local import LocalEngine  # torch loads here, not when the app is imported
    from sdapi.engine.fast_mode import choose_fast_plan, cpu_has_native_bf16
    from sdapi.engine.runtime import choose_runtime

    runtime = choose_runtime(settings.device, settings.no_half, settings.precision, settings.xformers,
                             settings.num_threads)
    fast_plan = choose_fast_plan(runtime.device.type, cpu_has_native_bf16(), settings.fast_compile)
    return LocalEngine(runtime, settings.cache_dir, extra_cached=extra_cached, fast_plan=fast_plan)
