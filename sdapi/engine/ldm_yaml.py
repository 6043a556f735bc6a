"""An ldm ``<checkpoint>.yaml`` beside a checkpoint, honoured as A1111 honours it.

A1111 builds the model from ``<checkpoint name>.yaml`` when one sits next to the checkpoint (its
``find_checkpoint_config``), so such a file decides the noise schedule, the prediction type, the VAE scale factor,
the UNet/VAE architecture and the text encoder. Here its sections are translated into the diffusers config dir the
checkpoint is loaded with, over whatever the checkpoint's metadata or detected type gave:

* ``model.params``: ``linear_start``/``linear_end``/``timesteps``/``beta_schedule`` and ``parameterization`` go to
  the scheduler, ``scale_factor`` to the VAE;
* ``unet_config`` and ``first_stage_config``: diffusers' own ldm converters give the UNet and VAE configs (keys they
  do not set, like GroupNorm groups, keep their previous values; ``sample_size`` is kept too);
* ``cond_stage_config`` of a ``FrozenCLIPEmbedder`` whose ``version`` names a local folder with a ``config.json``
  (A1111 resolves it from the webui root; here from the checkpoint's folder and each folder above it): that text
  encoder config, and the folder's tokenizer files when it has them. A hub name (``openai/clip-vit-large-patch14``)
  keeps the config the checkpoint already had, which is that model's.

Only what the yaml states is applied, so a partial yaml changes only its own settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import yaml

# ldm beta schedule name -> diffusers name
_BETA_SCHEDULES = {"linear": "scaled_linear", "sqrt_linear": "linear", "cosine": "squaredcos_cap_v2"}
_PREDICTION_TYPES = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}
_TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
_KEPT_FROM_BASE = ("sample_size",)


class LdmYamlError(ValueError):
    """A yaml beside a checkpoint that cannot be read as an ldm config."""


def beside(checkpoint: Path) -> Path | None:
    """The ``<checkpoint name>.yaml`` next to a checkpoint, if there is one."""
    candidate = Path(checkpoint).with_suffix(".yaml")
    return candidate if candidate.is_file() else None


def read_ldm_yaml(path: Path) -> dict[str, Any]:
    """Parse an ldm yaml.

    Raises:
        LdmYamlError: not YAML, or without a ``model`` mapping.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LdmYamlError(f"{Path(path).name}: not a readable ldm yaml ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise LdmYamlError(f"{Path(path).name}: not an ldm config (no 'model' section)")
    return data


def scheduler_updates(params: Mapping[str, Any]) -> dict[str, Any]:
    """Scheduler config values stated by ``model.params``."""
    updates: dict[str, Any] = {}
    if "linear_start" in params:
        updates["beta_start"] = float(params["linear_start"])
    if "linear_end" in params:
        updates["beta_end"] = float(params["linear_end"])
    if "timesteps" in params:
        updates["num_train_timesteps"] = int(params["timesteps"])
    if params.get("beta_schedule") in _BETA_SCHEDULES:
        updates["beta_schedule"] = _BETA_SCHEDULES[params["beta_schedule"]]
    if params.get("parameterization") in _PREDICTION_TYPES:
        updates["prediction_type"] = _PREDICTION_TYPES[params["parameterization"]]
    return updates


def _converted(convert, config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ldm converter's result, minus the keys kept from the checkpoint's own config."""
    result = dict(convert(config, {}))
    for key in _KEPT_FROM_BASE:
        result.pop(key, None)
    return result


def architecture_updates(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """UNet and VAE config values from the yaml's ``unet_config``/``first_stage_config`` and ``scale_factor``.

    Raises:
        LdmYamlError: a section diffusers' converters cannot read.
    """
    from diffusers.loaders.single_file_utils import (
        create_unet_diffusers_config_from_ldm,
        create_vae_diffusers_config_from_ldm,
    )

    params = config["model"].get("params") or {}
    updates: dict[str, dict[str, Any]] = {}
    try:
        if params.get("unet_config"):
            updates["unet"] = _converted(create_unet_diffusers_config_from_ldm, config)
        if params.get("first_stage_config"):
            updates["vae"] = _converted(create_vae_diffusers_config_from_ldm, config)
    except (KeyError, TypeError, ValueError) as exc:
        raise LdmYamlError(f"unsupported ldm model config ({type(exc).__name__}: {exc})") from exc
    if "scale_factor" in params:
        updates.setdefault("vae", {})["scaling_factor"] = float(params["scale_factor"])
    return updates


def clip_folder(config: dict[str, Any], checkpoint: Path) -> Path | None:
    """The local folder a ``FrozenCLIPEmbedder``'s ``version`` names, if it exists (with a ``config.json``)."""
    cond = (config["model"].get("params") or {}).get("cond_stage_config") or {}
    version = (cond.get("params") or {}).get("version")
    if not str(cond.get("target", "")).endswith("FrozenCLIPEmbedder") or not version:
        return None
    version = Path(str(version))
    roots = [Path(checkpoint).resolve().parent, *Path(checkpoint).resolve().parent.parents]
    candidates = [version] if version.is_absolute() else [root / version for root in roots]
    candidates.append(Path(checkpoint).parent / version.name)
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def apply_ldm_yaml(files: dict[str, bytes], yaml_path: Path, checkpoint: Path) -> dict[str, bytes]:
    """A config dir's files with the yaml's settings applied.

    Args:
        files: relative path -> content of the config dir built so far (``unet/config.json``, ...).
        yaml_path: the ldm yaml.
        checkpoint: the checkpoint it sits beside.

    Returns:
        A new mapping; the input is not modified.

    Raises:
        LdmYamlError: an unreadable yaml or model section.
    """
    config = read_ldm_yaml(yaml_path)
    updates = architecture_updates(config)
    updates["scheduler"] = scheduler_updates(config["model"].get("params") or {})
    result = dict(files)
    for component, values in updates.items():
        rel = "scheduler/scheduler_config.json" if component == "scheduler" else f"{component}/config.json"
        if values and rel in result:
            result[rel] = json_bytes({**json.loads(result[rel]), **values})
    folder = clip_folder(config, checkpoint)
    if folder is not None:
        result["text_encoder/config.json"] = (folder / "config.json").read_bytes()
        for name in _TOKENIZER_FILES:
            if (folder / name).is_file():
                result[f"tokenizer/{name}"] = (folder / name).read_bytes()
    return result


def json_bytes(obj: Any) -> bytes:
    """Serialise JSON deterministically: UTF-8, keys sorted, 2-space indent, trailing newline."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")
