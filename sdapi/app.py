"""``create_app``: the FastAPI application, its lifespan and routers. Nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from sdapi.engine.api import Engine, EngineFactory
from sdapi.engine.factory import local_engine
from sdapi.errors import install_error_handlers
from sdapi.http import install_inner_habits, install_outer_habits
from sdapi.loras import LoraCatalog
from sdapi.options import Options
from sdapi.routes import (
    agent_scheduler,
    catalog,
    cluster,
    config,
    dataset,
    generation,
    lora_scripts,
    progress,
    utility,
)
from sdapi.routes import controlnet as controlnet_routes
from sdapi.routes import extras as extras_routes
from sdapi.routes import loras as lora_routes
from sdapi.routes import scripts as script_routes
from sdapi.routes import training as training_routes
from sdapi.routes import ui
from sdapi.routes.docs import docs_metadata, install_docs
from sdapi.serving.base import ServerState
from sdapi.serving.dataset import DatasetService
from sdapi.serving.training import TrainingService
from sdapi.serving.tasks import task_service
from sdapi.settings import Settings
from sdapi.startup import open_catalog

log = logging.getLogger("sdapi")

def build_state(settings: Settings, engine: Engine | None = None) -> ServerState:
    """Create the options, the catalogs, the engine and the services for ``settings``, once.

    Args:
        engine: the engine to serve with (default: a :class:`sdapi.engine.local.LocalEngine` on the settings'
            device).
    """
    options = Options(settings.config_file)
    if settings.fast:
        options.set("sdapi_fast_mode", True)  # the flag wins over a saved config.json for this run
    catalog = open_catalog(settings)
    if settings.ckpt is not None:
        first = catalog.find(settings.ckpt.name) or (catalog.items() or [None])[0]
        if first is not None:
            options.set("sd_model_checkpoint", first.title)
    if engine is None:
        engine = local_engine(settings, max(settings.sd_checkpoint_cache, int(options.get("sd_checkpoint_cache"))))
    loras = LoraCatalog(settings.loras_dir)
    loras.refresh()
    state = ServerState(settings=settings, options=options, catalog=catalog, engine=engine, loras=loras)
    state.dataset = DatasetService.for_server(state)
    state.training = TrainingService(state)  # marks jobs a previous process left running as failed
    return state


def create_app(settings: Settings | None = None, state: ServerState | None = None, load_model: bool = True,
               engine_factory: EngineFactory | None = None) -> FastAPI:
    """Build the app.

    Args:
        settings: used to build the state in the lifespan when ``state`` is not given.
        state: a ready state (tests inject one to share loaded models between apps).
        load_model: load the selected checkpoint at start-up, as A1111 does.
        engine_factory: builds the engine in the lifespan (default: the local engine); Ray mode passes one that
            connects to the engine replicas.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = getattr(app.state, "sdapi", None) is None
        if owned:
            app.state.sdapi = build_state(settings or Settings(), engine_factory() if engine_factory else None)
        if load_model:
            try:
                # Off the event loop: an engine in other processes (Ray) must not block the loop it answers on.
                info = await asyncio.to_thread(app.state.sdapi.load_selected)
                log.info("Model loaded: %s", info.title)
            except Exception as exc:  # noqa: BLE001 - the server still answers; generation reports the error
                log.error("Could not load the start-up checkpoint: %s", exc)
        if owned:
            task_service(app.state.sdapi)  # after the model: resumes the tasks a previous process left queued
        yield
        if owned:  # an injected state may serve other apps (tests share one between servers)
            app.state.sdapi.stop_jobs()

    # A1111 (FastAPI 0.94) parsed JSON bodies sent without a Content-Type; modern FastAPI refuses them.
    # docs_url/redoc_url None: FastAPI's pages need a CDN; install_docs serves them from a local package.
    app = FastAPI(lifespan=lifespan, strict_content_type=False, docs_url=None, redoc_url=None, **docs_metadata())
    app.state.sdapi = state
    http_settings = settings or (state.settings if state is not None else Settings())
    app.state.settings = http_settings
    # Middleware added later wraps what was added before.
    install_inner_habits(app, http_settings)
    install_error_handlers(app)
    install_outer_habits(app, http_settings)
    install_docs(app)
    for module in (generation, extras_routes, catalog, config, progress, utility, script_routes, lora_routes,
                   dataset, training_routes, lora_scripts, agent_scheduler, controlnet_routes, cluster,
                   ui):
        app.include_router(module.router)
    if http_settings.web_ui:  # A1111 with --nowebui answers 404 at /; the page stays at /ui either way
        app.include_router(ui.root_router)
    return app
