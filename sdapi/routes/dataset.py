"""Dataset preparation: A1111's ``/sdapi/v1/preprocess`` and ``/sdapi/v1/interrogate``, and sdapi's ``/dataset/*``
(tag frequencies, tag edits for the pruning step, WD14 tagging of a folder, the installed captioning models).

Plain ``def`` routes: long runs wait on the job queue from FastAPI's thread pool, never on the event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sdapi.protocol.dataset import (
    CaptionModelsResponse,
    InterrogateRequest,
    PreprocessBody,
    PreprocessResponse,
    TagDatasetRequest,
    TagDatasetResponse,
    TagEditRequest,
    TagEditResponse,
    TagFrequencyResponse,
)
from sdapi.routes.deps import Dataset

router = APIRouter()


@router.post("/sdapi/v1/preprocess", response_model=PreprocessResponse)
def preprocess(args: PreprocessBody, dataset: Dataset):
    """A1111 v1.2.1's "Preprocess images": the body holds ``preprocess()``'s parameters by name.

    Writes ``NNNNN-S-name.png`` (+ ``.txt``) into ``process_dst``. Folders must lie under the data dir or a
    ``--dataset-root`` (403 otherwise). Captions: ``process_caption`` needs a BLIP folder in ``models/BLIP``,
    ``process_caption_deepbooru`` a WD14 tagger in ``models/tagger`` (422 when missing). Runs on the job queue;
    ``/sdapi/v1/progress`` reports it and ``/sdapi/v1/interrupt`` stops it between images.
    """
    return dataset.preprocess(args)


@router.post("/sdapi/v1/interrogate")
def interrogateapi(interrogatereq: InterrogateRequest, dataset: Dataset):
    """Caption an image: ``clip`` with a BLIP folder from ``models/BLIP``, ``deepdanbooru`` with a WD14 tagger from
    ``models/tagger`` (formatted by A1111's deepbooru options). 422 when the model is not installed."""
    return dataset.interrogate(interrogatereq.image, interrogatereq.model)


@router.get("/dataset/tags", response_model=TagFrequencyResponse, tags=["dataset"])
def get_tag_frequencies(dataset: Dataset,
                        path: Annotated[str, Query(description="Dataset folder: absolute or relative to the data dir.")],
                        caption_extension: Annotated[str, Query(pattern=r"^\.[A-Za-z0-9_-]+$")] = ".txt"):
    """Tag frequencies of a dataset folder: per ``N_name`` subfolder (or the folder itself) and overall.

    The per-folder numbers are the ``ss_tag_frequency`` a LoRA trained on this folder records, so what the
    pruning step leaves is what the LoRA will report.
    """
    return dataset.tag_frequencies(path, caption_extension)


@router.post("/dataset/tags", response_model=TagEditResponse, tags=["dataset"])
def edit_tags(req: TagEditRequest, dataset: Dataset):
    """Edit every caption of a dataset folder: add a trigger word first, remove trait tags, replace, dedupe, sort.

    Each changed caption file is replaced atomically. With ``dry_run`` nothing is written and the response shows
    each file's caption before and after.
    """
    return dataset.edit_tags(req)


@router.post("/dataset/tag", response_model=TagDatasetResponse, tags=["dataset"])
def tag_dataset(req: TagDatasetRequest, dataset: Dataset):
    """Caption every image of a dataset folder with a WD14 tagger (``models/tagger/<name>``).

    Runs on the job queue after any generation already queued; ``/sdapi/v1/progress`` reports it and
    ``/sdapi/v1/interrupt`` stops it between images.
    """
    return dataset.tag_folder(req)


@router.get("/dataset/models", response_model=CaptionModelsResponse, tags=["dataset"])
def get_caption_models(dataset: Dataset):
    """The WD14 taggers and BLIP captioners installed; none is ever downloaded."""
    return dataset.installed_models()
