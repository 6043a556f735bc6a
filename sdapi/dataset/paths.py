"""Confining request paths to the folders the server was told it may touch.

A path in a request is the client's word; the server trusts only what it resolves to. Relative paths are taken
from the data dir. Any ``..`` component is refused outright (even one that would land back inside a root), and the
resolved path, every symlink followed, must lie under one of the roots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sdapi.errors import ApiError, InvalidRequest


class PathNotAllowed(ApiError):
    """403: a request path that leaves the configured roots (``..`` or a symlink escape)."""

    status_code = 403


@dataclass(frozen=True)
class PathGuard:
    """Resolves request paths and refuses those outside ``roots``.

    Args:
        base: where relative paths start (the data dir).
        roots: folders a request may read or write under; ``base`` is usually one of them.
    """

    base: Path
    roots: tuple[Path, ...]

    @classmethod
    def for_roots(cls, base: Path, extra_roots: Iterable[Path] = ()) -> PathGuard:
        """A guard allowing ``base`` and ``extra_roots`` (each resolved once, here)."""
        roots = [Path(base).expanduser().resolve()]
        roots += [Path(root).expanduser().resolve() for root in extra_roots]
        return cls(base=roots[0], roots=tuple(dict.fromkeys(roots)))

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
        try:
            raw = Path(os.fspath(requested)).expanduser()
            if ".." in raw.parts:
                raise PathNotAllowed(f"Path {requested!s} is not allowed: '..' components are refused")
            real = (raw if raw.is_absolute() else self.base / raw).resolve()
        except (ValueError, OSError, RuntimeError) as exc:  # NUL bytes, names too long, symlink loops
            raise InvalidRequest(f"Invalid path {str(requested)!r}: {exc}") from exc
        self.check(real, shown=requested)
        return real

    def check(self, real: Path, shown: str | os.PathLike | None = None) -> Path:
        """Refuse ``real`` (an already resolved path, e.g. a file found in a folder) outside every root.

        Returns:
            ``real`` resolved, following any symlink it is.
        """
        try:
            resolved = Path(real).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop among the folder's files
            raise InvalidRequest(f"Invalid path {str(shown if shown is not None else real)!r}: {exc}") from exc
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(root) for root in self.roots)
            raise PathNotAllowed(f"Path {shown if shown is not None else real!s} is not allowed: it is outside "
                                 f"the allowed folders ({allowed}); add its folder with --dataset-root")
        return resolved
