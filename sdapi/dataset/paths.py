"""Confining request paths to the folders the server was told it may touch.

A path in a request is the client's word; the server trusts only what it resolves to. Relative paths are taken
from the data dir. Any ``..`` component is refused outright (even one that would land back inside a root), and the
resolved path, every symlink followed, must lie under one of the roots. Outputs are checked once more: the model
folders (``models/``, ``--ckpt-dir``, …) may be read but never written, except the LoRA folder, which takes outputs
even when it lies outside the roots (``--lora-dir``). Name fragments a request adds to a server folder
(``output_name``, ``log_prefix``, ``caption_extension``) go through the same guard.

Messages name paths as the client wrote them or relative to their root, never the server's own folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sdapi.errors import ApiError, InvalidRequest

# Far beyond any real path or file name; a longer one is a mistake or an attack, refused before touching the disk.
MAX_PATH_CHARS = 4096
MAX_NAME_CHARS = 128
NAME_SEPARATORS = ("/", "\\")


class PathNotAllowed(ApiError):
    """403: a request path that leaves the configured roots (``..`` or a symlink escape)."""

    status_code = 403


def _reason(exc: BaseException) -> str:
    """Why a path is unusable, without the path itself (an OSError's text names the server's full path)."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, RuntimeError):
        return "symlink loop"
    return str(exc)


def _within(path: Path, folders: Iterable[Path]) -> bool:
    return any(path == folder or path.is_relative_to(folder) for folder in folders)


@dataclass(frozen=True)
class PathGuard:
    """Resolves request paths and refuses those outside ``roots``.

    Args:
        base: where relative paths start (the data dir).
        roots: folders a request may read or write under; ``base`` is usually one of them.
        protected: folders under the roots that may be read but never written (the model folders).
        writable: folders outputs may go to even inside ``protected`` or outside ``roots`` (the LoRA folder).
    """

    base: Path
    roots: tuple[Path, ...]
    protected: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()

    @classmethod
    def for_roots(cls, base: Path, extra_roots: Iterable[Path] = (), protected: Iterable[Path] = (),
                  writable: Iterable[Path] = ()) -> PathGuard:
        """A guard allowing ``base`` and ``extra_roots`` (each folder resolved once, here)."""
        def resolved(folders: Iterable[Path]) -> tuple[Path, ...]:
            return tuple(dict.fromkeys(Path(folder).expanduser().resolve() for folder in folders))

        roots = resolved([base, *extra_roots])
        return cls(base=roots[0], roots=roots, protected=resolved(protected), writable=resolved(writable))

    @classmethod
    def for_settings(cls, settings: Any) -> PathGuard:
        """The server's guard: the data dir and ``--dataset-root`` folders; the model folders read-only except
        the LoRA folder.

        Args:
            settings: :class:`sdapi.settings.Settings` (or anything with its folder attributes).
        """
        protected = [settings.models_root, settings.models_dir, settings.taggers_dir, settings.blip_models_dir]
        return cls.for_roots(settings.data_dir, getattr(settings, "dataset_roots", None) or (), protected,
                             [settings.loras_dir])

    def shown(self, path: str | os.PathLike) -> str:
        """How a message names a server path: relative to the root holding it, else by its last component."""
        candidate = Path(path)
        for root in (*self.roots, *self.writable):
            if candidate.is_absolute() and (candidate == root or candidate.is_relative_to(root)):
                return candidate.relative_to(root).as_posix()
        return candidate.as_posix() if not candidate.is_absolute() else candidate.name

    def _real(self, requested: str | os.PathLike) -> Path:
        text = os.fspath(requested)
        if len(text) > MAX_PATH_CHARS:
            raise InvalidRequest(f"Invalid path: longer than {MAX_PATH_CHARS} characters")
        try:
            raw = Path(text).expanduser()
            if ".." in raw.parts:
                raise PathNotAllowed(f"Path {text} is not allowed: '..' components are refused")
            return (raw if raw.is_absolute() else self.base / raw).resolve()
        except (ValueError, OSError, RuntimeError) as exc:  # NUL bytes, names too long, symlink loops
            raise InvalidRequest(f"Invalid path {text!r}: {_reason(exc)}") from exc

    def resolve(self, requested: str | os.PathLike) -> Path:
        """The real location of ``requested``, which must be under a root.

        Args:
            requested: absolute, or relative to the data dir.

        Returns:
            The resolved absolute path (it need not exist yet).

        Raises:
            PathNotAllowed: ``..`` in the path, or it resolves outside every root.
            InvalidRequest: not a usable path at all (a NUL byte, a name too long).
        """
        real = self._real(requested)
        self.check(real, shown=requested)
        return real

    def resolve_output(self, requested: str | os.PathLike) -> Path:
        """The real location of a folder or file the request wants written: under a root and outside the model
        folders, or in a writable folder.

        Raises:
            PathNotAllowed: as :meth:`resolve`, or it lies in a model folder.
            InvalidRequest: not a usable path at all.
        """
        real = self._real(requested)
        return self.check_output(real, shown=requested)

    def check(self, real: Path, shown: str | os.PathLike | None = None) -> Path:
        """Refuse ``real`` (an already resolved path, e.g. a file found in a folder) outside every root.

        Args:
            real: the path to check; a symlink is followed.
            shown: how messages name it (the client's own words); default: relative to its root.

        Returns:
            ``real`` resolved, following any symlink it is.

        Raises:
            PathNotAllowed: it resolves outside every root.
            InvalidRequest: it cannot be resolved (a symlink loop).
        """
        named = os.fspath(shown) if shown is not None else self.shown(real)
        try:
            resolved = Path(real).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop among the folder's files
            raise InvalidRequest(f"Invalid path {named!r}: {_reason(exc)}") from exc
        if not _within(resolved, self.roots):
            raise PathNotAllowed(f"Path {named} is not allowed: it is outside the allowed folders; add its folder "
                                 f"with --dataset-root")
        return resolved

    def check_output(self, real: Path, shown: str | os.PathLike | None = None) -> Path:
        """Refuse ``real`` as a place to write: outside every root, or inside a model folder (the LoRA folder
        excepted).

        Returns:
            ``real`` resolved.

        Raises:
            PathNotAllowed: not a place outputs may go.
            InvalidRequest: it cannot be resolved.
        """
        try:
            resolved = Path(real).resolve()
        except (OSError, RuntimeError) as exc:
            raise InvalidRequest(f"Invalid path {shown if shown is not None else self.shown(real)!r}: "
                                 f"{_reason(exc)}") from exc
        if _within(resolved, self.writable):
            return resolved
        self.check(resolved, shown=shown if shown is not None else self.shown(real))
        if _within(resolved, self.protected):
            named = os.fspath(shown) if shown is not None else self.shown(real)
            raise PathNotAllowed(f"Path {named} is not allowed for output: it is inside a model folder; write to a "
                                 f"dataset folder or models/Lora")
        return resolved

    def check_name(self, name: str, what: str = "name") -> str:
        """Refuse a name fragment the server joins to one of its own folders (an output name, a log prefix, a
        file extension) unless it stays a plain part of a single file name.

        Args:
            name: the fragment.
            what: how messages call it.

        Returns:
            ``name`` unchanged.

        Raises:
            PathNotAllowed: a path separator or ``..`` (it would leave the folder).
            InvalidRequest: empty, ``.``, a NUL byte or longer than :data:`MAX_NAME_CHARS`.
        """
        if not name or name == "." or "\x00" in name or len(name) > MAX_NAME_CHARS:
            raise InvalidRequest(f"Invalid {what}: it must be 1 to {MAX_NAME_CHARS} characters, without NUL, "
                                 f"and not '.'")
        if any(sep in name for sep in NAME_SEPARATORS) or ".." in name:
            raise PathNotAllowed(f"{what.capitalize()} {name!r} is not allowed: a name may not hold '/', '\\' "
                                 f"or '..'")
        return name
