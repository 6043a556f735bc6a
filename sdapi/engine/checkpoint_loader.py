"""Load single-file Stable Diffusion checkpoints fully offline.

Every checkpoint, real or tiny, goes through :func:`load_pipeline`:

1. read the file header (safetensors metadata and key shapes; for pickled
   ``.ckpt`` files a ``weights_only`` load) without touching the weights;
2. pick a diffusers config directory:

   * if the metadata holds ``sdapi.diffusers_config`` (our demo checkpoints and
     the parity fixture), write those JSONs into
     ``<cache_dir>/configs/<sha256 of that JSON>/``;
   * otherwise detect the model type from the keys (:mod:`.model_type`) and
     assemble the shipped ``sdapi/configs/<type>/`` into
     ``<cache_dir>/configs/<type>-<content hash>/``;

   in both cases the shipped CLIP ``vocab.json``/``merges.txt`` are copied into
   every tokenizer folder (SDXL's second tokenizer is the same vocabulary),
   so they are stored only once in the package; an ldm ``<checkpoint>.yaml``
   beside the file is then applied over these configs, as A1111 builds its
   model from it (:mod:`.ldm_yaml`);
3. ``<pipeline class>.from_single_file(path, config=<that dir>,
   local_files_only=True)``, the class named by the dir's ``model_index.json``
   (``StableDiffusionPipeline`` for SD 1.x/2.x, ``StableDiffusionXLPipeline``
   for SDXL, whose dir has a second text encoder and tokenizer, and
   ``StableDiffusionXLImg2ImgPipeline`` for the SDXL refiner, whose dir has only
   the second ones: its ``model_index.json`` nulls ``text_encoder``/``tokenizer``
   and says ``requires_aesthetics_score``; diffusers reads its bigG from
   ``conditioner.embedders.0.model.``, which it recognises by the
   ``text_projection`` there).
   ``original_config`` is never passed: it would make diffusers rebuild the
   UNet/VAE from the yaml (ignoring our configs) and fetch the text encoders
   from the hub.
"""

from __future__ import annotations

import os

# Must be set before diffusers/transformers import huggingface_hub: nothing may be downloaded.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdapi.files import NotSafetensors, read_safetensors_header
from sdapi.engine.errors import UnsupportedCheckpoint
from sdapi.engine import ldm_yaml
from sdapi.engine import model_type as mt

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
TOKENIZER_DIR = CONFIGS_DIR / "tokenizers" / "clip"
TOKENIZER_FILES = ("vocab.json", "merges.txt")

DIFFUSERS_CONFIG_KEY = "sdapi.diffusers_config"
DIFFUSERS_CONFIG_FORMAT = "sdapi.diffusers_config/1"
NOTE_KEY = "sdapi.note"

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

# Where each component of a sdapi.diffusers_config lands in a diffusers config dir.
_COMPONENT_FILES = {
    "model_index": "model_index.json",
    "unet": "unet/config.json",
    "vae": "vae/config.json",
    "text_encoder": "text_encoder/config.json",
    "scheduler": "scheduler/scheduler_config.json",
}
# What an SDXL pipeline needs besides: the OpenCLIP bigG text encoder and its tokenizer (config key -> folder).
_SDXL_COMPONENT_FILES = {"text_encoder_2": "text_encoder_2/config.json"}
_TOKENIZER_FOLDERS = {"tokenizer": "tokenizer", "tokenizer_2": "tokenizer_2"}
SD_PIPELINE = "StableDiffusionPipeline"
SDXL_PIPELINE = "StableDiffusionXLPipeline"
SDXL_REFINER_PIPELINE = "StableDiffusionXLImg2ImgPipeline"
# The pipeline class each model family loads as (a metadata config must agree with the keys).
_FAMILY_PIPELINES = {"sd1": SD_PIPELINE, "sd2": SD_PIPELINE, "sdxl": SDXL_PIPELINE,
                     mt.SDXL_REFINER: SDXL_REFINER_PIPELINE}
# Each pipeline's text encoders and tokenizers (the refiner has only SDXL's second ones, bigG).
_PIPELINE_TEXT_PARTS = {
    SD_PIPELINE: (("text_encoder",), ("tokenizer",)),
    SDXL_PIPELINE: (("text_encoder", "text_encoder_2"), ("tokenizer", "tokenizer_2")),
    SDXL_REFINER_PIPELINE: (("text_encoder_2",), ("tokenizer_2",)),
}
# Components from_single_file must not try to load (they would need files we do not ship).
_NULL_COMPONENTS = ("safety_checker", "feature_extractor", "image_encoder")
_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")
_UNSUPPORTED_TYPE_MESSAGES = {
    mt.UNKNOWN: (
        "not a Stable Diffusion 1.x/2.x/SDXL checkpoint sdapi recognises "
        "(no model.diffusion_model.* UNet with a cond_stage_model.* or conditioner.embedders.* text encoder; "
        "is it a VAE, LoRA or embedding file?)"
    ),
}


@dataclass(frozen=True)
class CheckpointHeader:
    """What can be read from a checkpoint without loading its weights.

    Attributes:
        metadata: safetensors ``__metadata__`` (empty for pickled files).
        shapes: tensor key -> shape.
    """

    metadata: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading headers


def _read_safetensors_header(path: Path) -> CheckpointHeader:
    """Parse a safetensors header (8-byte length + JSON) without reading tensors.

    Args:
        path: the ``.safetensors`` file.

    Returns:
        The metadata and key shapes.

    Raises:
        UnsupportedCheckpoint: if the header is not valid safetensors.
    """
    try:
        header = read_safetensors_header(path)
    except NotSafetensors as exc:
        raise UnsupportedCheckpoint(f"{path.name}: not a valid safetensors file ({exc.reason})") from exc
    metadata = header.pop("__metadata__", None) or {}
    try:
        shapes = {k: tuple(int(d) for d in v["shape"]) for k, v in header.items()}
    except (TypeError, KeyError, ValueError) as exc:
        raise UnsupportedCheckpoint(f"{path.name}: not a valid safetensors file (bad tensor entry)") from exc
    return CheckpointHeader(metadata={str(k): str(v) for k, v in metadata.items()}, shapes=shapes)


def _torch_load_weights_only(path: Path) -> Any:
    """``torch.load`` a pickled checkpoint the safe way (as diffusers itself does).

    Args:
        path: a ``.ckpt``/``.pt``/``.pth``/``.bin`` file.

    Returns:
        The loaded object.

    Raises:
        UnsupportedCheckpoint: if the pickle holds non-tensor objects or is unreadable.
    """
    try:
        # mmap keeps multi-GB files out of RAM; it only works for the zip format, hence the retry.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        pass
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights only load failed" in str(exc).lower():
            raise UnsupportedCheckpoint(
                f"{path.name}: this .ckpt holds pickled Python objects (e.g. training state), which are not "
                "loaded for safety (torch.load weights_only=True). Convert it to .safetensors."
            ) from exc
        raise UnsupportedCheckpoint(f"{path.name}: not a readable PyTorch checkpoint ({exc})") from exc


def _read_pickle_header(path: Path) -> CheckpointHeader:
    """Read key shapes from a pickled (``.ckpt``) checkpoint.

    Args:
        path: the checkpoint.

    Returns:
        The key shapes (no metadata).

    Raises:
        UnsupportedCheckpoint: if the file cannot be loaded safely.
    """
    obj = _torch_load_weights_only(path)
    # Lightning checkpoints nest the weights under "state_dict".
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UnsupportedCheckpoint(f"{path.name}: does not contain a state dict")
    shapes = {str(k): tuple(v.shape) for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return CheckpointHeader(metadata={}, shapes=shapes)


def read_checkpoint_header(path: Path) -> CheckpointHeader:
    """Read a checkpoint's metadata and key shapes without loading its weights.

    Args:
        path: a ``.safetensors`` or pickled (``.ckpt``/``.pt``/``.pth``/``.bin``) file.

    Returns:
        The header.

    Raises:
        UnsupportedCheckpoint: for missing, unreadable or unknown files.
    """
    path = Path(path)
    if not path.is_file():
        raise UnsupportedCheckpoint(f"{path.name}: no such checkpoint file")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _read_safetensors_header(path)
    if suffix in PICKLE_SUFFIXES:
        return _read_pickle_header(path)
    raise UnsupportedCheckpoint(f"{path.name}: unknown checkpoint extension {suffix!r} (use .safetensors)")


# --------------------------------------------------------------------------- config directories


def _tokenizer_files(tokenizer_config: dict[str, Any], folder: str = "tokenizer") -> dict[str, bytes]:
    """Build a tokenizer folder's files from a tokenizer config and the shipped vocab.

    Args:
        tokenizer_config: a ``CLIPTokenizer`` tokenizer_config (extra keys such as a
            descriptive ``vocab`` string are dropped; transformers would take
            ``vocab`` as the vocabulary itself).
        folder: ``tokenizer``, or ``tokenizer_2`` for SDXL's second one.

    Returns:
        relative path -> file content.
    """
    config = {k: v for k, v in tokenizer_config.items() if k not in ("vocab", "merges")}
    special = {k: config[k] for k in _SPECIAL_TOKENS if k in config}
    files = {
        f"{folder}/tokenizer_config.json": ldm_yaml.json_bytes(config),
        f"{folder}/special_tokens_map.json": ldm_yaml.json_bytes(special),
    }
    files.update(_vocab_files(folder))
    return files


def _vocab_files(folder: str) -> dict[str, bytes]:
    """The shipped CLIP ``vocab.json``/``merges.txt`` for one tokenizer folder."""
    return {f"{folder}/{name}": (TOKENIZER_DIR / name).read_bytes() for name in TOKENIZER_FILES}


def _offline_model_index(model_index: dict[str, Any]) -> dict[str, Any]:
    """Null out optional components so from_single_file never tries to load them.

    Args:
        model_index: a ``model_index.json`` dict.

    Returns:
        A copy with safety checker / feature extractor / image encoder set to ``[null, null]``.
    """
    index = dict(model_index)
    for name in _NULL_COMPONENTS:
        index[name] = [None, None]
    index["requires_safety_checker"] = False
    return index


def config_files_from_metadata(config_json: str) -> dict[str, bytes]:
    """Turn an ``sdapi.diffusers_config`` metadata value into config-dir files.

    Args:
        config_json: the JSON string stored in the checkpoint metadata.

    Returns:
        relative path -> file content, including the tokenizer files.

    Raises:
        UnsupportedCheckpoint: if the JSON is malformed or of an unknown format.
    """
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise UnsupportedCheckpoint(f"{DIFFUSERS_CONFIG_KEY} metadata is not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != DIFFUSERS_CONFIG_FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise UnsupportedCheckpoint(f"{DIFFUSERS_CONFIG_KEY} has unknown format {found!r}")
    pipeline = config.get("pipeline", SD_PIPELINE)
    if pipeline not in _PIPELINE_TEXT_PARTS:
        raise UnsupportedCheckpoint(f"pipeline {pipeline!r} is not supported yet")
    encoders, tokenizers = _PIPELINE_TEXT_PARTS[pipeline]
    components = {name: rel for name, rel in {**_COMPONENT_FILES, **_SDXL_COMPONENT_FILES}.items()
                  if not name.startswith("text_encoder") or name in encoders}
    missing = [k for k in (*components, *tokenizers) if not isinstance(config.get(k), dict)]
    if missing:
        raise UnsupportedCheckpoint(f"{DIFFUSERS_CONFIG_KEY} lacks {', '.join(missing)}")
    files = {rel: ldm_yaml.json_bytes(config[name]) for name, rel in components.items()}
    files["model_index.json"] = ldm_yaml.json_bytes(_offline_model_index({**config["model_index"],
                                                                          "_class_name": pipeline}))
    for name in tokenizers:
        files.update(_tokenizer_files(config[name], _TOKENIZER_FOLDERS[name]))
    return files


def shipped_config_dir(model_type: str) -> Path:
    """Return the shipped (weightless, tokenizer-less) config dir of a model type.

    Args:
        model_type: one of :data:`sdapi.engine.model_type.SUPPORTED_MODEL_TYPES`.

    Returns:
        ``sdapi/configs/<model_type>``.

    Raises:
        UnsupportedCheckpoint: if no config ships for that type.
    """
    if model_type not in mt.SUPPORTED_MODEL_TYPES:
        raise UnsupportedCheckpoint(_UNSUPPORTED_TYPE_MESSAGES.get(model_type, f"model type {model_type!r} is not supported"))
    return CONFIGS_DIR / model_type


def config_files_for_type(model_type: str) -> dict[str, bytes]:
    """Collect the shipped config files of a model type plus the tokenizer files.

    Args:
        model_type: one of :data:`sdapi.engine.model_type.SUPPORTED_MODEL_TYPES`, or an inpainting type
            (:data:`sdapi.engine.model_type.INPAINT_BASE_TYPES`: its base type's files, UNet input 9 channels).

    Returns:
        relative path -> file content.
    """
    base_type = mt.INPAINT_BASE_TYPES.get(model_type, model_type)
    root = shipped_config_dir(base_type)
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    if base_type != model_type:
        unet = json.loads(files["unet/config.json"])
        unet["in_channels"] = 9
        files["unet/config.json"] = ldm_yaml.json_bytes(unet)
    for folder in sorted({rel.split("/")[0] for rel in files if rel.startswith("tokenizer")}):
        files.update(_vocab_files(folder))
    return files


def pipeline_class_name(files: dict[str, bytes]) -> str:
    """The pipeline class a config dir's ``model_index.json`` names."""
    return json.loads(files["model_index.json"]).get("_class_name", SD_PIPELINE)


def check_family(header: CheckpointHeader, pipeline: str, path: Path) -> None:
    """Refuse a metadata config whose pipeline does not fit the checkpoint's keys (SDXL keys, SD config...).

    Raises:
        UnsupportedCheckpoint: the keys are of a family that loads as another pipeline.
    """
    expected = _FAMILY_PIPELINES.get(mt.model_family(header.shapes))
    if expected is not None and expected != pipeline:
        raise UnsupportedCheckpoint(f"{path.name}: its {DIFFUSERS_CONFIG_KEY} describes a {pipeline} but its keys "
                                    f"are those of a {expected}")


def materialize_config_dir(files: dict[str, bytes], target: Path) -> Path:
    """Write a config dir once, atomically (safe with concurrent loaders).

    Args:
        files: relative path -> content.
        target: the final directory; left alone if it already exists.

    Returns:
        ``target``.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        for rel, data in files.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        try:
            os.rename(tmp, target)  # atomic: readers never see a half-written dir
        except OSError:
            if not target.is_dir():  # anything but "another process won the race"
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _files_digest(files: dict[str, bytes]) -> str:
    """Hash a set of files (names and contents).

    Args:
        files: relative path -> content.

    Returns:
        A hex sha256.
    """
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode("utf-8") + b"\0" + hashlib.sha256(files[rel]).digest())
    return h.hexdigest()


def resolve_config_dir(path: Path, header: CheckpointHeader, cache_dir: Path) -> Path:
    """Find or build the diffusers config dir for a checkpoint.

    Args:
        path: the checkpoint (its name/yaml matter for SD 2.x v-prediction).
        header: its header from :func:`read_checkpoint_header`.
        cache_dir: where assembled config dirs are kept (``<cache_dir>/configs/``).

    An ldm ``<checkpoint>.yaml`` beside the file is applied over the metadata or detected configs, as A1111
    builds its model from such a yaml (:mod:`.ldm_yaml`).

    Returns:
        A local directory to pass as ``config=`` to ``from_single_file``.

    Raises:
        UnsupportedCheckpoint: for unsupported model types, bad metadata or an unreadable yaml.
    """
    configs_root = Path(cache_dir) / "configs"
    config_json = header.metadata.get(DIFFUSERS_CONFIG_KEY)
    if config_json is not None:
        files = config_files_from_metadata(config_json)
        check_family(header, pipeline_class_name(files), path)
        key = hashlib.sha256(config_json.encode("utf-8")).hexdigest()
    else:
        model_type = mt.detect_model_type(header.shapes, path=path)
        files = config_files_for_type(model_type)
        key = f"{model_type}-{_files_digest(files)[:16]}"
    yaml_path = ldm_yaml.beside(path)
    if yaml_path is not None:
        try:
            files = ldm_yaml.apply_ldm_yaml(files, yaml_path, path)
        except ldm_yaml.LdmYamlError as exc:
            raise UnsupportedCheckpoint(str(exc)) from exc
        key = f"yaml-{_files_digest(files)[:16]}"
    return materialize_config_dir(files, configs_root / key)


# --------------------------------------------------------------------------- loading


def _quiet_libraries() -> None:
    """Silence diffusers/transformers info logs and loading progress bars."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()


def load_pipeline(
    path: Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    cache_dir: Path,
) -> Any:
    """Load a single-file SD/SDXL checkpoint as its diffusers pipeline, offline.

    Args:
        path: a ``.safetensors`` (preferred) or ``.ckpt`` checkpoint in the
            original CompVis/ldm layout.
        device: where to put the pipeline.
        dtype: weight dtype of the pipeline.
        cache_dir: a writable directory for assembled config dirs.

    Returns:
        A ``diffusers.StableDiffusionPipeline`` (SD 1.x/2.x), ``StableDiffusionXLPipeline`` (SDXL, SDXL
        inpainting) or ``StableDiffusionXLImg2ImgPipeline`` (SDXL refiner) with progress bars disabled.

    Raises:
        UnsupportedCheckpoint: for unreadable files, pickles with non-tensor objects,
            unknown models, or any failure inside diffusers' loader.
    """
    path = Path(path)
    header = read_checkpoint_header(path)
    config_dir = resolve_config_dir(path, header, Path(cache_dir))
    _quiet_libraries()
    import diffusers

    pipeline_class = getattr(diffusers, json.loads((config_dir / "model_index.json").read_text())["_class_name"])
    try:
        pipe = pipeline_class.from_single_file(
            str(path), config=str(config_dir), local_files_only=True, torch_dtype=dtype
        )
    except Exception as exc:  # the server must report a bad file, not crash
        raise UnsupportedCheckpoint(f"{path.name}: diffusers could not load it ({type(exc).__name__}: {exc})") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
