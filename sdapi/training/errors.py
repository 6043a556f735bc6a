"""Errors of a training request, each naming the request field that is wrong."""

from __future__ import annotations

import contextlib
from typing import Iterator

from sdapi.dataset.paths import PathNotAllowed
from sdapi.errors import InvalidRequest


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

    status_code = 422

    def as_detail(self) -> dict:
        """The item of a 422 ``detail`` list, shaped like FastAPI's own validation errors."""
        return {"loc": ["body", self.field], "msg": self.message, "type": "value_error"}

    def response_body(self) -> dict:
        """The whole 422 body: FastAPI's validation shape, naming the field (what the error handler sends)."""
        return {"detail": [self.as_detail()]}


@contextlib.contextmanager
def refused_as(field: str) -> Iterator[None]:
    """Turn the path guard's refusals (403 ``PathNotAllowed``, 422 ``InvalidRequest``) into a ConfigError naming
    the request field, so a training request is refused the same way whatever check failed.

    Raises:
        ConfigError: naming ``field``, with the guard's message.
    """
    try:
        yield
    except PathNotAllowed as exc:
        raise ConfigError(field, exc.detail) from exc
    except InvalidRequest as exc:
        raise ConfigError(field, str(exc)) from exc
