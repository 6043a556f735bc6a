"""Prompt styles from ``styles.csv`` (A1111's format: ``name,prompt,negative_prompt``), applied to prompts."""

from __future__ import annotations

import csv
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("sdapi")

PROMPT_PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class PromptStyle:
    name: str
    prompt: str = ""
    negative_prompt: str = ""

    def as_item(self) -> dict[str, str]:
        return {"name": self.name, "prompt": self.prompt, "negative_prompt": self.negative_prompt}


def merge_prompts(style_prompt: str, prompt: str) -> str:
    """A style with ``{prompt}`` wraps the prompt; otherwise it is appended after ``", "`` (empties skipped)."""
    if PROMPT_PLACEHOLDER in style_prompt:
        return style_prompt.replace(PROMPT_PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_prompt.strip()) if part)


class StyleDatabase:
    """The styles of one ``styles.csv``, re-read when the file changes.

    Args:
        path: the CSV file; a missing file means no styles (A1111 behaves the same).
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._styles: dict[str, PromptStyle] = {}

    def styles(self) -> dict[str, PromptStyle]:
        """Name → style, in file order."""
        with self._lock:
            mtime = self.path.stat().st_mtime if self.path.exists() else None
            if mtime != self._mtime:
                self._styles = self._read() if mtime is not None else {}
                self._mtime = mtime
            return dict(self._styles)

    def _read(self) -> dict[str, PromptStyle]:
        styles: dict[str, PromptStyle] = {}
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as f:
                for row in csv.DictReader(f, skipinitialspace=True):
                    name = (row.get("name") or "").strip()
                    if name:
                        # "text" is the column name of very old styles files.
                        prompt = row.get("prompt") or row.get("text") or ""
                        styles[name] = PromptStyle(name, prompt, row.get("negative_prompt") or "")
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            log.warning("Could not read styles from %s: %s", self.path, exc)
        return styles

    def apply(self, prompt: str, negative_prompt: str, names: list[str]) -> tuple[str, str]:
        """Both prompts with the named styles merged in, in order; unknown names change nothing (as A1111)."""
        styles = self.styles()
        for name in names:
            style = styles.get(name)
            if style is None:
                log.warning("Style %r not found in %s; ignored", name, self.path)
                continue
            prompt = merge_prompts(style.prompt, prompt)
            negative_prompt = merge_prompts(style.negative_prompt, negative_prompt)
        return prompt, negative_prompt
