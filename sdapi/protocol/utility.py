"""Progress, PNG info, memory and the read-only listings of A1111 v1.2.1 (``modules/api/models.py`` names)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ProgressResponse", "PNGInfoRequest", "PNGInfoResponse", "MemoryResponse", "UpscalerItem", "HypernetworkItem",
    "FaceRestorerItem", "RealesrganItem", "PromptStyleItem", "EmbeddingItem", "EmbeddingsResponse", "ScriptsList",
]


def _config(title: str) -> ConfigDict:
    return ConfigDict(title=title, protected_namespaces=())


class ProgressResponse(BaseModel):
    model_config = _config("ProgressResponse")

    progress: float = Field(title="Progress", description="The progress with a range of 0 to 1")
    eta_relative: float = Field(title="ETA in secs")
    state: dict = Field(title="State", description="The current state snapshot")
    current_image: Optional[str] = Field(
        default=None, title="Current image",
        description="The current image in base64 format. opts.show_progress_every_n_steps is required for this to work.")
    textinfo: Optional[str] = Field(default=None, title="Info text", description="Info text used by WebUI.")


class PNGInfoRequest(BaseModel):
    model_config = _config("PNGInfoRequest")

    image: str = Field(title="Image", description="The base64 encoded PNG image")


class PNGInfoResponse(BaseModel):
    model_config = _config("PNGInfoResponse")

    info: str = Field(title="Image info", description="A string with the parameters used to generate the image")
    items: dict = Field(title="Items", description="An object containing all the info the image had")


class MemoryResponse(BaseModel):
    model_config = _config("MemoryResponse")

    ram: dict = Field(title="RAM", description="System memory stats")
    cuda: dict = Field(title="CUDA", description="nVidia CUDA memory stats")


class UpscalerItem(BaseModel):
    model_config = _config("UpscalerItem")

    name: str = Field(title="Name")
    model_name: Optional[str] = Field(default=None, title="Model Name")
    model_path: Optional[str] = Field(default=None, title="Path")
    model_url: Optional[str] = Field(default=None, title="URL")
    scale: Optional[float] = Field(default=None, title="Scale")


class HypernetworkItem(BaseModel):
    model_config = _config("HypernetworkItem")

    name: str = Field(title="Name")
    path: Optional[str] = Field(default=None, title="Path")


class FaceRestorerItem(BaseModel):
    model_config = _config("FaceRestorerItem")

    name: str = Field(title="Name")
    cmd_dir: Optional[str] = Field(default=None, title="Path")


class RealesrganItem(BaseModel):
    model_config = _config("RealesrganItem")

    name: str = Field(title="Name")
    path: Optional[str] = Field(default=None, title="Path")
    scale: Optional[int] = Field(default=None, title="Scale")


class PromptStyleItem(BaseModel):
    model_config = _config("PromptStyleItem")

    name: str = Field(title="Name")
    prompt: Optional[str] = Field(default=None, title="Prompt")
    negative_prompt: Optional[str] = Field(default=None, title="Negative Prompt")


class EmbeddingItem(BaseModel):
    model_config = _config("EmbeddingItem")

    step: Optional[int] = Field(
        default=None, title="Step",
        description="The number of steps that were used to train this embedding, if available")
    sd_checkpoint: Optional[str] = Field(
        default=None, title="SD Checkpoint",
        description="The hash of the checkpoint this embedding was trained on, if available")
    sd_checkpoint_name: Optional[str] = Field(
        default=None, title="SD Checkpoint Name",
        description="The name of the checkpoint this embedding was trained on, if available. Note that this is the "
                    "name that was used by the trainer; for a stable identifier, use `sd_checkpoint` instead")
    shape: int = Field(title="Shape", description="The length of each individual vector in the embedding")
    vectors: int = Field(title="Vectors", description="The number of vectors in the embedding")


class EmbeddingsResponse(BaseModel):
    model_config = _config("EmbeddingsResponse")

    loaded: dict[str, EmbeddingItem] = Field(title="Loaded", description="Embeddings loaded for the current model")
    skipped: dict[str, EmbeddingItem] = Field(
        title="Skipped",
        description="Embeddings skipped for the current model (likely due to architecture incompatibility)")


class ScriptsList(BaseModel):
    model_config = _config("ScriptsList")

    txt2img: Optional[list[Any]] = Field(default=None, title="Txt2img", description="Titles of scripts (txt2img)")
    img2img: Optional[list[Any]] = Field(default=None, title="Img2img", description="Titles of scripts (img2img)")
