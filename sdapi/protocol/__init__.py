"""A1111 v1.2.1 ``/sdapi/v1`` wire models (pydantic v2, with pydantic-v1 coercion semantics)."""

from .base import A1111Request
from .coercion import LaxBool, LaxDict, LaxFloat, LaxInt, LaxList, LaxStr, LaxStrList
from .img2img import ImageToImageResponse, StableDiffusionProcessingImg2Img
from .models import SamplerItem, SchedulerItem, SDModelItem, SDVaeItem
from .settings import Flags, Options
from .txt2img import StableDiffusionProcessingTxt2Img, TextToImageResponse
from .utility import (
                      EmbeddingItem,
                      EmbeddingsResponse,
                      FaceRestorerItem,
                      HypernetworkItem,
                      MemoryResponse,
                      PNGInfoRequest,
                      PNGInfoResponse,
                      ProgressResponse,
                      PromptStyleItem,
                      RealesrganItem,
                      ScriptsList,
                      UpscalerItem,
)
from .validation import v1_validation_errors

__all__ = [
    "A1111Request",
    "LaxBool",
    "LaxDict",
    "LaxFloat",
    "LaxInt",
    "LaxList",
    "LaxStr",
    "LaxStrList",
    "StableDiffusionProcessingTxt2Img",
    "TextToImageResponse",
    "StableDiffusionProcessingImg2Img",
    "ImageToImageResponse",
    "SamplerItem",
    "SchedulerItem",
    "SDModelItem",
    "SDVaeItem",
    "v1_validation_errors",
    "Options",
    "Flags",
    "EmbeddingItem",
    "EmbeddingsResponse",
    "FaceRestorerItem",
    "HypernetworkItem",
    "MemoryResponse",
    "PNGInfoRequest",
    "PNGInfoResponse",
    "ProgressResponse",
    "PromptStyleItem",
    "RealesrganItem",
    "ScriptsList",
    "UpscalerItem",
]
