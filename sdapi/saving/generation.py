"""What a finished txt2img/img2img job saves, as A1111 v1.2.1's ``process_images`` does when the API request had
``save_images: true`` (its API turns that into ``do_not_save_samples = do_not_save_grid = False``): every image
when ``samples_save`` is on, and the grid (``grid-NNNN``) when ``grid_save`` is on and a grid was made.

A1111's API always saves into ``outdir_txt2img_*`` / ``outdir_img2img_*`` (its web UI alone prefers
``outdir_samples``/``outdir_grids`` when set). Relative folders are taken from the data dir, as A1111 takes them
from its install dir. A file that cannot be written is logged and named in the job's warnings; the response is
never lost to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image

from sdapi.dataset.paths import PathGuard
from sdapi.options import Options
from sdapi.saving.files import ImageToSave, save_image
from sdapi.saving.filenames import NamingContext

log = logging.getLogger("sdapi")

# The folder options A1111's API saves into, per mode: (samples, grids).
OUTPUT_FOLDERS = {"txt2img": ("outdir_txt2img_samples", "outdir_txt2img_grids"),
                  "img2img": ("outdir_img2img_samples", "outdir_img2img_grids")}


@dataclass
class ImageSaver:
    """Saves one job's images with the job's options.

    Args:
        guard: the server's path guard (every folder is checked by it).
        options: the job's options.
        mode: ``txt2img`` or ``img2img`` (which folder options apply).
        job_timestamp: the job's (``[job_timestamp]``).
        style_prompts: style names → their prompts, for ``[prompt_no_styles]``.
        failures: collects the warnings of every :meth:`save` (pass one list to several savers to gather a
            script's).
    """

    guard: PathGuard
    options: Options
    mode: str
    job_timestamp: str | None = None
    style_prompts: Callable[[list[str]], list[str]] = lambda names: []
    failures: list[str] = field(default_factory=list)  # every warning so far (a script's several saves)

    @property
    def samples_folder(self) -> str:
        return str(self.options.get(OUTPUT_FOLDERS[self.mode][0]))

    @property
    def grids_folder(self) -> str:
        return str(self.options.get(OUTPUT_FOLDERS[self.mode][1]))

    def save(self, items: list[ImageToSave]) -> list[str]:
        """Save ``items`` in order; returns a warning for each one that could not be saved."""
        warnings = []
        for number, item in enumerate(items, 1):
            try:
                folder = self.guard.resolve_output(item.folder)
                save_image(item, folder, self.guard, self.options)
            except Exception as exc:  # noqa: BLE001 - a failed save must not lose the response
                reason = getattr(exc, "detail", None) or getattr(exc, "strerror", None) or str(exc)
                log.warning("Could not save image %d of %d into %s: %s", number, len(items), item.folder, reason)
                warnings.append(f"save_images: image {number} of {len(items)} was not saved into {item.folder}: "
                                f"{reason}")
        self.failures.extend(warnings)
        return warnings

    def save_generation(self, req, resolved, images: list[Image.Image], infotexts: list[str],
                        grid: Image.Image | None, checkpoint) -> list[str]:
        """Save a txt2img/img2img job's images (and its grid) as A1111 does after sampling.

        Args:
            req: the request (``save_images`` already checked by the caller).
            resolved: its :class:`sdapi.translate.ResolvedRequest`.
            images, infotexts: the finished images and theirs, in order.
            grid: the grid A1111 would have made (``None``: none).
            checkpoint: the model's :class:`sdapi.checkpoints.CheckpointInfo`.

        Returns:
            A warning per image not saved.
        """
        p = resolved.params
        options = self.options
        items = []
        if options.get("samples_save"):
            for i, (image, text) in enumerate(zip(images, infotexts)):
                context = self.context(req, resolved, checkpoint, image, p.seeds[i], p.prompts[i], i)
                items.append(ImageToSave(image, self.samples_folder, "", str(options.get("samples_format")), context,
                                         text))
        if grid is not None and options.get("grid_save"):
            last = len(images) - 1
            context = self.context(req, resolved, checkpoint, grid, p.seeds[0], resolved.all_prompts[0], last)
            items.append(ImageToSave(grid, self.grids_folder, "grid", str(options.get("grid_format")), context,
                                     infotexts[0], short_filename=not options.get("grid_extended_filename"),
                                     grid=True))
        return self.save(items)

    def context(self, req, resolved, checkpoint, image: Image.Image, seed: Any, prompt: str, index: int
                ) -> NamingContext:
        """The values a filename pattern reads for image ``index`` of the job (A1111 reads them off ``p``)."""
        p = resolved.params
        styles = list(req.styles or [])
        return NamingContext(
            seed=seed, prompt=prompt, width=image.width, height=image.height, steps=req.steps,
            cfg_scale=req.cfg_scale, styles=styles, sampler_name=p.sampler.name, model_hash=checkpoint.shorthash,
            model_name=checkpoint.model_name, job_timestamp=self.job_timestamp,
            batch_size=p.batch_size, n_iter=p.n_iter, batch_index=index % p.batch_size,
            iteration=index // p.batch_size, denoising_strength=resolved.denoising_strength,
            clip_skip=self.options.get("CLIP_stop_at_last_layers"), style_prompts=self.style_prompts(styles),
            max_prompt_words=int(self.options.get("directories_max_prompt_words")))

    def save_plot_grids(self, grids, checkpoint) -> list[str]:
        """Save an X/Y/Z plot's grids as A1111's script does when ``grid_save`` is on (even without
        ``save_images``): ``xyz_grid-NNNN-<pattern>`` in the grids folder, the file name read off the first
        cell's answer (tags it has no value for, such as ``[generation_number]``, stay as written).

        Args:
            grids: :class:`sdapi.scripts.xyz.response.SavedGrid` items.
            checkpoint: the job's model.
        """
        if not self.options.get("grid_save"):
            return []
        return self.save([ImageToSave(grid.image, self.grids_folder, "xyz_grid", str(self.options.get("grid_format")),
                                      self._info_context(grid.template, grid.seed, grid.prompt, grid.image,
                                                         checkpoint), grid.infotext, grid=True)
                          for grid in grids])

    def save_script_images(self, saves, checkpoint) -> list[str]:
        """Save what a built-in script saves itself (:class:`sdapi.scripts.processing.ScriptSave` items; the script
        checked ``samples_save`` / ``grid_save``), the file names read as for :meth:`save_plot_grids`."""
        items = []
        for save in saves:
            folder, fmt = ((self.grids_folder, "grid_format") if save.grid else (self.samples_folder, "samples_format"))
            context = self._info_context(save.template, save.seed, save.prompt, save.image, checkpoint)
            items.append(ImageToSave(save.image, folder, save.basename, str(self.options.get(fmt)), context,
                                     save.infotext, short_filename=save.short_filename, grid=save.grid))
        return self.save(items)

    def _info_context(self, info: dict[str, Any], seed: Any, prompt: str, image: Image.Image, checkpoint
                      ) -> NamingContext:
        """The naming values of an image made by a script, read off one of its calls' ``info``."""
        styles = list(info.get("styles") or [])
        return NamingContext(
            seed=seed, prompt=prompt, width=image.width, height=image.height, steps=info.get("steps"),
            cfg_scale=info.get("cfg_scale"), styles=styles, sampler_name=info.get("sampler_name"),
            model_hash=info.get("sd_model_hash"), model_name=checkpoint.model_name,
            job_timestamp=info.get("job_timestamp"), batch_size=info.get("batch_size"), n_iter=None,
            batch_index=None, iteration=None, denoising_strength=info.get("denoising_strength"),
            clip_skip=self.options.get("CLIP_stop_at_last_layers"), style_prompts=self.style_prompts(styles),
            max_prompt_words=int(self.options.get("directories_max_prompt_words")))
