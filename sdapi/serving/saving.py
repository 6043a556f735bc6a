"""The serving side of saving images: a job's :class:`sdapi.saving.generation.ImageSaver` (the server's path
guard, the job's options, its styles) and the check every output folder option passes before it is set.
"""

from __future__ import annotations

from typing import Any

from sdapi.dataset.paths import PathGuard, PathNotAllowed
from sdapi.errors import InvalidRequest
from sdapi.options import OptionsView
from sdapi.saving.generation import ImageSaver
from sdapi.serving.base import ServerState

OUTPUT_FOLDER_PREFIX = "outdir_"


def image_saver(state: ServerState, options: OptionsView, mode: str, failures: list[str] | None = None
                ) -> ImageSaver:
    """What saves a ``mode`` job's images (``txt2img``/``img2img``), with the job's ``options`` (``failures``:
    gathers its warnings with others')."""
    def style_prompts(names: list[str]) -> list[str]:
        styles = state.styles.styles() if state.styles is not None else {}
        return [styles[name].prompt if name in styles else "" for name in names]

    return ImageSaver(PathGuard.for_settings(state.settings), options, mode, state.control.job_timestamp,
                      style_prompts, failures if failures is not None else [])


def check_output_folders(state: ServerState, values: dict[str, Any]) -> None:
    """Every ``outdir_*`` option among ``values`` (a ``POST /options`` body or ``override_settings``) must name a
    folder the server may write: under the data dir or a ``--dataset-root``, outside the model folders.

    Raises:
        PathNotAllowed: 403 naming the option and the path as given.
        InvalidRequest: not a usable path at all.
    """
    guard = PathGuard.for_settings(state.settings)
    for key, value in values.items():
        if not key.startswith(OUTPUT_FOLDER_PREFIX) or not value:
            continue
        try:
            guard.resolve_output(str(value))
        except PathNotAllowed as exc:
            raise PathNotAllowed(f"option {key}: {exc.detail}") from None
        except InvalidRequest as exc:
            raise InvalidRequest(f"option {key}: {exc}") from None
