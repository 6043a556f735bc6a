"""What ``sdapi serve`` and ``sdapi train`` both do first: find the checkpoints, with the built-in demo checkpoint
when the models folder has none."""

from __future__ import annotations

import logging

from sdapi.checkpoints import CheckpointCatalog, HashCache
from sdapi.settings import Settings

log = logging.getLogger("sdapi")

DEMO_WARNING = (
    "No checkpoint in %s: serving the built-in tiny demo checkpoint (random weights, noise images). "
    "Real images need a real checkpoint: put a .safetensors file there or start with --ckpt-dir."
)


def ensure_demo_checkpoint(settings: Settings) -> None:
    """Write the built-in demo checkpoint into the cache dir (called when the models folder has none)."""
    from sdapi.engine.demo_models import write_demo_checkpoint  # builds a pipeline: loads torch only when needed

    target = settings.demo_dir / "demo-sd15.safetensors"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_demo_checkpoint(target, seed=0)
    log.warning(DEMO_WARNING, settings.models_dir)


def open_catalog(settings: Settings) -> CheckpointCatalog:
    """The checkpoint catalog of ``settings``, serving the built-in demo checkpoint when the models folder has
    none (``sdapi serve`` and ``sdapi train`` see the same checkpoints)."""
    catalog = CheckpointCatalog(settings.models_dir, HashCache(settings.hash_cache_file), settings.ckpt,
                                fallback_dirs=(settings.demo_dir,) if settings.demo_when_empty else ())
    items = catalog.refresh()
    # Only the demo folder (or nothing) was found: the models folder itself is empty.
    if settings.demo_when_empty and all(settings.demo_dir.resolve() in i.filename.parents for i in items):
        ensure_demo_checkpoint(settings)
        catalog.refresh()
    return catalog


