"""VAE files and A1111 v1.2.1's rule for which one a checkpoint uses (``sd_vae``, ``sd_vae_as_default``).

No torch here: this finds and names files; ``sdapi.engine`` swaps the weights.

The files (A1111's ``refresh_vae_list``, in its order; a later file with the same base name wins): ``*.vae.ckpt``,
``*.vae.pt`` and ``*.vae.safetensors`` below the checkpoints folder (and ``--ckpt-dir``), then every ``.ckpt``,
``.pt`` and ``.safetensors`` below ``models/VAE``, then below ``--vae-dir``. Each is named by its base name, the
name ``sd_vae`` takes; ``/sd-vae`` lists them in natural order (later A1111's).

Which VAE a checkpoint uses (A1111 v1.2.1's ``resolve_vae``):

1. ``--vae-path``, whatever the options say;
2. ``<checkpoint>.vae.pt``, ``.vae.ckpt`` or ``.vae.safetensors`` beside the checkpoint (the first that exists),
   when ``sd_vae`` is ``Automatic`` or ``sd_vae_as_default`` is on;
3. nothing (the checkpoint's own VAE) for ``sd_vae`` ``None``;
4. the file ``sd_vae`` names;
5. else the checkpoint's own VAE (a name that matches no file is reported).

Infotexts (later A1111) name a VAE file by its base name and the first 10 hex digits of its sha256.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from sdapi.checkpoints import HashCache

AUTOMATIC, NONE = "Automatic", "None"
AUTOMATIC_NAMES = ("Automatic", "auto")  # "auto": A1111 still reads old configs' value
NEAR_CHECKPOINT_SUFFIXES = (".vae.pt", ".vae.ckpt", ".vae.safetensors")
VAE_HASH_LENGTH = 10


@dataclass(frozen=True)
class VaeChoice:
    """The VAE a job uses.

    Args:
        path: the file (``None``: the checkpoint's own VAE).
        source: why (A1111's ``vae_source``).
        warning: what the options asked for and did not get.
    """

    path: Path | None = None
    source: str | None = None
    warning: str | None = None

    @property
    def name(self) -> str | None:
        """The infotext's ``VAE``: the file's base name."""
        return self.path.name if self.path is not None else None


def natural_key(text: str) -> list:
    """Natural order: digit runs compare as numbers, the rest case-insensitively (A1111's ``natural_sort_key``)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


class VaeCatalog:
    """The VAE files the server knows and the rule choosing one.

    Args:
        checkpoint_dirs: folders searched for ``*.vae.*`` files (the checkpoints folder, ``--ckpt-dir``).
        vae_dirs: folders whose every ``.ckpt``/``.pt``/``.safetensors`` is a VAE (``models/VAE``, ``--vae-dir``).
        vae_path: ``--vae-path``.
        hash_cache: ``cache.json``.
    """

    def __init__(self, checkpoint_dirs: list[Path], vae_dirs: list[Path], vae_path: Path | None,
                 hash_cache: HashCache):
        self.checkpoint_dirs = list(dict.fromkeys(checkpoint_dirs))
        self.vae_dirs = list(dict.fromkeys(vae_dirs))
        self.vae_path = vae_path
        self.hash_cache = hash_cache
        self._files: dict[str, Path] = {}
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, Path]:
        """Rescan (``/refresh-vae``); returns ``{name: file}`` in natural order."""
        found: dict[str, Path] = {}
        for folder, patterns in ([(d, NEAR_CHECKPOINT_SUFFIXES) for d in self.checkpoint_dirs]
                                 + [(d, (".ckpt", ".pt", ".safetensors")) for d in self.vae_dirs]):
            for suffix in _glob_order(patterns):
                for path in sorted(Path(folder).glob(f"**/*{suffix}")) if Path(folder).is_dir() else ():
                    if path.is_file():
                        found[path.name] = path.resolve()
        files = dict(sorted(found.items(), key=lambda item: natural_key(item[0])))
        with self._lock:
            self._files = files
        return files

    def items(self) -> dict[str, Path]:
        """``{name: file}`` as last scanned."""
        with self._lock:
            return dict(self._files)

    def find(self, name: str) -> Path | None:
        """The file named ``name``; on a miss the folders are scanned again once."""
        found = self.items().get(name)
        if found is None:
            found = self.refresh().get(name)
        return found

    def knows(self, sd_vae: str) -> bool:
        """Whether ``sd_vae`` is a value the option may take: ``Automatic``, ``None`` or a file's name."""
        return sd_vae in AUTOMATIC_NAMES or sd_vae == NONE or self.find(sd_vae) is not None

    def resolve(self, checkpoint: Path, sd_vae: str, as_default: bool) -> VaeChoice:
        """Which VAE ``checkpoint`` uses under the ``sd_vae`` and ``sd_vae_as_default`` options."""
        if self.vae_path is not None:
            return VaeChoice(self.vae_path, "from commandline argument")
        automatic = sd_vae in AUTOMATIC_NAMES
        near = near_checkpoint(checkpoint)
        if near is not None and (as_default or automatic):
            return VaeChoice(near, "found near the checkpoint")
        if sd_vae == NONE:
            return VaeChoice()
        chosen = self.find(sd_vae) if sd_vae else None
        if chosen is not None:
            return VaeChoice(chosen, "specified in settings")
        if automatic:
            return VaeChoice()
        return VaeChoice(warning=f"sd_vae {sd_vae!r} matches no VAE file; the checkpoint's own VAE was used")

    def short_hash(self, path: Path) -> str | None:
        """The infotext's ``VAE hash`` (``None`` when the file cannot be read)."""
        try:
            return self.hash_cache.sha256(f"vae/{path.name}", path)[:VAE_HASH_LENGTH]
        except OSError:
            return None


def _glob_order(suffixes: tuple[str, ...]) -> tuple[str, ...]:
    """A1111 globs ``.ckpt`` first, then ``.pt``, then ``.safetensors`` (each pattern over the whole folder)."""
    order = (".ckpt", ".pt", ".safetensors")
    return tuple(sorted(suffixes, key=lambda s: order.index(Path("x" + s).suffix)))


def near_checkpoint(checkpoint: Path) -> Path | None:
    """``<checkpoint without extension>.vae.pt`` / ``.vae.ckpt`` / ``.vae.safetensors``, the first that exists."""
    stem = Path(checkpoint).with_suffix("")
    for suffix in NEAR_CHECKPOINT_SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def vae_catalog(settings, hash_cache: HashCache) -> VaeCatalog:
    """The server's catalog for :class:`sdapi.settings.Settings`, scanned once."""
    default_checkpoints = settings.data_dir / "models" / "Stable-diffusion"
    extra_vaes = [settings.vae_dir] if settings.vae_dir is not None else []
    catalog = VaeCatalog([default_checkpoints, settings.models_dir], [settings.vae_models_dir, *extra_vaes],
                         settings.vae_path, hash_cache)
    catalog.refresh()
    return catalog
