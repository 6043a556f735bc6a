"""A kohya-format demo LoRA for the tiny demo checkpoints, built by code (random weights, not trained).

It targets what kohya's ``networks.lora`` targets (every Linear and 1x1 Conv2d in the UNet's transformer blocks
and the text encoder's attention and MLP layers) plus LoCon layers (3x3 ``lora_down`` / 1x1 ``lora_up``) on a few
ResNet convs and a strided downsampler, with kohya's metadata, including ``sshs_model_hash``. Its ``up`` weights
are not zero (training starts from zero), so ``<lora:demo-lora:1>`` visibly changes the tiny model's images.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from sdapi.files import legacy_hash
from sdapi.engine.ldm_layout import write_safetensors
from sdapi.engine.lora_targets import kohya_name
from sdapi.files import addnet_hash
from sdapi.engine.demo_models import build_tiny_sd15_pipeline

DEMO_LORA_NAME = "demo-lora"
LORA_SUBDIR = Path("models") / "Lora"
RANK = 4
ALPHA = 2.0
UP_STD = 0.6
# LoCon layers (3x3 convs, one of them strided) on top of the attention/MLP layers.
LOCON_LAYERS = ("down_blocks.0.resnets.0.conv1", "down_blocks.0.downsamplers.0.conv", "up_blocks.3.resnets.2.conv2")
ATTENTION_PARTS = ("attn1.", "attn2.", "ff.", "proj_in", "proj_out")
TEXT_PARTS = ("self_attn.", "mlp.")


def kohya_layers(pipe) -> dict[str, torch.nn.Module]:
    """The demo's target layers by kohya name: kohya's LoRA set on the UNet and text encoder, plus LoCon."""
    layers: dict[str, torch.nn.Module] = {}
    for path, module in pipe.unet.named_modules():
        in_attention = ".attentions." in path and any(part in path for part in ATTENTION_PARTS)
        if (in_attention and isinstance(module, (torch.nn.Linear, torch.nn.Conv2d))) or path in LOCON_LAYERS:
            layers[kohya_name("lora_unet_", path)] = module
    for path, module in pipe.text_encoder.named_modules():
        if isinstance(module, torch.nn.Linear) and any(part in path for part in TEXT_PARTS):
            text_path = path if path.startswith("text_model.") else "text_model." + path
            layers[kohya_name("lora_te_", text_path)] = module
    return layers


def random_lora_tensors(layers: dict[str, torch.nn.Module], seed: int,
                        up_std: float = UP_STD) -> dict[str, torch.Tensor]:
    """kohya tensors for ``layers``: kaiming-scaled ``down``, non-zero ``up`` (std ``up_std``), ``alpha``; fp16 like
    lora-scripts."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name in sorted(layers):
        module = layers[name]
        if isinstance(module, torch.nn.Linear):
            down_shape, up_shape = (RANK, module.in_features), (module.out_features, RANK)
        else:
            down_shape = (RANK, module.in_channels, *module.kernel_size)
            up_shape = (module.out_channels, RANK, 1, 1)
        fan_in = down_shape[1] * (down_shape[2] * down_shape[3] if len(down_shape) == 4 else 1)
        tensors[f"{name}.lora_down.weight"] = (torch.randn(down_shape, generator=generator) / fan_in ** 0.5).half()
        tensors[f"{name}.lora_up.weight"] = (torch.randn(up_shape, generator=generator) * up_std).half()
        tensors[f"{name}.alpha"] = torch.tensor(ALPHA, dtype=torch.float16)
    return tensors


def kohya_metadata(model_file: str, output_name: str) -> dict[str, str]:
    """The ``ss_*`` metadata kohya's ``train_network.py`` writes (every value a string)."""
    return {
        "ss_sd_model_name": model_file,
        "ss_resolution": "(64, 64)",
        "ss_clip_skip": "None",
        "ss_output_name": output_name,
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(RANK),
        "ss_network_alpha": str(ALPHA),
        "ss_network_args": f'{{"conv_dim": "{RANK}", "conv_alpha": "{ALPHA}"}}',
        "ss_base_model_version": "sd_v1",
        "ss_v2": "False",
        "ss_training_comment": "tiny random-weight demo LoRA built by sdapi; not trained",
    }


def write_kohya_lora(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write a kohya file with ``sshs_model_hash``/``sshs_legacy_hash`` computed as kohya does.

    kohya hashes an in-memory copy saved with only the ``ss_*`` metadata: the model hash covers the tensor data
    (which the metadata does not change), the legacy hash 64 KiB at 1 MiB of that copy.
    """
    with tempfile.TemporaryDirectory() as tmp:
        draft = write_safetensors(tensors, Path(tmp) / "draft.safetensors",
                                  {k: v for k, v in metadata.items() if k.startswith("ss_")})
        model_hash = addnet_hash(draft)
        legacy = legacy_hash(draft)
    return write_safetensors(tensors, path, {**metadata, "sshs_model_hash": model_hash, "sshs_legacy_hash": legacy})


def write_demo_lora(data_dir: Path, model_file: str = "demo-sd15.safetensors", seed: int = 0,
                    name: str = DEMO_LORA_NAME) -> Path:
    """Write ``<data_dir>/models/Lora/<name>.safetensors`` for the demo checkpoint (left alone if it exists).

    Args:
        data_dir: the server's data directory.
        model_file: the checkpoint named in ``ss_sd_model_name``.
        seed: weight seed.
        name: file stem and ``ss_output_name``.

    Returns:
        The LoRA's path.
    """
    path = Path(data_dir) / LORA_SUBDIR / f"{name}.safetensors"
    if not path.exists():
        tensors = random_lora_tensors(kohya_layers(build_tiny_sd15_pipeline(0)), seed)
        write_kohya_lora(path, tensors, kohya_metadata(model_file, name))
    return path
