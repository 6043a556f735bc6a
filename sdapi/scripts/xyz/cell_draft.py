"""What an axis value changes in one X/Y/Z cell: request fields and option overrides, applied in X, Y, Z order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CellDraft:
    """One cell's changes to the plot's request, built up axis by axis (A1111's copy of ``p``).

    Args:
        fields: request fields to replace (``prompt``, ``negative_prompt`` and ``styles`` are always present, so
            that Prompt S/R and Styles see what earlier axes made of them).
        overrides: options set for this cell only (``sd_model_checkpoint``, ``CLIP_stop_at_last_layers``, ...).
    """

    fields: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_request(cls, req) -> "CellDraft":
        """A draft starting from ``req``'s prompts and styles (``None`` read as A1111's ``""`` / ``[]``)."""
        return cls(fields={"prompt": req.prompt or "", "negative_prompt": req.negative_prompt or "",
                           "styles": list(req.styles or [])})

    def request(self, req):
        """``req`` with this cell's fields (a copy; ``req`` is not changed)."""
        return req.model_copy(update=self.fields)
