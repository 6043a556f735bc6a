"""Selectable scripts (A1111's ``script_name``) as a data table: their titles, modes and arguments.

What each runs is the serving layer's (:mod:`sdapi.serving.scripts`), keyed by the script's ``key``.

A1111 matches ``script_name`` against the lower-cased titles of the scripts for the mode (``"SD Upscale"`` finds
"SD upscale"); an unknown name is a 422 ``Script '<name>' not found``. v1.2.1 has no "X/Y plot" any more (the
X/Y/Z plot replaced it), so that name is unknown there and here; nor is "img2img alternative test" here (it
needs a sampler's noise run backwards, which sdapi does not have). The order is v1.2.1's: by file name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sdapi.errors import Unprocessable
from sdapi.scripts import loopback, outpainting_mk2, poor_mans_outpainting, prompt_matrix, prompts_from_file, sd_upscale
from sdapi.scripts.args import ArgSpec
from sdapi.scripts.xyz.axes import IMG2IMG, TXT2IMG, axis_labels


def xyz_script_args(mode: str, upscalers: list[str] | None = None) -> list[dict[str, Any]]:
    """The X/Y/Z plot's 14 arguments as later A1111's ``/script-info`` describes its UI controls."""
    labels = axis_labels(mode)
    args: list[dict[str, Any]] = []
    for letter, default in (("X", labels[1]), ("Y", labels[0]), ("Z", labels[0])):
        args += [{"label": f"{letter} type", "value": default, "choices": labels},
                 {"label": f"{letter} values", "value": ""},
                 {"label": f"{letter} values", "value": [], "choices": []}]
    args += [{"label": "Draw legend", "value": True},
             {"label": "Include Sub Images", "value": False},
             {"label": "Include Sub Grids", "value": False},
             {"label": "Keep -1 for seeds", "value": False},
             {"label": "Grid margins (px)", "value": 0, "minimum": 0, "maximum": 500, "step": 2}]
    return args


@dataclass(frozen=True)
class SelectableScript:
    """One selectable script.

    Args:
        key: the serving layer's name for it.
        title: A1111's title (``script_name`` matches it case-insensitively).
        modes: ``txt2img`` and/or ``img2img``.
        args: ``(mode, upscaler names) ->`` its arguments for ``/script-info``.
        specs: its arguments as :class:`ArgSpec` rows (``script_args`` are read against them); empty for the
            X/Y/Z plot, which reads its own.
    """

    key: str
    title: str
    modes: tuple[str, ...]
    args: Callable[[str, list[str]], list[dict[str, Any]]]
    specs: tuple[ArgSpec, ...] = ()


def _described(key: str, title: str, modes: tuple[str, ...], specs: tuple[ArgSpec, ...]) -> SelectableScript:
    """A script whose ``/script-info`` arguments are its spec rows."""
    return SelectableScript(key, title, modes, lambda mode, upscalers: [spec.info(upscalers) for spec in specs],
                            specs)


BOTH = (TXT2IMG, IMG2IMG)
SELECTABLE_SCRIPTS: tuple[SelectableScript, ...] = (
    _described("loopback", loopback.TITLE, (IMG2IMG,), loopback.ARGS),
    _described("outpainting_mk2", outpainting_mk2.TITLE, (IMG2IMG,), outpainting_mk2.ARGS),
    _described("poor_mans_outpainting", poor_mans_outpainting.TITLE, (IMG2IMG,), poor_mans_outpainting.ARGS),
    _described("prompt_matrix", prompt_matrix.TITLE, BOTH, prompt_matrix.ARGS),
    _described("prompts_from_file", prompts_from_file.TITLE, BOTH, prompts_from_file.ARGS),
    _described("sd_upscale", sd_upscale.TITLE, (IMG2IMG,), sd_upscale.ARGS),
    SelectableScript("xyz", "X/Y/Z plot", BOTH, xyz_script_args),
)


def find_script(name: str, mode: str) -> SelectableScript:
    """The script ``script_name`` names for ``mode``.

    Raises:
        Unprocessable: A1111's 422 ``Script '<name>' not found``.
    """
    for script in SELECTABLE_SCRIPTS:
        if mode in script.modes and script.title.lower() == name.lower():
            return script
    raise Unprocessable(f"Script '{name}' not found")


def script_titles(mode: str) -> list[str]:
    """``GET /sdapi/v1/scripts``: the lower-cased titles for ``mode``."""
    return [script.title.lower() for script in SELECTABLE_SCRIPTS if mode in script.modes]


def script_infos(upscalers: list[str]) -> list[dict[str, Any]]:
    """``GET /sdapi/v1/script-info``: every script of txt2img, then of img2img.

    Args:
        upscalers: the upscalers' names (SD upscale's choices).
    """
    return [{"name": script.title.lower(), "is_alwayson": False, "is_img2img": mode == IMG2IMG,
             "args": script.args(mode, upscalers)}
            for mode in (TXT2IMG, IMG2IMG) for script in SELECTABLE_SCRIPTS if mode in script.modes]
