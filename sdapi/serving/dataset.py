"""What each dataset endpoint does between the route and the dataset code: confine paths, check that the models
asked for exist, queue long runs on the server's one worker (so they never overlap generation) and report progress.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from sdapi.dataset.captions import Caption, combined_caption, tags_caption
from sdapi.dataset.edit import plan_changes, write_changes
from sdapi.dataset.focal import FocalWeights
from sdapi.dataset.folder import overall_frequency, scan_dataset, tag_frequency
from sdapi.dataset.models import CaptionModels
from sdapi.dataset.paths import PathGuard
from sdapi.dataset.preprocess import PreprocessError, PreprocessPlan, preprocess
from sdapi.dataset.resize import MulticropBounds
from sdapi.dataset.tag_format import TagFormat, a1111_deepbooru_format
from sdapi.dataset.tagging import tag_dataset
from sdapi.dataset.tags import (
    AddTags,
    DedupeTags,
    RemoveTags,
    ReplaceTag,
    SortTags,
    TagOperation,
)
from sdapi.engine.api import CaptionSettings
from sdapi.errors import InvalidRequest, NotFound
from sdapi.images import decode_image
from sdapi.serving.base import ServerState
from sdapi.serving.control import JobControl
from sdapi.translate import job_timestamp
from sdapi.protocol.dataset import (
    AddTagsOperation,
    DedupeTagsOperation,
    PreprocessArgs,
    RemoveTagsOperation,
    ReplaceTagOperation,
    SortTagsOperation,
    TagDatasetRequest,
    TagEditRequest,
)

PREPROCESS_COMPLETE = "preprocess complete"


class DatasetService:
    """The dataset endpoints' work, over one server's state.

    Args:
        settings: roots, model folders and threads (``sdapi.settings.Settings``).
        state: the server state: options, job control and job queue.
        models: the installed captioning models.
    """

    def __init__(self, settings, state, models: CaptionModels):
        self.settings, self.state, self.models = settings, state, models
        self.guard = PathGuard.for_settings(settings)

    @classmethod
    def for_server(cls, state: ServerState) -> DatasetService:
        """A service whose models live in the settings' folders and whose BLIP runs on the server's engine."""
        settings = state.settings
        models = CaptionModels(settings.taggers_dir, settings.blip_models_dir, lambda: state.engine,
                               threads=settings.num_threads)
        return cls(settings, state, models)

    # -- A1111: /sdapi/v1/preprocess, /sdapi/v1/interrogate -----------------------------------------------------

    def preprocess(self, body: dict[str, Any]) -> dict[str, str]:
        """``POST /sdapi/v1/preprocess``: A1111's answer, ``preprocess complete`` or ``preprocess error: …`` (200).

        Raises:
            InvalidRequest: a missing, unknown or mistyped parameter (422).
            PathNotAllowed: a folder outside the allowed roots (403).
            NoCaptionModel: a caption asked for with no model installed (422).
        """
        args = _preprocess_args(body)
        plan = self._plan(args)
        sentence, tags = self._check_caption_models(args.process_caption, args.process_caption_deepbooru)
        job = functools.partial(self._run_preprocess, plan, sentence, tags)
        try:
            self.state.queue.run_sync(job, "preprocess")
        except PreprocessError as exc:
            return {"info": f"preprocess error: {exc}"}
        return {"info": PREPROCESS_COMPLETE}

    def _plan(self, args: PreprocessArgs) -> PreprocessPlan:
        bounds = None
        if args.process_multicrop:
            defaults = MulticropBounds()
            bounds = MulticropBounds(
                min_dim=_or(args.process_multicrop_mindim, defaults.min_dim),
                max_dim=_or(args.process_multicrop_maxdim, defaults.max_dim),
                min_area=_or(args.process_multicrop_minarea, defaults.min_area),
                max_area=_or(args.process_multicrop_maxarea, defaults.max_area),
                objective=_or(args.process_multicrop_objective, defaults.objective),
                threshold=_or(args.process_multicrop_threshold, defaults.threshold))
        return PreprocessPlan(
            src=self.guard.resolve(args.process_src), dst=self.guard.resolve_output(args.process_dst),
            width=args.process_width, height=args.process_height, txt_action=args.preprocess_txt_action,
            keep_original_size=args.process_keep_original_size, flip=args.process_flip, split=args.process_split,
            split_threshold=args.split_threshold, overlap_ratio=args.overlap_ratio,
            focal_crop=args.process_focal_crop, focal_debug=args.process_focal_crop_debug,
            focal_weights=FocalWeights(face=args.process_focal_crop_face_weight,
                                       entropy=args.process_focal_crop_entropy_weight,
                                       edges=args.process_focal_crop_edges_weight),
            multicrop=bounds)

    def _check_caption_models(self, sentence: bool, tags: bool) -> tuple[Path | None, Path | None]:
        return (self.models.captioner_folder() if sentence else None,
                self.models.tagger_folder() if tags else None)

    def _run_preprocess(self, plan: PreprocessPlan, sentence: Path | None, tags: Path | None) -> None:
        caption = combined_caption(self._sentence_caption() if sentence else None,
                                   self._a1111_tags_caption() if tags else None)
        preprocess(plan, caption, JobProgress(self.state.control, "preprocess"), guard=self.guard)

    def _sentence_caption(self) -> Caption:
        options = self.state.options
        settings = CaptionSettings(num_beams=int(options.get("interrogate_clip_num_beams")),
                                   min_length=int(options.get("interrogate_clip_min_length")),
                                   max_length=int(options.get("interrogate_clip_max_length")),
                                   keep_loaded=bool(options.get("interrogate_keep_models_in_memory")))
        captioner = self.models.captioner()
        return lambda image: captioner.caption(image, settings)

    def _a1111_tags_caption(self) -> Caption:
        return tags_caption(self.models.tagger(), a1111_deepbooru_format(self.state.options))

    def interrogate(self, image_b64: str, model: str) -> dict[str, str]:
        """``POST /sdapi/v1/interrogate``: ``clip`` is a BLIP caption, ``deepdanbooru`` WD14 tags in A1111's format.

        A1111's ``clip`` appends CLIP-ranked artists/mediums/flavours to the BLIP caption; sdapi returns the BLIP
        caption alone (no CLIP interrogator data is shipped or downloaded).

        Raises:
            NotFound: another model name (A1111's ``Model not found``).
            NoCaptionModel: no model of that kind installed (422).
        """
        image = decode_image(image_b64).convert("RGB")
        if model == "clip":
            self.models.captioner_folder()
            make_caption = self._sentence_caption
        elif model == "deepdanbooru":
            self.models.tagger_folder()
            make_caption = self._a1111_tags_caption
        else:
            raise NotFound("Model not found")

        def run() -> str:
            return make_caption()(image)

        return {"caption": self.state.queue.run_sync(run, "interrogate")}

    # -- sdapi: /dataset ---------------------------------------------------------------------------------------

    def _scan(self, path: str, caption_extension: str, *, writes: bool = False):
        root = self.guard.resolve_output(path) if writes else self.guard.resolve(path)
        try:
            return root, scan_dataset(root, caption_extension, guard=self.guard)
        except FileNotFoundError as exc:
            raise NotFound(f"Dataset folder not found: {path}") from exc

    def tag_frequencies(self, path: str, caption_extension: str = ".txt") -> dict[str, Any]:
        """``GET /dataset/tags``: per-folder and overall tag counts, as ``ss_tag_frequency`` records them."""
        root, dirs = self._scan(path, caption_extension)
        per_dir = tag_frequency(dirs)
        overall = sorted(overall_frequency(per_dir).items(), key=lambda item: (-item[1], item[0]))
        folders = [{"name": d.name, "class_tokens": d.class_tokens, "images": len(d.images),
                    "captioned": sum(entry.caption_file.is_file() for entry in d.images)} for d in dirs]
        return {"path": str(root), "caption_extension": caption_extension, "folders": folders,
                "tag_frequency": per_dir, "tags": [{"tag": tag, "count": count} for tag, count in overall]}

    def edit_tags(self, req: TagEditRequest) -> dict[str, Any]:
        """``POST /dataset/tags``: apply the operations to every caption file (or only report them on a dry run)."""
        root, dirs = self._scan(req.path, req.caption_extension, writes=not req.dry_run)
        changes = plan_changes(dirs, [_operation(item) for item in req.operations])
        if not req.dry_run:
            write_changes(changes)
        captioned = sum(entry.caption_file.is_file() for d in dirs for entry in d.images)
        return {"path": str(root), "dry_run": req.dry_run, "changed": len(changes),
                "unchanged": captioned - len(changes),
                "changes": [{"file": str(c.file), "before": c.before, "after": c.after, "added": list(c.added),
                             "removed": list(c.removed)} for c in changes]}

    def tag_folder(self, req: TagDatasetRequest) -> dict[str, Any]:
        """``POST /dataset/tag``: WD14-tag every image of the folder, on the job queue, with ``/progress``."""
        root, dirs = self._scan(req.path, req.caption_extension, writes=True)
        folder = self.models.tagger_folder(req.model)
        fmt = TagFormat(general_threshold=req.general_threshold, character_threshold=req.character_threshold,
                        rating=req.rating, replace_underscores=req.replace_underscores,
                        escape_brackets=req.escape_brackets, order=req.order, character_first=req.character_first,
                        undesired=frozenset(req.undesired_tags))

        def run():
            caption = tags_caption(self.models.tagger(folder.name), fmt)
            return tag_dataset(dirs, caption, JobProgress(self.state.control, "tag"), req.existing)

        report = self.state.queue.run_sync(run, "tag")
        return {"path": str(root), "model": str(folder), "tagged": report.tagged, "skipped": report.skipped,
                "interrupted": report.interrupted, "captions": report.captions}

    def installed_models(self) -> dict[str, Any]:
        """``GET /dataset/models``: the taggers and captioners found in their folders."""
        def items(found: dict[str, Path]) -> list[dict[str, str]]:
            return [{"name": name, "path": str(path)} for name, path in found.items()]

        return {"taggers": items(self.models.taggers()), "captioners": items(self.models.captioners()),
                "tagger_dir": str(self.models.tagger_dir), "blip_dir": str(self.models.blip_dir)}


class JobProgress:
    """Progress through the server's ``JobControl``, so ``/sdapi/v1/progress`` reports it as A1111 does.

    Args:
        control: the server's job control.
        job: the job name ``/progress`` shows (A1111: ``preprocess``).
    """

    def __init__(self, control: JobControl, job: str):
        self.control, self.job = control, job

    def start(self, total: int) -> None:
        self.control.begin(job_count=total, timestamp=job_timestamp())
        self.control.job = self.job

    def describe(self, text: str) -> None:
        self.control.textinfo = text

    def advance(self) -> None:
        self.control.batch_done()

    def should_stop(self) -> bool:
        return self.control.interrupted

    def finish(self) -> None:
        self.control.end()



def _or(value, default):
    return default if value is None else value


def _preprocess_args(body: dict[str, Any]) -> PreprocessArgs:
    """The body checked against ``preprocess()``'s parameters.

    Raises:
        InvalidRequest: naming every missing, unexpected or invalid parameter.
    """
    try:
        return PreprocessArgs.model_validate(body)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            if error["type"] == "missing":
                problems.append(f"missing parameter '{name}'")
            elif error["type"] == "extra_forbidden":
                problems.append(f"unexpected parameter '{name}'")
            else:
                problems.append(f"'{name}': {error['msg']}")
        raise InvalidRequest("preprocess(): " + "; ".join(problems)) from None


OPERATIONS: dict[type, Callable[[Any], TagOperation]] = {
    AddTagsOperation: lambda item: AddTags(tuple(item.tags), item.position),
    RemoveTagsOperation: lambda item: RemoveTags(tuple(item.tags)),
    ReplaceTagOperation: lambda item: ReplaceTag(item.old, item.new),
    DedupeTagsOperation: lambda item: DedupeTags(),
    SortTagsOperation: lambda item: SortTags(item.by, item.keep_first),
}
"""Each wire operation → the tag edit it asks for."""


def _operation(item) -> TagOperation:
    return OPERATIONS[type(item)](item)
