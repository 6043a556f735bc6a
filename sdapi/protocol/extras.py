"""``/sdapi/v1/extra-single-image`` and ``/extra-batch-images`` models, mirroring A1111 v1.2.1's."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from .base import A1111Request
from .coercion import LaxBool, LaxFloat, LaxInt, LaxStr

__all__ = ["ExtrasSingleImageRequest", "ExtrasSingleImageResponse", "ExtrasBatchImagesRequest",
           "ExtrasBatchImagesResponse", "FileData", "LatentUpscalerModeItem"]

# The lax float type renders its own schema; A1111's bounds are added back to the property.
_UNIT = {"minimum": 0.0, "maximum": 1.0}
_UPSCALER_NAMES = "None , Lanczos , Nearest , ESRGAN_4x , LDSR , R-ESRGAN 4x+ , R-ESRGAN 4x+ Anime6B , SwinIR 4x"


class ExtrasBaseRequest(A1111Request):
    """The fields both extras requests share (A1111's ``ExtrasBaseRequest``)."""

    resize_mode: Literal[0, 1] = Field(
        default=0, title="Resize Mode",
        description="Sets the resize mode: 0 to upscale by upscaling_resize amount, 1 to upscale up to "
                    "upscaling_resize_h x upscaling_resize_w.")
    show_extras_results: LaxBool = Field(default=True, title="Show results",
                                         description="Should the backend return the generated image?")
    gfpgan_visibility: LaxFloat = Field(
        default=0, title="GFPGAN Visibility", ge=0, le=1, json_schema_extra=_UNIT,
        description="Sets the visibility of GFPGAN, values should be between 0 and 1.")
    codeformer_visibility: LaxFloat = Field(
        default=0, title="CodeFormer Visibility", ge=0, le=1, json_schema_extra=_UNIT,
        description="Sets the visibility of CodeFormer, values should be between 0 and 1.")
    codeformer_weight: LaxFloat = Field(
        default=0, title="CodeFormer Weight", ge=0, le=1, json_schema_extra=_UNIT,
        description="Sets the weight of CodeFormer, values should be between 0 and 1.")
    upscaling_resize: LaxFloat = Field(
        default=2, title="Upscaling Factor", ge=1, le=8,
        json_schema_extra={"minimum": 1.0, "maximum": 8.0},
        description="By how much to upscale the image, only used when resize_mode=0.")
    upscaling_resize_w: LaxInt = Field(
        default=512, title="Target Width", ge=1,
        description="Target width for the upscaler to hit. Only used when resize_mode=1.")
    upscaling_resize_h: LaxInt = Field(
        default=512, title="Target Height", ge=1,
        description="Target height for the upscaler to hit. Only used when resize_mode=1.")
    upscaling_crop: LaxBool = Field(default=True, title="Crop to fit",
                                    description="Should the upscaler crop the image to fit in the chosen size?")
    upscaler_1: LaxStr = Field(
        default="None", title="Main upscaler",
        description=f"The name of the main upscaler to use, it has to be one of this list: {_UPSCALER_NAMES}")
    upscaler_2: LaxStr = Field(
        default="None", title="Secondary upscaler",
        description=f"The name of the secondary upscaler to use, it has to be one of this list: {_UPSCALER_NAMES}")
    extras_upscaler_2_visibility: LaxFloat = Field(
        default=0, title="Secondary upscaler visibility", ge=0, le=1, json_schema_extra=_UNIT,
        description="Sets the visibility of secondary upscaler, values should be between 0 and 1.")
    upscale_first: LaxBool = Field(default=False, title="Upscale first",
                                   description="Should the upscaler run before restoring faces?")


class ExtrasSingleImageRequest(ExtrasBaseRequest):
    model_config = ConfigDict(title="ExtrasSingleImageRequest")

    image: LaxStr = Field(default="", title="Image",
                          description="Image to work on, must be a Base64 string containing the image's data.")


class ExtrasSingleImageResponse(BaseModel):
    model_config = ConfigDict(title="ExtrasSingleImageResponse")

    html_info: str = Field(title="HTML info", description="A series of HTML tags containing the process info.")
    image: Optional[str] = Field(default=None, title="Image", description="The generated image in base64 format.")


class FileData(BaseModel):
    model_config = ConfigDict(title="FileData")

    data: str = Field(title="File data", description="Base64 representation of the file")
    name: str = Field(title="File name")


class ExtrasBatchImagesRequest(ExtrasBaseRequest):
    model_config = ConfigDict(title="ExtrasBatchImagesRequest")

    imageList: list[FileData] = Field(title="Images",  # noqa: N815 - A1111's field name
                                      description="List of images to work on. Must be Base64 strings")


class ExtrasBatchImagesResponse(BaseModel):
    model_config = ConfigDict(title="ExtrasBatchImagesResponse")

    html_info: str = Field(title="HTML info", description="A series of HTML tags containing the process info.")
    images: list[str] = Field(title="Images", description="The generated images in base64 format.")


class LatentUpscalerModeItem(BaseModel):
    """One ``/sdapi/v1/latent-upscale-modes`` entry (A1111 v1.4+)."""

    model_config = ConfigDict(title="LatentUpscalerModeItem")

    name: str = Field(title="Name")
