"""The sd-webui-controlnet extension's API shapes: a unit in ``alwayson_scripts.controlnet.args``, the
``/controlnet/detect`` body and the listing responses (``scripts/api.py``, ``internal_controlnet/args.py``)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ControlNetUnitRequest(BaseModel):
    """One unit as the extension reads it (``ControlNetUnit.from_dict``); unknown fields are ignored.

    ``image`` (or its old name ``input_image``) is base64, ``{"image": ..., "mask": ...}`` or ``[image, mask]``;
    ``resize_mode``, ``control_mode`` and ``hr_option`` take the extension's names (or 0/1/2).
    """

    model_config = ConfigDict(extra="ignore")

    enabled: bool = False
    module: str = "none"
    model: Optional[str] = "None"
    weight: float = 1.0
    image: Any = None
    input_image: Any = None
    mask: Any = None
    mask_image: Any = None
    resize_mode: Any = "Crop and Resize"
    low_vram: bool = False
    lowvram: Optional[bool] = None
    processor_res: float = -1
    threshold_a: float = -1
    threshold_b: float = -1
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    guidance: Optional[float] = None
    pixel_perfect: bool = False
    control_mode: Any = "Balanced"
    hr_option: Any = "Both"
    save_detected_map: bool = True


class ControlNetDetectRequest(BaseModel):
    """``POST /controlnet/detect``."""

    controlnet_module: str = Field("none", title="Controlnet Module")
    controlnet_input_images: List[str] = Field([], title="Controlnet Input Images")
    controlnet_processor_res: int = Field(-1, title="Controlnet Processor Resolution")
    controlnet_threshold_a: float = Field(-1, title="Controlnet Threshold a")
    controlnet_threshold_b: float = Field(-1, title="Controlnet Threshold b")
    controlnet_masks: List[str] = Field([], title="Controlnet Masks")
    low_vram: bool = Field(False, title="Low vram")

    @model_validator(mode="before")
    @classmethod
    def _older_image_field(cls, value: Any) -> Any:
        # webuiapi (0.9.17) sends the images as ``controlnet_images``, the extension's earlier name; kept readable so
        # its controlnet_detect() works unchanged.
        if isinstance(value, dict) and "controlnet_input_images" not in value and "controlnet_images" in value:
            value = {**value, "controlnet_input_images": value["controlnet_images"]}
        return value


class ControlNetDetectResponse(BaseModel):
    images: List[str] = []
    info: str = "Success"
    poses: Optional[List[Dict[str, Any]]] = None  # OpenPose preprocessors only


class ControlNetControlType(BaseModel):
    module_list: List[str]
    model_list: List[str]
    default_option: str
    default_model: str


class ControlNetControlTypes(BaseModel):
    control_types: Dict[str, ControlNetControlType]


class ControlNetVersion(BaseModel):
    version: int


class ControlNetModelList(BaseModel):
    model_list: List[str]


class ControlNetModuleList(BaseModel):
    module_list: List[str]
    module_detail: Dict[str, Any]


class ControlNetSettings(BaseModel):
    control_net_unit_count: int
