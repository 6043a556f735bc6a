"""``/sdapi/v1/options`` and a request's ``override_settings``: both checked the same way before anything changes.

``POST /options`` changes the shared options and saves them. ``override_settings`` never do: the job reads a copy
with them on top (:meth:`sdapi.options.Options.view`); with ``override_settings_restore_afterwards: false`` the
overrides are kept once the job succeeds, except where a ``POST /options`` set the same option meanwhile.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from sdapi.errors import InvalidRequest
from sdapi.options import OptionsView, checked_option_values
from sdapi.serving.base import ServerState
from sdapi.serving.saving import check_output_folders

log = logging.getLogger("sdapi")

# Output locations and filename patterns cannot be overridden per request (A1111's restricted_opts, which leaves
# out outdir_img2img_grids: that one may be, checked like every output folder).
RESTRICTED_OPTIONS = frozenset({
    "samples_filename_pattern", "directories_filename_pattern", "outdir_samples", "outdir_txt2img_samples",
    "outdir_img2img_samples", "outdir_extras_samples", "outdir_grids", "outdir_txt2img_grids",
    "outdir_save", "outdir_init_images",
})
# Kept in the option map for clients, but owned by the server: a stale value posted back must not overwrite it.
READ_ONLY_OPTIONS = frozenset({"sd_checkpoint_hash"})


def get_options(state: ServerState) -> dict[str, Any]:
    """``GET /options``: every shared value."""
    return state.options.snapshot()


def set_options(state: ServerState, values: dict[str, Any]) -> None:
    """Apply a ``POST /options`` body: all keys are checked first, so a bad one changes nothing.

    Raises:
        KeyError: an unknown key (A1111's 500).
        InvalidRequest: a value that cannot have the option's type.
        PathNotAllowed: an output folder (``outdir_*``) outside the allowed roots.
    """
    checked = checked_option_values(state.options, values)
    check_vae_name(state, checked)
    check_output_folders(state, checked)
    checkpoint = checked.pop("sd_model_checkpoint", None)
    for key, value in checked.items():
        if key in READ_ONLY_OPTIONS:
            if value != state.options.get(key):
                log.info("Option %s is set by the server; the posted value is ignored", key)
            continue
        state.options.set(key, value)
    if "sd_checkpoint_cache" in checked:
        state.engine.set_cache_size(max(state.settings.sd_checkpoint_cache, int(checked["sd_checkpoint_cache"])))
    if checkpoint is not None:
        switch_checkpoint(state, checkpoint)
    state.options.save()


def switch_checkpoint(state: ServerState, name: str) -> None:
    """Load the named checkpoint on the worker, after the jobs queued before.

    An unknown name changes nothing (A1111 v1.2.1 answers 200 and keeps the loaded model).
    """
    info = state.catalog.find(name)
    if info is None:
        log.warning("Checkpoint %s not found; keeping %s", name, state.options.get("sd_model_checkpoint"))
        return
    if info.title != state.options.get("sd_model_checkpoint"):
        state.run_sync(functools.partial(state.activate, info), "switch checkpoint")


def checked_overrides(state: ServerState, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """A request's ``override_settings`` checked as ``POST /options`` checks its body, before the job is queued.

    Restricted options are dropped (as A1111 drops them); an unknown checkpoint name is dropped with a warning
    (A1111 silently keeps the current model).

    Raises:
        KeyError: an unknown key (A1111's 500).
        InvalidRequest: a value of the wrong type, naming the option.
    """
    wanted = {k: v for k, v in (overrides or {}).items() if k not in RESTRICTED_OPTIONS}
    checked = checked_option_values(state.options, wanted)
    check_vae_name(state, checked)
    check_output_folders(state, checked)
    for key in READ_ONLY_OPTIONS & checked.keys():
        checked.pop(key)
    return checked


def check_vae_name(state: ServerState, values: dict[str, Any]) -> None:
    """``sd_vae`` must be ``Automatic``, ``None`` or a VAE file's name (``/sd-vae``). A1111 stores any string and
    falls back to the checkpoint's own VAE with a console line; a typo would then go unnoticed.

    Raises:
        InvalidRequest: naming the option and the value.
    """
    name = values.get("sd_vae")
    if name is not None and not state.vaes.knows(str(name)):
        raise InvalidRequest(f"option sd_vae: {name!r} is not Automatic, None or the name of a VAE file "
                             "(GET /sdapi/v1/sd-vae lists them)")


def unknown_checkpoint_warning(state: ServerState, overrides: dict[str, Any]) -> str | None:
    """The warning for an ``sd_model_checkpoint`` override that names no checkpoint (which is then dropped)."""
    name = overrides.get("sd_model_checkpoint")
    if name is None or state.catalog.find(name) is not None:
        return None
    overrides.pop("sd_model_checkpoint")
    return f"override_settings.sd_model_checkpoint {name!r} matches no checkpoint; the current model was used"


def job_options(state: ServerState, overrides: dict[str, Any]) -> OptionsView:
    """The options a job reads (taken on the worker, when the job starts)."""
    return state.options.view(overrides)


def keep_overrides(state: ServerState, overrides: dict[str, Any], options: OptionsView) -> None:
    """``override_settings_restore_afterwards: false``: keep a finished job's overrides in the shared options,
    except those a ``POST /options`` changed while it ran. A checkpoint is kept by its title, with its hash, as
    A1111 records the model it loaded."""
    values = dict(overrides)
    info = state.catalog.find(values["sd_model_checkpoint"]) if "sd_model_checkpoint" in values else None
    if info is not None:
        values.update(sd_model_checkpoint=info.title, sd_checkpoint_hash=info.sha256)
    applied = state.options.set_unless_changed(values, options)
    if applied:
        log.info("Kept override_settings %s after the job", ", ".join(applied))
