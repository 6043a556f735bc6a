"""Errors of a training request, each naming the request field that is wrong."""

from __future__ import annotations


class ConfigError(ValueError):
    """A request field that cannot work; answered as a 422 naming the field.

    Args:
        field: the kohya / lora-scripts field name (e.g. ``train_data_dir``).
        message: what is wrong, for a person.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_detail(self) -> dict:
        """The item of a 422 ``detail`` list, shaped like FastAPI's own validation errors."""
        return {"loc": ["body", self.field], "msg": self.message, "type": "value_error"}
