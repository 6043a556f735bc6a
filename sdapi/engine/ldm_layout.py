"""Convert a diffusers Stable Diffusion pipeline to the original single-file layout.

A1111 and most model sites use the CompVis/ldm ("original") key layout:

* UNet under ``model.diffusion_model.`` (``input_blocks`` / ``middle_block`` /
  ``output_blocks``),
* VAE under ``first_stage_model.`` (``encoder.down.N.block.M`` ...),
* text encoder under ``cond_stage_model.transformer.text_model.`` (SD 1.x,
  OpenAI CLIP) or ``cond_stage_model.model.`` (SD 2.x, OpenCLIP); SDXL (Stability's
  sgm layout) has two, CLIP ViT-L under ``conditioner.embedders.0.transformer.`` and
  OpenCLIP ViT-bigG (with its ``text_projection``) under ``conditioner.embedders.1.model.``; the SDXL refiner has
  only that bigG, as its first embedder: ``conditioner.embedders.0.model.``.

diffusers only ships the original -> diffusers direction, so this module holds
the reverse mapping. It is generic over the number of blocks and res-blocks per
level, so tiny test models use exactly the same code as real ones, and
``from_single_file`` reads the result back bit-exactly.

The files are written by our own safetensors writer because
``safetensors.torch.save_file`` emits the metadata in a random (hash-map)
order: the bytes, and so the A1111 model hash, would change on every write.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
OPENCLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPENCLIP_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_OPENCLIP_PREFIX = "conditioner.embedders.0.model."

# diffusers ResnetBlock2D names -> ldm ResBlock names (UNet only).
_UNET_RESNET_NAMES = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
)

# Top-level UNet modules that are not inside a down/mid/up block.
_UNET_TOP_LEVEL = (
    ("time_embedding.linear_1.", "time_embed.0."),
    ("time_embedding.linear_2.", "time_embed.2."),
    ("conv_in.", "input_blocks.0.0."),
    ("conv_norm_out.", "out.0."),
    ("conv_out.", "out.2."),
    ("add_embedding.linear_1.", "label_emb.0.0."),
    ("add_embedding.linear_2.", "label_emb.0.2."),
)

# Splits a UNet key into (block prefix, rest), e.g. "down_blocks.1.resnets.0." + "conv1.weight".
_UNET_BLOCK_RE = re.compile(
    r"^((?:down_blocks|up_blocks)\.\d+\.(?:resnets|attentions)\.\d+\."
    r"|down_blocks\.\d+\.downsamplers\.0\."
    r"|up_blocks\.\d+\.upsamplers\.0\."
    r"|mid_block\.(?:resnets|attentions)\.\d+\.)(.*)$"
)

# VAE mid-block attention: diffusers Linear layers -> ldm 1x1 convs.
_VAE_ATTENTION_NAMES = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)

# OpenCLIP resblock names for the parts of a CLIP encoder layer (q/k/v are fused separately).
_OPENCLIP_LAYER_NAMES = (
    ("self_attn.out_proj.", "attn.out_proj."),
    ("layer_norm1.", "ln_1."),
    ("layer_norm2.", "ln_2."),
    ("mlp.fc1.", "mlp.c_fc."),
    ("mlp.fc2.", "mlp.c_proj."),
)

# safetensors dtype names (https://github.com/huggingface/safetensors, format spec).
_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}


# --------------------------------------------------------------------------- UNet


def _per_block(value: int | list[int] | tuple[int, ...], n_blocks: int) -> list[int]:
    """Expand a per-block config value that may be given as a single int.

    Args:
        value: an int (same for every block) or one value per block.
        n_blocks: the number of blocks.

    Returns:
        A list with one value per block.
    """
    if isinstance(value, int):
        return [value] * n_blocks
    return list(value)


def _unet_block_prefix_map(config: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Map every diffusers UNet block prefix to its ldm prefix.

    Args:
        config: the ``UNet2DConditionModel`` config.

    Returns:
        ``{diffusers_prefix: (ldm_prefix, kind)}`` where kind is ``"resnet"``,
        ``"attention"``, ``"downsampler"`` or ``"upsampler"``.
    """
    n_blocks = len(config["block_out_channels"])
    down_layers = _per_block(config["layers_per_block"], n_blocks)
    up_layers = list(reversed(down_layers))
    mapping: dict[str, tuple[str, str]] = {}

    # input_blocks.0 is conv_in; each res-block (+ attention) and each downsampler takes one slot.
    idx = 1
    for i in range(n_blocks):
        for j in range(down_layers[i]):
            mapping[f"down_blocks.{i}.resnets.{j}."] = (f"input_blocks.{idx}.0.", "resnet")
            mapping[f"down_blocks.{i}.attentions.{j}."] = (f"input_blocks.{idx}.1.", "attention")
            idx += 1
        if i < n_blocks - 1:
            mapping[f"down_blocks.{i}.downsamplers.0."] = (f"input_blocks.{idx}.0.", "downsampler")
            idx += 1

    # middle_block alternates resnet, attention, resnet.
    for j in range(2):
        mapping[f"mid_block.resnets.{j}."] = (f"middle_block.{2 * j}.", "resnet")
    mapping["mid_block.attentions.0."] = ("middle_block.1.", "attention")

    # Up blocks have one more res-block than down blocks; the upsampler sits in the
    # last slot of the level, after the attention when the level has one.
    idx = 0
    for i, block_type in enumerate(config["up_block_types"]):
        n_res = up_layers[i] + 1
        for j in range(n_res):
            mapping[f"up_blocks.{i}.resnets.{j}."] = (f"output_blocks.{idx}.0.", "resnet")
            mapping[f"up_blocks.{i}.attentions.{j}."] = (f"output_blocks.{idx}.1.", "attention")
            if j == n_res - 1 and i < n_blocks - 1:
                slot = 2 if "CrossAttn" in block_type else 1
                mapping[f"up_blocks.{i}.upsamplers.0."] = (f"output_blocks.{idx}.{slot}.", "upsampler")
            idx += 1
    return mapping


def _rename_unet_inner(rest: str, kind: str) -> str:
    """Rename the part of a UNet key below its block prefix.

    Args:
        rest: the key with the block prefix removed, e.g. ``"conv1.weight"``.
        kind: the block kind from :func:`_unet_block_prefix_map`.

    Returns:
        The ldm name of that part.
    """
    if kind == "resnet":
        for old, new in _UNET_RESNET_NAMES:
            if rest.startswith(old):
                return new + rest[len(old) :]
    elif kind == "downsampler":
        # ldm's Downsample names its strided conv "op".
        if rest.startswith("conv."):
            return "op." + rest[len("conv.") :]
    # Transformer blocks and upsampler convs have the same names in both layouts.
    return rest


def unet_to_ldm(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Convert a diffusers UNet state dict to ``model.diffusion_model.*`` keys.

    Args:
        state_dict: ``UNet2DConditionModel.state_dict()``.
        config: the UNet config (block counts, layers per block, block types).

    Returns:
        The state dict with ldm keys.

    Raises:
        KeyError: if a key has no known ldm equivalent.
    """
    blocks = _unet_block_prefix_map(config)
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new_key = next((new + key[len(old) :] for old, new in _UNET_TOP_LEVEL if key.startswith(old)), None)
        if new_key is None:
            match = _UNET_BLOCK_RE.match(key)
            if match is None or match.group(1) not in blocks:
                raise KeyError(f"UNet key {key!r} has no ldm equivalent")
            ldm_prefix, kind = blocks[match.group(1)]
            new_key = ldm_prefix + _rename_unet_inner(match.group(2), kind)
        out[UNET_PREFIX + new_key] = value
    return out


# --------------------------------------------------------------------------- VAE


def ldm_vae_key(key: str, n_blocks: int) -> str:
    """Rename one diffusers ``AutoencoderKL`` key to its ldm name (without prefix).

    Args:
        key: the diffusers key.
        n_blocks: the number of encoder/decoder levels.

    Returns:
        The ldm key.
    """
    key = key.replace("conv_norm_out.", "norm_out.").replace("conv_shortcut.", "nin_shortcut.")
    key = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", key)
    key = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", key)
    # The ldm decoder numbers its levels from the lowest resolution up; diffusers the other way.
    key = re.sub(
        r"^decoder\.up_blocks\.(\d+)\.resnets\.",
        lambda m: f"decoder.up.{n_blocks - 1 - int(m.group(1))}.block.",
        key,
    )
    key = re.sub(
        r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
        lambda m: f"decoder.up.{n_blocks - 1 - int(m.group(1))}.upsample.",
        key,
    )
    key = key.replace("mid_block.resnets.0.", "mid.block_1.").replace("mid_block.resnets.1.", "mid.block_2.")
    if "mid_block.attentions.0." in key:
        key = key.replace("mid_block.attentions.0.", "mid.attn_1.")
        for old, new in _VAE_ATTENTION_NAMES:
            key = key.replace("mid.attn_1." + old, "mid.attn_1." + new)
    return key


def vae_to_ldm(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Convert a diffusers ``AutoencoderKL`` state dict to ``first_stage_model.*`` keys.

    Args:
        state_dict: ``AutoencoderKL.state_dict()``.
        config: the VAE config (for the number of levels).

    Returns:
        The state dict with ldm keys.
    """
    n_blocks = len(config["block_out_channels"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new_key = ldm_vae_key(key, n_blocks)
        # ldm's mid attention uses 1x1 convs where diffusers uses Linear layers.
        if ".mid.attn_1." in new_key and new_key.endswith(".weight") and value.ndim == 2:
            value = value.reshape(*value.shape, 1, 1)
        out[VAE_PREFIX + new_key] = value
    return out


# --------------------------------------------------------------------------- text encoders


def clip_to_ldm(state_dict: Mapping[str, torch.Tensor], prefix: str = CLIP_PREFIX) -> dict[str, torch.Tensor]:
    """Convert a transformers ``CLIPTextModel`` state dict to the SD 1.x layout.

    Args:
        state_dict: ``CLIPTextModel.state_dict()``.
        prefix: the key prefix (``cond_stage_model.transformer.`` for SD 1.x).

    Returns:
        The state dict with original keys (``<prefix>text_model.*``).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        # transformers >= 5.6 flattens CLIPTextModel (no "text_model." prefix); original files always have it.
        if not key.startswith(("text_model.", "text_projection")):
            key = "text_model." + key
        out[prefix + key] = value
    return out


def openclip_to_ldm(state_dict: Mapping[str, torch.Tensor], prefix: str = OPENCLIP_PREFIX) -> dict[str, torch.Tensor]:
    """Convert a transformers ``CLIPTextModel`` state dict to the OpenCLIP (SD 2.x) layout.

    q/k/v projections are fused into ``attn.in_proj_*`` as OpenCLIP stores them.
    Note: real SD 2.x files also carry the unused 24th resblock and
    ``text_projection``; a 23-layer diffusers text encoder has neither, so they are
    not written (diffusers ignores them when reading).

    Args:
        state_dict: ``CLIPTextModel.state_dict()``.
        prefix: the key prefix (``cond_stage_model.model.`` for SD 2.x).

    Returns:
        The state dict with OpenCLIP keys.
    """
    sd = {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v for k, v in state_dict.items()}
    out: dict[str, torch.Tensor] = {}
    fixed = {
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
    }
    layer_re = re.compile(r"^text_model\.encoder\.layers\.(\d+)\.(.*)$")
    for key, value in sd.items():
        if key in fixed:
            out[prefix + fixed[key]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()  # OpenCLIP multiplies x @ P
        elif match := layer_re.match(key):
            layer, rest = match.groups()
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                continue  # fused below
            new_rest = next((new + rest[len(old) :] for old, new in _OPENCLIP_LAYER_NAMES if rest.startswith(old)), None)
            if new_rest is None:
                raise KeyError(f"text encoder key {key!r} has no OpenCLIP equivalent")
            out[f"{prefix}transformer.resblocks.{layer}.{new_rest}"] = value
        elif not key.endswith("position_ids"):
            raise KeyError(f"text encoder key {key!r} has no OpenCLIP equivalent")
    for layer in sorted({m.group(1) for k in sd if (m := layer_re.match(k))}, key=int):
        base = f"text_model.encoder.layers.{layer}.self_attn."
        for kind in ("weight", "bias"):
            parts = [sd[f"{base}{p}_proj.{kind}"] for p in ("q", "k", "v")]
            out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(parts, dim=0)
    return out


def _text_encoder_layout(text_encoder: torch.nn.Module) -> str:
    """Guess which original layout a CLIP text encoder belongs to.

    OpenAI CLIP-L (SD 1.x) uses ``quick_gelu``; OpenCLIP ViT-H (SD 2.x) uses
    plain ``gelu``, which is the one architectural difference we can see.

    Args:
        text_encoder: the pipeline's text encoder.

    Returns:
        ``"clip"`` or ``"openclip"``.
    """
    act = getattr(text_encoder.config, "hidden_act", "quick_gelu")
    return "openclip" if act == "gelu" else "clip"


# --------------------------------------------------------------------------- pipeline


def pipeline_to_ldm_state_dict(pipe: Any, *, text_encoder_layout: str | None = None) -> dict[str, torch.Tensor]:
    """Convert a diffusers SD pipeline to one original-layout state dict.

    Args:
        pipe: a ``StableDiffusionPipeline`` (needs ``unet``, ``vae``, ``text_encoder``), a
            ``StableDiffusionXLPipeline`` (also ``text_encoder_2``: written in the SDXL layout), or an SDXL refiner
            (``text_encoder_2`` alone: the refiner's layout).
        text_encoder_layout: ``"clip"`` (SD 1.x), ``"openclip"`` (SD 2.x), or
            ``None`` to pick from the text encoder's activation (ignored for SDXL).

    Returns:
        ``{original_key: tensor}``; tensors are the pipeline's own (not copies).
    """
    if getattr(pipe, "text_encoder_2", None) is not None and getattr(pipe, "text_encoder", None) is None:
        text = openclip_to_ldm(pipe.text_encoder_2.state_dict(), SDXL_REFINER_OPENCLIP_PREFIX)
    elif getattr(pipe, "text_encoder_2", None) is not None:
        text = clip_to_ldm(pipe.text_encoder.state_dict(), SDXL_CLIP_PREFIX)
        text.update(openclip_to_ldm(pipe.text_encoder_2.state_dict(), SDXL_OPENCLIP_PREFIX))
    else:
        layout = text_encoder_layout or _text_encoder_layout(pipe.text_encoder)
        te_sd = pipe.text_encoder.state_dict()
        text = openclip_to_ldm(te_sd) if layout == "openclip" else clip_to_ldm(te_sd)
    out: dict[str, torch.Tensor] = {}
    out.update(unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config))
    out.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    out.update(text)
    return out


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """Return the raw little-endian bytes of a tensor without an extra copy where possible.

    Args:
        tensor: any CPU-movable tensor.

    Returns:
        A memoryview over the tensor's bytes.
    """
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    # Viewing as uint8 works for every dtype, including bfloat16 which numpy lacks.
    return memoryview(flat.view(torch.uint8).numpy())


def _safetensors_header(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None
) -> tuple[bytes, list[str]]:
    """Build a deterministic safetensors header.

    Args:
        tensors: name -> tensor.
        metadata: string -> string metadata, or None.

    Returns:
        ``(header bytes padded to 8-byte alignment, tensor names in data order)``.
    """
    # Widest dtypes first keeps every tensor naturally aligned, as safetensors itself does.
    order = sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for name in order:
        t = tensors[name]
        if t.dtype not in _SAFETENSORS_DTYPES:
            raise TypeError(f"tensor {name!r} has dtype {t.dtype}, which safetensors cannot store")
        size = t.numel() * t.element_size()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return raw, order


def write_safetensors(tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str] | None = None) -> Path:
    """Write tensors to a safetensors file deterministically and atomically.

    The same tensors and metadata always give the same bytes (metadata keys are
    sorted). The file appears under its final name only once complete.

    Args:
        tensors: name -> tensor.
        path: destination file.
        metadata: optional string metadata for the ``__metadata__`` header.

    Returns:
        The destination path.

    Raises:
        TypeError: if a metadata value is not a string or a dtype is unsupported.
    """
    if metadata and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("safetensors metadata keys and values must be strings")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header, order = _safetensors_header(tensors, metadata)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(len(header).to_bytes(8, "little"))
            f.write(header)
            for name in order:
                if tensors[name].numel():
                    f.write(_tensor_bytes(tensors[name]))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_single_file(pipe: Any, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Save a diffusers SD/SDXL pipeline as an original-layout ``.safetensors`` checkpoint.

    Args:
        pipe: a ``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline``.
        path: destination ``.safetensors`` file.
        metadata: optional string metadata stored in the header.

    Returns:
        The destination path.
    """
    return write_safetensors(pipeline_to_ldm_state_dict(pipe), Path(path), metadata)
