"""The read-only listings: checkpoints, samplers, upscalers, LoRAs, VAEs, embeddings, styles and what sdapi does not
serve yet."""

from __future__ import annotations

from typing import Any

from sdapi.engine.sampling.registry import sampler_items
from sdapi.engine.sampling.schedulers import scheduler_items
from sdapi.engine.upscalers import LATENT_MODES
from sdapi.serving.base import ServerState


def samplers() -> list[dict[str, Any]]:
    """``/samplers``: A1111 v1.2.1's 20 samplers."""
    return sampler_items()


def schedulers() -> list[dict[str, Any]]:
    """``/schedulers`` (later A1111): the schedule types a request's ``scheduler`` may name."""
    return scheduler_items()


def sd_models(state: ServerState) -> list[dict[str, Any]]:
    """``/sd-models``: the checkpoints found, A1111's titles and hashes."""
    return [info.as_item() for info in state.catalog.items()]


def refresh_checkpoints(state: ServerState) -> None:
    """``/refresh-checkpoints``: scan the models folder again."""
    state.catalog.refresh()


def upscalers(state: ServerState) -> list[dict[str, Any]]:
    """``/upscalers``: the pixel upscalers, then the model files in ``models/ESRGAN`` etc. while they are there."""
    return [u.as_item() for u in state.upscalers()]


def latent_upscale_modes() -> list[dict[str, str]]:
    """``/latent-upscale-modes`` (A1111 v1.4+; v1.2.1 answers 404): the hires fix's latent modes."""
    return [{"name": mode.name} for mode in LATENT_MODES]


def realesrgan_models(state: ServerState) -> list[dict[str, Any]]:
    """``/realesrgan-models``: the Real-ESRGAN files present (A1111 lists its own releases, downloaded or not)."""
    return [{"name": u.name, "path": str(u.model_path), "scale": u.scale} for u in state.upscalers()
            if u.model_path is not None and u.model_path.parent.name == "RealESRGAN"]


def prompt_styles(state: ServerState) -> list[dict[str, Any]]:
    """``/prompt-styles``: the rows of ``styles.csv``."""
    return [style.as_item() for style in state.styles.styles().values()]


def loras(state: ServerState) -> list[dict[str, Any]]:
    """``/loras``: the LoRA files in ``models/Lora`` (A1111's built-in Lora extension)."""
    return [entry.as_item() for entry in state.loras.items()] if state.loras is not None else []


def refresh_loras(state: ServerState) -> None:
    """``/refresh-loras`` (A1111 v1.3+): scan the LoRA folder again."""
    if state.loras is not None:
        state.loras.refresh()


def embeddings(state: ServerState) -> dict[str, Any]:
    """``/embeddings``: the embeddings as the last model load, job or refresh sorted them out (A1111 lists its
    database as it stands, without reading the folder again)."""
    return state.embedding_listing.as_response()


def refresh_embeddings(state: ServerState) -> None:
    """``/refresh-embeddings`` (later A1111): read the folder again for the current model, on the worker (A1111
    takes its queue lock)."""
    state.run_sync(lambda: state.sort_out_embeddings(state.selected_checkpoint()), "refresh embeddings")


def sd_vaes(state: ServerState) -> list[dict[str, str]]:
    """``/sd-vae`` (later A1111): the VAE files ``sd_vae`` may name, with their paths (as A1111 lists them)."""
    return [{"model_name": name, "filename": str(path)} for name, path in state.vaes.items().items()]


def refresh_vaes(state: ServerState) -> None:
    """``/refresh-vae`` (later A1111): scan the VAE folders again."""
    state.vaes.refresh()


def nothing_listed() -> list:
    """``/hypernetworks``, ``/face-restorers``: sdapi runs none, so none can be asked for."""
    return []
