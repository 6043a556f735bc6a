"""Selectable scripts (A1111's ``script_name``) as a data table: their titles, modes, jobs and arguments.

A1111 matches ``script_name`` against the lower-cased titles of the scripts for the mode; an unknown name is a
422 ``Script '<name>' not found``. v1.2.1 has no "X/Y plot" any more (the X/Y/Z plot replaced it), so that name
is unknown there and here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sdapi.errors import Unprocessable
from sdapi.scripts.xyz.axes import IMG2IMG, TXT2IMG, axis_labels


def xyz_script_args(mode: str) -> list[dict[str, Any]]:
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


def xyz_txt2img_job(state, req, **inputs) -> Callable[[], dict[str, Any]]:
    from sdapi.scripts.xyz.run import txt2img_plot_job

    return txt2img_plot_job(state, req)


def xyz_img2img_job(state, req, **inputs) -> Callable[[], dict[str, Any]]:
    from sdapi.scripts.xyz.run import img2img_plot_job

    return img2img_plot_job(state, req, inputs["images"], inputs["mask"])


@dataclass(frozen=True)
class SelectableScript:
    """One selectable script.

    Args:
        title: A1111's title (``script_name`` matches it case-insensitively).
        jobs: per mode, ``(state, request, **decoded inputs) -> job``; checks the request before returning.
        args: per mode, its arguments for ``/script-info``.
    """

    title: str
    jobs: dict[str, Callable[..., Callable[[], dict[str, Any]]]]
    args: Callable[[str], list[dict[str, Any]]]


SELECTABLE_SCRIPTS: tuple[SelectableScript, ...] = (
    SelectableScript("X/Y/Z plot", {TXT2IMG: xyz_txt2img_job, IMG2IMG: xyz_img2img_job}, xyz_script_args),
)


def find_script(name: str, mode: str) -> SelectableScript:
    """The script ``script_name`` names for ``mode``.

    Raises:
        Unprocessable: A1111's 422 ``Script '<name>' not found``.
    """
    for script in SELECTABLE_SCRIPTS:
        if mode in script.jobs and script.title.lower() == name.lower():
            return script
    raise Unprocessable(f"Script '{name}' not found")


def script_job(state, req, mode: str, **inputs) -> Callable[[], dict[str, Any]]:
    """The job serving a request with a ``script_name`` (checked now, run later on the worker)."""
    return find_script(req.script_name, mode).jobs[mode](state, req, **inputs)


def script_titles(mode: str) -> list[str]:
    """``GET /sdapi/v1/scripts``: the lower-cased titles for ``mode``."""
    return [script.title.lower() for script in SELECTABLE_SCRIPTS if mode in script.jobs]


def script_infos() -> list[dict[str, Any]]:
    """``GET /sdapi/v1/script-info``: every script of txt2img, then of img2img."""
    return [{"name": script.title.lower(), "is_alwayson": False, "is_img2img": mode == IMG2IMG,
             "args": script.args(mode)}
            for mode in (TXT2IMG, IMG2IMG) for script in SELECTABLE_SCRIPTS if mode in script.jobs]
