"""``create_app``: the FastAPI application, its lifespan and routers. Nothing is created at import time."""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware

from sdapi.checkpoints import CheckpointCatalog, HashCache
from sdapi.errors import install_error_handlers
from sdapi.options import Options
from sdapi.routes import catalog, generation
from sdapi.serving import ServerState
from sdapi.settings import Settings

log = logging.getLogger("sdapi")

DEMO_WARNING = (
    "No checkpoint in %s: serving the built-in tiny demo checkpoint (random weights, noise images). "
    "Real images need a real checkpoint: put a .safetensors file there or start with --ckpt-dir."
)


def ensure_demo_checkpoint(settings: Settings) -> None:
    """Write the built-in demo checkpoint into the cache dir (called when the models folder has none)."""
    from sdapi.engine.demo_models import write_demo_checkpoint

    target = settings.demo_dir / "demo-sd15.safetensors"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_demo_checkpoint(target, seed=0)
    log.warning(DEMO_WARNING, settings.models_dir)


def build_state(settings: Settings) -> ServerState:
    """Create the options, the catalog and the engine for ``settings``."""
    from sdapi.engine.engine import Engine
    from sdapi.engine.runtime import choose_runtime

    options = Options(settings.data_dir / "config.json")
    catalog = CheckpointCatalog(settings.models_dir, HashCache(settings.hash_cache_file), settings.ckpt,
                                fallback_dirs=(settings.demo_dir,) if settings.demo_when_empty else ())
    items = catalog.refresh()
    # Only the demo folder (or nothing) was found: the models folder itself is empty.
    if settings.demo_when_empty and all(settings.demo_dir.resolve() in i.filename.parents for i in items):
        ensure_demo_checkpoint(settings)
        catalog.refresh()
    if settings.ckpt is not None:
        first = catalog.find(settings.ckpt.name) or (catalog.items() or [None])[0]
        if first is not None:
            options.set("sd_model_checkpoint", first.title)
    runtime = choose_runtime(settings.device, settings.no_half, settings.precision, settings.xformers,
                             settings.num_threads)
    engine = Engine(runtime, settings.cache_dir, extra_cached=max(settings.sd_checkpoint_cache,
                                                                   int(options.get("sd_checkpoint_cache"))))
    return ServerState(settings=settings, options=options, catalog=catalog, engine=engine)


def create_app(settings: Settings | None = None, state: ServerState | None = None, load_model: bool = True) -> FastAPI:
    """Build the app.

    Args:
        settings: used to build the state in the lifespan when ``state`` is not given.
        state: a ready state (tests inject one to share loaded models between apps).
        load_model: load the selected checkpoint at start-up, as A1111 does.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "sdapi", None) is None:
            app.state.sdapi = build_state(settings or Settings())
        if load_model:
            try:
                info = app.state.sdapi.load_selected()
                log.info("Model loaded: %s", info.title)
            except Exception as exc:  # noqa: BLE001 - the server still answers; generation reports the error
                log.error("Could not load the start-up checkpoint: %s", exc)
        yield

    # A1111 (FastAPI 0.94) parsed JSON bodies sent without a Content-Type; modern FastAPI refuses them.
    app = FastAPI(lifespan=lifespan, strict_content_type=False)
    app.state.sdapi = state
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    install_error_handlers(app)
    app.include_router(generation.router)
    app.include_router(catalog.router)
    return app
