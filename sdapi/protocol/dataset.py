"""Dataset preparation on the wire: A1111 v1.2.1's ``/preprocess`` and ``/interrogate``, and sdapi's ``/dataset/*``.

``/sdapi/v1/preprocess`` takes a free JSON object (A1111 spreads it into ``preprocess(**args)``); ``PreprocessArgs``
checks it with the same names and defaults. The ``/dataset`` models are sdapi's own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from .base import A1111Request
from .coercion import LaxBool, LaxFloat, LaxInt, LaxStr

__all__ = [
    "PreprocessBody", "PreprocessArgs", "PreprocessResponse", "InterrogateRequest", "TagCount", "DatasetFolderInfo",
    "TagFrequencyResponse", "AddTagsOperation", "RemoveTagsOperation", "ReplaceTagOperation", "DedupeTagsOperation",
    "SortTagsOperation", "TagEditRequest", "CaptionChangeItem", "TagEditResponse", "TagDatasetRequest",
    "TagDatasetResponse", "CaptionModelItem", "CaptionModelsResponse",
]

# -- A1111 -----------------------------------------------------------------------------------------------------

PreprocessBody = Annotated[dict[str, Any], WithJsonSchema({"title": "Args", "type": "object"})]
"""``POST /preprocess`` body as A1111 declares it: a bare ``dict``."""


class PreprocessArgs(BaseModel):
    """The parameters of A1111 v1.2.1's ``preprocess()``; an unknown key is refused, as Python refuses it there.

    ``id_task`` is accepted and unused (A1111 requires it; sdapi does not). ``process_multicrop_*`` left ``None``
    take A1111's UI defaults instead of failing. Paths are absolute or relative to the data dir.
    """

    model_config = ConfigDict(extra="forbid", title="PreprocessArgs")

    id_task: Optional[LaxStr] = None
    process_src: LaxStr
    process_dst: LaxStr
    process_width: Annotated[LaxInt, Field(ge=1, le=8192)]
    process_height: Annotated[LaxInt, Field(ge=1, le=8192)]
    preprocess_txt_action: Literal["ignore", "copy", "prepend", "append"]
    process_keep_original_size: LaxBool
    process_flip: LaxBool
    process_split: LaxBool
    process_caption: LaxBool
    process_caption_deepbooru: LaxBool = False
    split_threshold: LaxFloat = 0.5
    overlap_ratio: LaxFloat = 0.2
    process_focal_crop: LaxBool = False
    process_focal_crop_face_weight: LaxFloat = 0.9
    process_focal_crop_entropy_weight: LaxFloat = 0.3
    process_focal_crop_edges_weight: LaxFloat = 0.5
    process_focal_crop_debug: LaxBool = False
    process_multicrop: Optional[LaxBool] = None
    process_multicrop_mindim: Optional[LaxInt] = None
    process_multicrop_maxdim: Optional[LaxInt] = None
    process_multicrop_minarea: Optional[LaxInt] = None
    process_multicrop_maxarea: Optional[LaxInt] = None
    process_multicrop_objective: Optional[Literal["Maximize area", "Minimize error"]] = None
    process_multicrop_threshold: Optional[LaxFloat] = None


class PreprocessResponse(BaseModel):
    model_config = ConfigDict(title="PreprocessResponse")

    info: str = Field(title="Preprocess info", description="Response string from preprocessing task.")


class InterrogateRequest(A1111Request):
    model_config = ConfigDict(title="InterrogateRequest")

    image: str = Field(default="", title="Image",
                       description="Image to work on, must be a Base64 string containing the image's data.")
    model: str = Field(default="clip", title="Model", description="The interrogate model used.")


# -- sdapi: tag frequencies and edits ---------------------------------------------------------------------------

class TagCount(BaseModel):
    """A tag and the number of captions carrying it."""

    tag: str
    count: int


class DatasetFolderInfo(BaseModel):
    """One image folder of the dataset (``10_aki``, or the folder itself when it has no ``N_name`` subfolders)."""

    name: str = Field(description="Folder name; the key of ss_tag_frequency.")
    class_tokens: Optional[str] = Field(description="From N_tokens: the caption of images without a caption file.")
    images: int = Field(description="Images kohya would train on (.png .jpg .jpeg .webp .bmp).")
    captioned: int = Field(description="Images with a caption file.")


class TagFrequencyResponse(BaseModel):
    """Tag frequencies of a dataset, counted as kohya's trainer records them in ``ss_tag_frequency``."""

    path: str = Field(description="The dataset folder, resolved.")
    caption_extension: str
    folders: list[DatasetFolderInfo]
    tag_frequency: dict[str, dict[str, int]] = Field(
        description="Per folder, how many captions carry each tag (split on ',', stripped, lower case): "
                    "the ss_tag_frequency a LoRA trained on this folder will record.")
    tags: list[TagCount] = Field(description="All folders together, most frequent first.")


class AddTagsOperation(BaseModel):
    """Add tags, e.g. the trigger word first so that training with ``keep_tokens=1`` keeps it in front.

    A tag already in a caption is moved to the requested end rather than repeated.
    """

    op: Literal["add"]
    tags: list[str] = Field(min_length=1, examples=[["akichan"]])
    position: Literal["first", "last"] = "first"


class RemoveTagsOperation(BaseModel):
    """Remove tags everywhere: the trait-binding choice. Traits removed (``long hair, blue eyes``) are learned by
    the trigger word; tags kept (clothes, pose, expression, background) stay promptable."""

    op: Literal["remove"]
    tags: list[str] = Field(min_length=1, examples=[["long hair", "blue eyes"]])


class ReplaceTagOperation(BaseModel):
    """Replace one tag by another where it occurs (``new`` may hold several, comma-separated)."""

    op: Literal["replace"]
    old: str = Field(min_length=1)
    new: str


class DedupeTagsOperation(BaseModel):
    """Keep only the first of repeated tags in each caption."""

    op: Literal["dedupe"]


class SortTagsOperation(BaseModel):
    """Order each caption's tags by dataset frequency (most common first) or alphabetically."""

    op: Literal["sort"]
    by: Literal["frequency", "alpha"] = "frequency"
    keep_first: int = Field(default=0, ge=0, description="Leading tags left in place (1 keeps a trigger word first).")


TagOperationItem = Annotated[
    Union[AddTagsOperation, RemoveTagsOperation, ReplaceTagOperation, DedupeTagsOperation, SortTagsOperation],
    Field(discriminator="op"),
]


class TagEditRequest(BaseModel):
    """Edit the caption of every image of a dataset folder.

    Tags are matched ignoring case, surrounding spaces, ``_`` versus space and bracket escapes, so ``Long_Hair``
    matches ``long hair``. Operations run in order on each caption; every changed file is replaced atomically.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "path": "datasets/aki/10_aki", "dry_run": True,
        "operations": [{"op": "remove", "tags": ["long hair", "blue eyes"]}, {"op": "dedupe"},
                       {"op": "add", "tags": ["akichan"], "position": "first"}],
    }]})

    path: str = Field(description="The dataset folder: absolute, or relative to the data dir; inside the allowed roots.")
    operations: list[TagOperationItem] = Field(min_length=1)
    caption_extension: str = Field(default=".txt", pattern=r"^\.[A-Za-z0-9_-]+$")
    dry_run: bool = Field(default=False, description="Report the changes without writing anything.")


class CaptionChangeItem(BaseModel):
    """One caption file the operations change."""

    file: str
    before: str
    after: str
    added: list[str]
    removed: list[str]


class TagEditResponse(BaseModel):
    path: str
    dry_run: bool
    changed: int = Field(description="Caption files changed (or that would change, on a dry run).")
    unchanged: int = Field(description="Caption files the operations leave as they are.")
    changes: list[CaptionChangeItem]


# -- sdapi: tagging a folder ------------------------------------------------------------------------------------

class TagDatasetRequest(BaseModel):
    """Tag every image of a dataset folder with a WD14 tagger, writing ``<image><caption_extension>`` beside it.

    The defaults are the WD14 ones kohya and the tagger demo use; A1111's deepbooru options do not apply here.
    """

    path: str = Field(description="The dataset folder: absolute, or relative to the data dir; inside the allowed roots.")
    model: Optional[str] = Field(default=None, description="A tagger folder name from /dataset/models; the first one if omitted.")
    caption_extension: str = Field(default=".txt", pattern=r"^\.[A-Za-z0-9_-]+$")
    general_threshold: float = Field(default=0.35, ge=0, le=1)
    character_threshold: float = Field(default=0.85, ge=0, le=1)
    rating: bool = Field(default=False, description="Put the most likely rating tag (general/sensitive/...) first.")
    replace_underscores: bool = Field(default=True, description="long_hair → long hair (kaomoji such as ^_^ are kept).")
    escape_brackets: bool = Field(default=False, description="Write \\( \\) so A1111 reads brackets literally.")
    order: Literal["score", "alpha", "model"] = "score"
    character_first: bool = False
    undesired_tags: list[str] = Field(default_factory=list, description="Tags never written.")
    existing: Literal["overwrite", "append", "skip"] = Field(
        default="overwrite", description="A caption file already there: replace it, add the new tags to it, or skip the image.")


class TagDatasetResponse(BaseModel):
    path: str
    model: str = Field(description="The tagger folder used.")
    tagged: int
    skipped: int
    interrupted: bool
    captions: dict[str, str] = Field(description="Each written caption by image path.")


class CaptionModelItem(BaseModel):
    name: str
    path: str


class CaptionModelsResponse(BaseModel):
    """The captioning models installed (nothing is ever downloaded)."""

    taggers: list[CaptionModelItem] = Field(description="WD14 taggers (used for deepdanbooru, tags and /dataset/tag).")
    captioners: list[CaptionModelItem] = Field(description="BLIP captioners (used for clip and process_caption).")
    tagger_dir: str
    blip_dir: str
