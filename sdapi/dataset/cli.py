"""``sdapi preprocess SRC DST`` and ``sdapi tag DIR``: the dataset endpoints' work on the command line, with tqdm.

No server and no path confinement: the user runs these on their own files. Tags use the WD14 defaults (general
0.35, character 0.85, spaces, no escaping), not A1111's deepbooru options.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from pathlib import Path

from sdapi.dataset.captions import combined_caption, tags_caption
from sdapi.dataset.focal import FocalWeights
from sdapi.dataset.folder import scan_dataset
from sdapi.dataset.models import CaptionModels, NoCaptionModel
from sdapi.dataset.preprocess import PreprocessError, PreprocessPlan, preprocess
from sdapi.dataset.progress import TqdmProgress
from sdapi.dataset.resize import MulticropBounds
from sdapi.dataset.tag_format import TagFormat
from sdapi.dataset.tagger import TaggerError
from sdapi.dataset.tagging import tag_dataset
from sdapi.engine.factory import local_engine
from sdapi.settings import Settings

COMMANDS = ("preprocess", "tag")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``preprocess`` and ``tag`` on the ``sdapi`` parser."""
    pre = sub.add_parser("preprocess", help="A1111's preprocess: crop/split/flip a folder into NNNNN-S-name.png + .txt")
    pre.add_argument("src", type=Path)
    pre.add_argument("dst", type=Path)
    pre.add_argument("--width", type=int, default=512)
    pre.add_argument("--height", type=int, default=512)
    pre.add_argument("--txt-action", choices=["ignore", "copy", "prepend", "append"], default="ignore",
                     help="what to do with an existing <image>.txt")
    pre.add_argument("--keep-original-size", action="store_true")
    pre.add_argument("--flip", action="store_true", help="also save mirrored copies")
    pre.add_argument("--split", action="store_true", help="split oversized images into tiles")
    pre.add_argument("--split-threshold", type=float, default=0.5)
    pre.add_argument("--overlap-ratio", type=float, default=0.2)
    pre.add_argument("--focal-crop", action="store_true", help="crop around faces / detail instead of the centre")
    pre.add_argument("--face-weight", type=float, default=0.9)
    pre.add_argument("--entropy-weight", type=float, default=0.3)
    pre.add_argument("--edges-weight", type=float, default=0.5)
    pre.add_argument("--focal-debug", action="store_true", help="also save the annotated focal image")
    pre.add_argument("--multicrop", action="store_true", help="auto-sized crop (A1111's UI bounds unless given)")
    pre.add_argument("--multicrop-min-dim", type=int, default=384)
    pre.add_argument("--multicrop-max-dim", type=int, default=768)
    pre.add_argument("--multicrop-min-area", type=int, default=64 * 64)
    pre.add_argument("--multicrop-max-area", type=int, default=640 * 640)
    pre.add_argument("--multicrop-objective", choices=["Maximize area", "Minimize error"], default="Maximize area")
    pre.add_argument("--multicrop-threshold", type=float, default=0.1)
    pre.add_argument("--caption", action="store_true", help="BLIP caption (needs --blip or DATA_DIR/models/BLIP)")
    pre.add_argument("--tags", action="store_true", help="WD14 tags (needs --tagger or DATA_DIR/models/tagger)")
    _add_model_flags(pre)

    tag = sub.add_parser("tag", help="WD14-tag every image of a folder (or N_name training root) into .txt files")
    tag.add_argument("dir", type=Path)
    tag.add_argument("--caption-extension", default=".txt")
    tag.add_argument("--existing", choices=["overwrite", "append", "skip"], default="overwrite",
                     help="what to do with a caption file already there")
    _add_model_flags(tag)


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help="where models/tagger and models/BLIP are")
    parser.add_argument("--tagger", type=Path, default=None, help="a WD14 tagger folder, or a folder of them")
    parser.add_argument("--model", default=None, help="which tagger folder, by name (default: the first)")
    parser.add_argument("--blip", type=Path, default=None, help="a BLIP transformers folder, or a folder of them")
    parser.add_argument("--general-threshold", type=float, default=0.35)
    parser.add_argument("--character-threshold", type=float, default=0.85)
    parser.add_argument("--rating", action="store_true", help="put the rating tag first")
    parser.add_argument("--keep-underscores", action="store_true", help="write long_hair, not long hair")
    parser.add_argument("--escape", action="store_true", help="write \\( \\) for A1111 prompts")
    parser.add_argument("--order", choices=["score", "alpha", "model"], default="score")
    parser.add_argument("--character-first", action="store_true")
    parser.add_argument("--undesired", default="", help="comma-separated tags never written")


def _models(args: argparse.Namespace) -> CaptionModels:
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    # BLIP runs on an engine built only when a caption is asked for (tagging alone never loads torch).
    engine = functools.cache(lambda: local_engine(dataclasses.replace(settings, device="auto")))
    return CaptionModels(args.tagger or settings.taggers_dir, args.blip or settings.blip_models_dir, engine)


def _format(args: argparse.Namespace) -> TagFormat:
    return TagFormat(general_threshold=args.general_threshold, character_threshold=args.character_threshold,
                     rating=args.rating, replace_underscores=not args.keep_underscores, escape_brackets=args.escape,
                     order=args.order, character_first=args.character_first,
                     undesired=frozenset(tag for tag in args.undesired.split(",") if tag.strip()))


def run_preprocess(args: argparse.Namespace) -> None:
    """``sdapi preprocess``: prints what was written."""
    models = _models(args)
    sentence = None
    if args.caption:
        captioner = models.captioner()
        sentence = captioner.caption
    tags = tags_caption(models.tagger(args.model), _format(args)) if args.tags else None
    bounds = MulticropBounds(args.multicrop_min_dim, args.multicrop_max_dim, args.multicrop_min_area,
                             args.multicrop_max_area, args.multicrop_objective, args.multicrop_threshold)
    plan = PreprocessPlan(
        src=args.src.resolve(), dst=args.dst.resolve(), width=args.width, height=args.height,
        txt_action=args.txt_action, keep_original_size=args.keep_original_size, flip=args.flip, split=args.split,
        split_threshold=args.split_threshold, overlap_ratio=args.overlap_ratio, focal_crop=args.focal_crop,
        focal_weights=FocalWeights(args.face_weight, args.entropy_weight, args.edges_weight),
        focal_debug=args.focal_debug, multicrop=bounds if args.multicrop else None)
    report = preprocess(plan, combined_caption(sentence, tags), TqdmProgress())
    print(f"{report.images} images → {report.outputs} images and {report.captions} captions in {plan.dst}")
    for why in report.skipped:
        print(f"skipped {why}")


def run_tag(args: argparse.Namespace) -> None:
    """``sdapi tag``: prints what was written."""
    dirs = scan_dataset(args.dir.resolve(), args.caption_extension)
    caption = tags_caption(_models(args).tagger(args.model), _format(args))
    report = tag_dataset(dirs, caption, TqdmProgress(), args.existing)
    print(f"tagged {report.tagged} images, skipped {report.skipped} in {args.dir}")


def run(args: argparse.Namespace) -> None:
    """Run the dataset command ``args.command``; a missing model or folder exits with its message.

    Raises:
        SystemExit: with the reason, for the user's shell.
    """
    try:
        (run_preprocess if args.command == "preprocess" else run_tag)(args)
    except NoCaptionModel as exc:
        raise SystemExit(f"sdapi {args.command}: {exc.detail}") from exc
    except (PreprocessError, TaggerError, FileNotFoundError) as exc:
        raise SystemExit(f"sdapi {args.command}: {exc}") from exc
