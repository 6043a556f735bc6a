"""Common base for A1111 request models (pydantic-v1 model semantics on pydantic v2)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from .coercion import v1_dict

__all__ = ["A1111Request", "LATER_FIELDS"]

# Fields later A1111 versions added to a v1.2.1 request model, read by sdapi (schema name -> field names). They
# follow v1.2.1's fields in the schema and are never echoed in ``parameters``.
LATER_FIELDS: dict[str, tuple[str, ...]] = {
    "StableDiffusionProcessingTxt2Img": (
        "scheduler", "hr_scheduler", "refiner_checkpoint", "refiner_switch_at", "disable_extra_networks",
        "firstpass_image", "comments", "hr_checkpoint_name", "hr_sampler_name", "hr_prompt", "hr_negative_prompt",
        "force_task_id", "infotext"),
    "StableDiffusionProcessingImg2Img": (
        "scheduler", "refiner_checkpoint", "refiner_switch_at", "disable_extra_networks", "firstpass_image",
        "comments", "mask_round", "latent_mask", "force_task_id", "infotext"),
}


class A1111Request(BaseModel):
    """Base of the generated A1111 request models.

    * unknown keys are ignored (pydantic v1 default ``Extra.ignore``);
    * population by field name (A1111 sets ``allow_population_by_field_name``; its aliases equal
      the field names anyway);
    * assignment is not validated (v1 ``allow_mutation=True``, ``validate_assignment=False``);
    * a body that is not a JSON object goes through ``dict(value)`` like v1's ``Model.validate``
      (a list of pairs is accepted, anything else is ``type_error.dict``).
    """

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        validate_assignment=False,
        protected_namespaces=(),
    )

    @model_validator(mode="before")
    @classmethod
    def _v1_model_validate(cls, value: Any) -> Any:
        if isinstance(value, (dict, BaseModel)):
            return value
        if value is None:
            # FastAPI 0.94 treated a JSON ``null`` body like a missing one.
            raise PydanticCustomError("value_error.missing", "field required")
        return v1_dict(value)
