"""Trainable LoRA / LoCon layers attached to a pipeline with forward hooks, named and exported as kohya does.

Targets follow kohya's ``networks.lora``: every Linear and 1x1 Conv2d inside the UNet's ``Transformer2DModel``
blocks and the text encoder's ``CLIPAttention``/``CLIPMLP``; with ``conv_dim`` (LoCon) also every Linear/Conv2d of
``ResnetBlock2D``, ``Downsample2D`` and ``Upsample2D`` (3x3 convs at ``conv_dim``, the rest at ``network_dim``).
The base weights are never touched: each target gets a hook adding ``up(down(x)) · alpha/rank``.

On SDXL the names are those of kohya's ``sdxl_train_network.py``: the UNet in the ldm/SGM layout kohya trains on
(``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``), the text encoders ``lora_te1_`` (CLIP-L) and
``lora_te2_`` (bigG), so the file loads in A1111, ComfyUI and diffusers like a kohya one.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from sdapi.engine.lora_file import read_state_dict
from sdapi.engine.lora_targets import TEXT_MODEL, kohya_name, ldm_module_paths
from sdapi.engine.training.plan import NetworkSpec

UNET_BLOCKS = ("Transformer2DModel",)
UNET_CONV_BLOCKS = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
TEXT_BLOCKS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")
UNET_PREFIX, TEXT_PREFIX = "lora_unet", "lora_te"
SDXL_TEXT_PREFIXES = ("lora_te1", "lora_te2")


class LoraModule(nn.Module):
    """One trainable low-rank update of a Linear or Conv2d.

    Args:
        name: the kohya layer name (``lora_unet_..._to_q``).
        target: the frozen module it modifies.
        rank, alpha: its rank and alpha (scale ``alpha / rank``).
        dropout: dropout on ``down``'s output while training (``network_dropout``).
    """

    def __init__(self, name: str, target: nn.Module, rank: int, alpha: float, dropout: float | None = None):
        super().__init__()
        self.lora_name = name
        if isinstance(target, nn.Conv2d):
            self.lora_down = nn.Conv2d(target.in_channels, rank, target.kernel_size, target.stride, target.padding,
                                       bias=False)
            self.lora_up = nn.Conv2d(rank, target.out_channels, (1, 1), (1, 1), bias=False)
        else:
            self.lora_down = nn.Linear(target.in_features, rank, bias=False)
            self.lora_up = nn.Linear(rank, target.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)
        self.register_buffer("alpha", torch.tensor(float(alpha)))
        self.scale = float(alpha) / rank
        self.dropout = dropout
        self.multiplier = 1.0

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """``up(down(x)) · multiplier · alpha/rank`` in the LoRA's dtype."""
        hidden = self.lora_down(x.to(self.lora_down.weight.dtype))
        if self.dropout and self.training:
            hidden = nn.functional.dropout(hidden, p=self.dropout)
        return self.lora_up(hidden) * (self.multiplier * self.scale)


class _AddDelta:
    """Forward hook: the frozen module's output plus its LoRA's delta."""

    def __init__(self, lora: LoraModule):
        self.lora = lora

    def __call__(self, module, args, output):
        return output + self.lora.delta(args[0]).to(output.dtype)


def _child_targets(block: nn.Module, conv_dim: int | None) -> list[tuple[str, nn.Module, bool]]:
    """(child path, module, is 3x3-like conv) for every Linear / Conv2d kohya targets in a block."""
    found = []
    for child_name, child in block.named_modules():
        is_linear = child.__class__.__name__ == "Linear"
        is_conv = child.__class__.__name__ == "Conv2d"
        if not (is_linear or is_conv):
            continue
        is_1x1 = is_conv and tuple(child.kernel_size) == (1, 1)
        if is_linear or is_1x1 or conv_dim:
            found.append((child_name, child, is_conv and not is_1x1))
    return found


def find_targets(root: nn.Module, prefix: str, block_types: tuple[str, ...], conv_dim: int | None,
                 text_model_prefix: bool = False, rename: dict[str, str] | None = None) -> dict[str, tuple[nn.Module, bool]]:
    """kohya names of the modules to train in one component.

    Args:
        root: the UNet or text encoder.
        prefix: ``lora_unet``, ``lora_te``, ``lora_te1`` or ``lora_te2``.
        block_types: class names of the blocks whose children are targeted.
        conv_dim: LoCon rank; ``None`` leaves 3x3 convs alone.
        text_model_prefix: name text-encoder paths with ``text_model.`` even where transformers dropped it.
        rename: module path → the path the file names it by (SDXL's ldm layout); ``None`` keeps the paths.

    Returns:
        ``{kohya name: (module, is a 3x3-like conv)}``.
    """
    targets = {}
    for path, block in root.named_modules():
        if block.__class__.__name__ not in block_types:
            continue
        for child_name, child, is_conv in _child_targets(block, conv_dim):
            full = f"{path}.{child_name}" if child_name else path
            if rename is not None:
                full = rename[full]
            elif text_model_prefix and not full.startswith(TEXT_MODEL):
                full = TEXT_MODEL + full
            targets[kohya_name(prefix + "_", full)] = (child, is_conv)
    return targets


def sdxl_unet_paths(unet: nn.Module) -> dict[str, str]:
    """Every Linear/Conv2d path of an SDXL UNet → its ldm/SGM path, the layout kohya's SDXL files use."""
    paths = [name for name, m in unet.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return ldm_module_paths(unet, paths)


class TrainableLora(nn.Module):
    """Every LoRA module of one training job, hooked into the pipeline.

    Args:
        unet, text_encoder: the frozen components.
        spec: ranks, alphas, which parts train.
        text_encoder_2: SDXL's second text encoder (bigG); given, the names are kohya's SDXL ones.
    """

    def __init__(self, unet: nn.Module, text_encoder: nn.Module, spec: NetworkSpec,
                 text_encoder_2: nn.Module | None = None):
        super().__init__()
        self.spec = spec
        sdxl = text_encoder_2 is not None
        unet_blocks = UNET_BLOCKS + (UNET_CONV_BLOCKS if spec.conv_dim else ())
        rename = sdxl_unet_paths(unet) if sdxl else None
        self.unet_loras = nn.ModuleList(self._create(unet, UNET_PREFIX, unet_blocks, rename=rename)
                                        if spec.train_unet else [])
        encoders = zip(SDXL_TEXT_PREFIXES, (text_encoder, text_encoder_2)) if sdxl else [(TEXT_PREFIX, text_encoder)]
        # One list per text encoder: SDXL's two may learn at their own rates.
        self.text_lora_groups = nn.ModuleList(
            nn.ModuleList(self._create(encoder, prefix, TEXT_BLOCKS, text=True)) for prefix, encoder in encoders
        ) if spec.train_text_encoder else nn.ModuleList()
        self._handles = []

    @property
    def text_loras(self) -> list[LoraModule]:
        """Every text-encoder LoRA module, the first encoder's first."""
        return [lora for group in self.text_lora_groups for lora in group]

    def _create(self, root: nn.Module, prefix: str, blocks: tuple[str, ...], text: bool = False,
                rename: dict[str, str] | None = None) -> list[LoraModule]:
        conv_dim = self.spec.conv_dim if not text else None
        modules = []
        for name, (target, is_conv) in sorted(find_targets(root, prefix, blocks, conv_dim, text, rename).items()):
            rank, alpha = (self.spec.conv_dim, self.spec.conv_alpha) if is_conv else (self.spec.dim, self.spec.alpha)
            lora = LoraModule(name, target, rank, alpha, self.spec.dropout)
            lora.target = [target]  # a list: not registered as a submodule, so not saved or trained
            modules.append(lora)
        return modules

    def loras(self) -> list[LoraModule]:
        """Every module, UNet first."""
        return list(self.unet_loras) + list(self.text_loras)

    def attach(self) -> None:
        """Hook every LoRA into its target (idempotent)."""
        if not self._handles:
            self._handles = [lora.target[0].register_forward_hook(_AddDelta(lora)) for lora in self.loras()]

    def detach(self) -> None:
        """Remove the hooks: the pipeline is the base model again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def param_groups(self, unet_lr: float, text_encoder_lr: float,
                     text_encoder_2_lr: float | None = None) -> list[dict]:
        """Optimizer groups: the UNet's LoRAs, then each text encoder's, at their own learning rates (0: frozen).

        Args:
            unet_lr, text_encoder_lr: the rates of the UNet and (first) text encoder.
            text_encoder_2_lr: SDXL's bigG rate; ``None``: the first encoder's.
        """
        rates = [text_encoder_lr, text_encoder_lr if text_encoder_2_lr is None else text_encoder_2_lr]
        groups = []
        for modules, lr in ((self.unet_loras, unet_lr), *zip(self.text_lora_groups, rates)):
            params = [p for m in modules for p in m.parameters()]
            if params and lr:
                groups.append({"params": params, "lr": lr})
            elif params:
                for p in params:
                    p.requires_grad_(False)
        return groups

    def kohya_state_dict(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """kohya's tensors: ``<name>.lora_down.weight``, ``<name>.lora_up.weight``, ``<name>.alpha``, in ``dtype``."""
        tensors = {}
        for lora in self.loras():
            for key, value in ((f"{lora.lora_name}.lora_down.weight", lora.lora_down.weight),
                               (f"{lora.lora_name}.lora_up.weight", lora.lora_up.weight),
                               (f"{lora.lora_name}.alpha", lora.alpha)):
                tensors[key] = value.detach().to("cpu", dtype).clone().contiguous()
        return tensors

    @torch.no_grad()
    def load_kohya(self, tensors: dict[str, torch.Tensor]) -> int:
        """Start from an existing LoRA (``network_weights``): copy matching ``down``/``up`` tensors.

        Returns:
            How many modules were loaded.
        """
        loaded = 0
        for lora in self.loras():
            down = tensors.get(f"{lora.lora_name}.lora_down.weight")
            up = tensors.get(f"{lora.lora_name}.lora_up.weight")
            if down is not None and up is not None and down.shape == lora.lora_down.weight.shape \
                    and up.shape == lora.lora_up.weight.shape:
                lora.lora_down.weight.copy_(down)
                lora.lora_up.weight.copy_(up)
                loaded += 1
        return loaded


def load_network_weights(network: TrainableLora, path: Path) -> int:
    """Copy a kohya file's weights into ``network``; returns the number of modules matched."""
    return network.load_kohya({k: v.float() for k, v in read_state_dict(Path(path)).items()})
