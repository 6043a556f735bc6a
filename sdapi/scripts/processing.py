"""What A1111's built-in scripts need from the server, and A1111's ``Processed`` for what they return.

A script calls ``process_images`` on its copy of ``p`` one or more times; here a script describes each call as a
:class:`ProcessCall` (the request as the script changed ``p``) and the serving layer runs it (:class:`Runner`).
The scripts themselves stay free of the serving layer and of torch, so their rules are plain functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image

from sdapi.engine.upscalers import UpscalerSpec
from sdapi.translate import ScriptOverrides


@dataclass
class ProcessCall:
    """One ``process_images`` call of a script.

    Args:
        req: the request with the fields the script set on ``p`` (sizes, seed, denoising strength, ...).
        images: img2img init images (ignored by txt2img).
        mask: img2img ``p.image_mask`` (``None``: no mask).
        latent_mask: img2img ``p.latent_mask`` (outpainting scripts), or ``None``.
        overrides: list-valued prompts and seeds, and the infotext fields the script added.
    """

    req: Any
    images: list[Image.Image] = field(default_factory=list)
    mask: Image.Image | None = None
    latent_mask: Image.Image | None = None
    overrides: ScriptOverrides | None = None


@dataclass
class Processed:
    """What one call gave: its images (composited, each carrying its infotext as ``parameters``) and ``info``,
    the object A1111's ``Processed.js()`` would answer for it alone."""

    images: list[Image.Image]
    info: dict[str, Any]

    @property
    def seed(self) -> int:
        """A1111's ``processed.seed``: the call's first seed."""
        return self.info["seed"]

    @property
    def first_infotext(self) -> str | None:
        """A1111's ``processed.info``: the call's first image's infotext."""
        return self.info["infotexts"][0] if self.info["infotexts"] else None


@dataclass
class Runner:
    """The server, as a script sees it while it runs on the worker.

    Args:
        process: runs one call.
        describe: the ``info`` of a request without generating it (a script's own, unprocessed ``p``).
        interrupted: ``/interrupt`` was called (or the client left): start nothing more.
        skipped: ``/skip`` ended the current batch.
        upscale: ``(upscaler, image, scale) -> image`` (A1111's ``upscaler.scaler.upscale``).
        options: the job's options.
        mask: the request's decoded mask (img2img), or ``None``.
        images: the request's decoded init images (img2img), or empty.
    """

    process: Callable[[ProcessCall], Processed]
    describe: Callable[[Any], dict[str, Any]]
    interrupted: Callable[[], bool]
    skipped: Callable[[], bool]
    upscale: Callable[[UpscalerSpec, Image.Image, float], Image.Image]
    options: Any
    mask: Image.Image | None = None
    images: list[Image.Image] = field(default_factory=list)


@dataclass
class ScriptSave:
    """An image a script saves itself: A1111's built-in scripts call ``images.save_image`` whatever the request's
    ``save_images``, when the option they check (``samples_save``, ``grid_save``) is on.

    Args:
        image: what is saved.
        grid: into the grids folder in ``grid_format`` (else the samples folder in ``samples_format``).
        basename: A1111's ``basename`` argument (``"prompt_matrix"``, ``"grid"``, or ``""``).
        seed, prompt: what the file name's ``[seed]`` and prompt tags read.
        infotext: the text saved with it (``None``: none).
        template: an ``info`` of the script's calls, for the file name's other tags.
        short_filename: A1111's ``short_filename`` (no pattern after the number).
    """

    image: Image.Image
    grid: bool
    basename: str
    seed: Any
    prompt: str
    infotext: str | None
    template: dict[str, Any]
    short_filename: bool = False


@dataclass
class ScriptOutput:
    """A script's answer: the images to return, in order, the ``info`` object, and what it saves itself."""

    images: list[Image.Image]
    info: dict[str, Any]
    saves: list[ScriptSave] = field(default_factory=list)


def processed_info(last: Processed, seed: Any, infotext: str | None, **fields: Any) -> dict[str, Any]:
    """A1111's ``Processed(p, images, seed, info).js()`` built by a script after its calls.

    ``p`` is what the last call ran with, so its ``info`` serves as the template; A1111's constructor then takes
    the script's ``seed`` (``None`` → -1), leaves ``subseed`` at -1, and makes ``infotexts`` the one ``info`` text.
    ``fields`` replace anything else (what the script changed on ``p`` after its last call, or passed itself).
    """
    info = dict(last.info)
    info.update(seed=-1 if seed is None else int(seed), subseed=-1, infotexts=[infotext], index_of_first_image=0)
    info.update(fields)
    # js() reads the first prompt of the lists, not p.prompt.
    info.update(prompt=info["all_prompts"][0], negative_prompt=info["all_negative_prompts"][0])
    return info
