"""ControlNet files as diffusers ``ControlNetModel``s, and the tiny demo ControlNet written in the original layout.

Three layouts are read (what ``models/ControlNet`` holds in practice):

* lllyasviel's v1.0 files: the ControlNet's keys under ``control_model.`` (``control_model.time_embed.0.weight``...);
* his v1.1 files and most later ones: the same keys without the prefix (``time_embed.0.weight``);
* diffusers-converted files (``time_embedding.linear_1.weight``, ``controlnet_down_blocks.0.weight``...).

A ControlNet is a copy of its UNet's encoder, so its config is built from the loaded checkpoint's UNet config
(``ControlNetModel.from_unet`` without the weights) and the file's tensors are converted onto it by diffusers'
``convert_controlnet_checkpoint``; nothing is downloaded. A file whose tensors do not fit (a ControlNet for another
model family) fails to load with :class:`sdapi.engine.errors.UnsupportedRequest`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from sdapi.engine.errors import UnsupportedRequest
from sdapi.engine.ldm_layout import UNET_PREFIX, unet_to_ldm, write_safetensors

LDM_PREFIX = "control_model."
# The ControlNet's own parts in the original layout (diffusers name -> ldm name); the encoder is the UNet's.
_HINT_BLOCKS = 6  # conditioning embedding blocks (16, 32, 96, 256 channels: two convs per step up)


def _own_keys(key: str) -> str | None:
    """The ldm name of a ControlNet-only diffusers key (``None`` for the encoder's keys)."""
    if key.startswith("controlnet_down_blocks."):
        index, rest = key[len("controlnet_down_blocks."):].split(".", 1)
        return f"zero_convs.{index}.0.{rest}"
    if key.startswith("controlnet_mid_block."):
        return "middle_block_out.0." + key[len("controlnet_mid_block."):]
    if key.startswith("controlnet_cond_embedding."):
        rest = key[len("controlnet_cond_embedding."):]
        if rest.startswith("conv_in."):
            return "input_hint_block.0." + rest[len("conv_in."):]
        if rest.startswith("conv_out."):
            return f"input_hint_block.{2 * _HINT_BLOCKS + 2}." + rest[len("conv_out."):]
        index, rest = rest[len("blocks."):].split(".", 1)
        return f"input_hint_block.{2 * int(index) + 2}.{rest}"
    return None


def controlnet_to_ldm(model: Any) -> dict[str, torch.Tensor]:
    """A ``ControlNetModel``'s tensors in lllyasviel's v1.0 layout (``control_model.`` keys)."""
    own: dict[str, torch.Tensor] = {}
    encoder: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        name = _own_keys(key)
        if name is None:
            encoder[key] = value
        else:
            own[name] = value
    config = dict(model.config)
    config.setdefault("up_block_types", ())
    config["up_block_types"] = ()
    ldm = {k[len(UNET_PREFIX):]: v for k, v in unet_to_ldm(encoder, config).items()}
    return {LDM_PREFIX + k: v.contiguous() for k, v in {**ldm, **own}.items()}


def blank_controlnet(unet_config: Mapping[str, Any]) -> Any:
    """A ``ControlNetModel`` shaped for a UNet config, with fresh weights."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(dict(unet_config))
    if unet.config.in_channels != 4:
        # An inpainting UNet: its ControlNets see the 4 latent channels only (the extension slices them too).
        config = dict(unet.config)
        config["in_channels"] = 4
        unet = UNet2DConditionModel.from_config(config)
    return ControlNetModel.from_unet(unet, load_weights_from_unet=False)


def read_controlnet(path: Path, unet_config: Mapping[str, Any], device: torch.device, dtype: torch.dtype) -> Any:
    """Load a ControlNet file onto a model shaped for ``unet_config``.

    Raises:
        UnsupportedRequest: the file is no ControlNet, or one for another model family.
    """
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    tensors = read_tensors(path)
    model = blank_controlnet(unet_config)
    converted = convert_controlnet_checkpoint(tensors, dict(model.config))
    converted.update(_added_embedding(tensors))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    wrong = [k for k in expected if k in converted and converted[k].shape != expected[k].shape]
    if missing or wrong:
        raise UnsupportedRequest(f"{Path(path).name} is not a ControlNet for this checkpoint's model family "
                                 f"({len(missing)} tensors missing, {len(wrong)} of another shape)")
    model.load_state_dict({k: converted[k] for k in expected})
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


# SDXL's added-vector MLP in the original layout; diffusers' ControlNet conversion leaves it out.
_LABEL_EMB = {"label_emb.0.0.": "add_embedding.linear_1.", "label_emb.0.2.": "add_embedding.linear_2."}


def _added_embedding(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An SDXL ControlNet's ``label_emb`` tensors under diffusers' ``add_embedding`` names (none for SD 1.x/2.x)."""
    found = {}
    for key, value in tensors.items():
        bare = key[len(LDM_PREFIX):] if key.startswith(LDM_PREFIX) else key
        for ldm, diffusers_name in _LABEL_EMB.items():
            if bare.startswith(ldm):
                found[diffusers_name + bare[len(ldm):]] = value
    return found


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` or pickled (``.pth``/``.ckpt``/``.pt``/``.bin``) file's tensors (``state_dict`` unwrapped)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    data = torch.load(str(path), map_location="cpu", weights_only=True)
    return data.get("state_dict", data) if isinstance(data, dict) else data


def demo_controlnet(unet_config: Mapping[str, Any], seed: int = 0) -> Any:
    """A random ControlNet for a UNet config: every weight (zero convolutions too, which training starts at zero)
    drawn from ``seed``, so its residuals visibly change an image."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = blank_controlnet(unet_config)
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if name.startswith(("controlnet_down_blocks.", "controlnet_mid_block.", "controlnet_cond_embedding.conv_out")):
                    tensor.copy_(0.5 * torch.randn_like(tensor))
    return model.eval()


def write_demo_controlnet(path: Path, unet_config: Mapping[str, Any], seed: int = 0) -> Path:
    """Write :func:`demo_controlnet` in lllyasviel's v1.0 layout (``control_model.`` keys)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_safetensors(controlnet_to_ldm(demo_controlnet(unet_config, seed)), path)
