"""Where each kohya LoRA layer name lands in a loaded pipeline.

kohya names a layer ``<prefix>_<module path with "." → "_">``: ``lora_unet_down_blocks_0_attentions_0_proj_in``,
``lora_te_text_model_encoder_layers_0_self_attn_q_proj``. The UNet part also appears in the original (ldm/SGM)
layout in some files (``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``), so both spellings are
registered. SD2's text encoder is a ``CLIPTextModel`` in diffusers, so its kohya names are SD1's.

SDXL files (kohya's ``sdxl_train_network.py``) name their UNet layers in the ldm/SGM layout and their two text
encoders ``lora_te1_`` (CLIP-L) and ``lora_te2_`` (bigG); ``lora_te_`` is not registered on SDXL, as in A1111.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import torch

from sdapi.engine.ldm_layout import UNET_PREFIX, unet_to_ldm
from sdapi.engine.lora_family import SD, SDXL

log = logging.getLogger("sdapi")

TEXT_ENCODER, UNET = "te", "unet"

# kohya name prefix → (pipeline attribute, which multiplier applies). lora_te1_ is SD1's encoder in A1111 v1.5+.
COMPONENT_PREFIXES = (
    ("lora_unet_", "unet", UNET),
    ("lora_te_", "text_encoder", TEXT_ENCODER),
    ("lora_te1_", "text_encoder", TEXT_ENCODER),
    ("lora_te2_", "text_encoder_2", TEXT_ENCODER),
)
TARGET_TYPES = (torch.nn.Linear, torch.nn.Conv2d)
TEXT_MODEL = "text_model."
SD_ONLY_PREFIXES = ("lora_te_",)


def model_family(pipe) -> str:
    """``"sdxl"`` for a pipeline with a second text encoder, else ``"sd"`` (SD 1.x/2.x)."""
    return SDXL if getattr(pipe, "text_encoder_2", None) is not None else SD


@dataclass(frozen=True)
class LoraTarget:
    """A layer a LoRA may modify.

    Args:
        module: the ``Linear`` or ``Conv2d``.
        component: ``"te"`` or ``"unet"`` (which multiplier applies).
        level: how many times the UNet has halved the latent's sides where the layer runs (0 for the text
            encoder); the LoRA cost model uses it to count the rows the layer sees.
    """

    module: torch.nn.Module
    component: str
    level: int = 0


_BLOCK = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.")


def resolution_level(path: str, blocks: int) -> int:
    """How many times the latent's sides are halved where the UNet layer at ``path`` runs.

    Args:
        path: the layer's module path in the diffusers UNet.
        blocks: the UNet's number of down blocks (one fewer halvings: the last block does not downsample).
    """
    if path.startswith("mid_block."):
        return blocks - 1
    found = _BLOCK.match(path)
    if found is None:
        return 0
    index = int(found.group(2))
    return index if found.group(1) == "down_blocks" else blocks - 1 - index


def kohya_name(prefix: str, module_path: str) -> str:
    """``prefix`` + the module path with dots turned into underscores."""
    return prefix + module_path.replace(".", "_")


def _layers(component: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Every Linear and Conv2d of a component by module path."""
    return {name: m for name, m in component.named_modules() if name and isinstance(m, TARGET_TYPES)}


def text_encoder_names(prefix: str, layers: dict[str, torch.nn.Module]) -> dict[str, torch.nn.Module]:
    """kohya names of text-encoder layers, with or without transformers' ``text_model`` wrapper.

    transformers >= 5.6 dropped ``CLIPTextModel.text_model``; kohya files always carry ``text_model_``.
    """
    names = {}
    for path, module in layers.items():
        names[kohya_name(prefix, path)] = module
        if not path.startswith(TEXT_MODEL):
            names[kohya_name(prefix, TEXT_MODEL + path)] = module
    return names


def ldm_module_paths(unet: torch.nn.Module, paths) -> dict[str, str]:
    """The ldm/SGM module path (``input_blocks.4.1.proj_in``) of each diffusers UNet module path given.

    Raises:
        KeyError: a path has no ldm equivalent; AttributeError, TypeError: the UNet has no usable config.
    """
    ldm = unet_to_ldm({f"{path}.weight": path for path in paths}, unet.config)
    return {path: ldm_key[len(UNET_PREFIX):-len(".weight")] for ldm_key, path in ldm.items()}


def unet_names(prefix: str, unet: torch.nn.Module, layers: dict[str, torch.nn.Module]) -> dict[str, torch.nn.Module]:
    """kohya names of UNet layers in the diffusers layout and, where it maps, the ldm layout."""
    names = {kohya_name(prefix, path): module for path, module in layers.items()}
    try:
        ldm = ldm_module_paths(unet, layers)
    except (KeyError, AttributeError, TypeError) as exc:  # an unusual UNet: diffusers names still work
        log.debug("No ldm names for LoRA keys on this UNet: %s", exc)
        return names
    for path, ldm_path in ldm.items():
        names.setdefault(kohya_name(prefix, ldm_path), layers[path])
    return names


def target_table(pipe) -> dict[str, LoraTarget]:
    """Every kohya layer name this pipeline can take, mapped to its layer.

    Args:
        pipe: a diffusers Stable Diffusion pipeline.

    Returns:
        ``{kohya layer name: target}``.
    """
    table: dict[str, LoraTarget] = {}
    sdxl = model_family(pipe) == SDXL
    # The SDXL refiner's bigG is its conditioner's embedder 0 (A1111 names it 0_model_...), where A1111 v1.10 looks
    # for lora_te1_ as 0_transformer_text_model_ and lora_te2_ as 1_model_...: no text encoder layer applies.
    refiner = sdxl and getattr(pipe, "text_encoder", None) is None
    for prefix, attribute, kind in COMPONENT_PREFIXES:
        component = getattr(pipe, attribute, None)
        if component is None or (sdxl and prefix in SD_ONLY_PREFIXES) or (refiner and kind == TEXT_ENCODER):
            continue
        layers = _layers(component)
        names = unet_names(prefix, component, layers) if kind == UNET else text_encoder_names(prefix, layers)
        levels = _levels(component, layers) if kind == UNET else {}
        table.update({name: LoraTarget(module, kind, levels.get(id(module), 0)) for name, module in names.items()})
    return table


def _levels(unet: torch.nn.Module, layers: dict[str, torch.nn.Module]) -> dict[int, int]:
    """Each UNet layer's :func:`resolution_level`, by module id."""
    blocks = len(getattr(getattr(unet, "config", None), "down_block_types", ())) or 1
    return {id(module): resolution_level(path, blocks) for path, module in layers.items()}
