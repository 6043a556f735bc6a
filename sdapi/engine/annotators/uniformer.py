"""The UniFormer-S backbone of the extension's ``seg_ufade20k`` (``upernet_global_small.pth``, under ``backbone.``):
four stages, each a strided patch embedding (conv + layer norm) and blocks; the first two stages' blocks mix with
convolutions (depthwise 5x5 in place of attention, batch norm), the last two with global self-attention. Each stage
ends in a layer norm whose output is a feature map for the decoder. Widths and depths come from the file; heads are
64 channels each.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sdapi.engine.annotators.attention import Attention
from sdapi.engine.annotators.weights import count_indexed


class PatchEmbed(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(channels_in, channels_out, patch, stride=patch)
        self.norm = nn.LayerNorm(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


class ConvMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Mlp(ConvMlp):
    def __init__(self, dim: int, hidden: int):
        nn.Module.__init__(self)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)


class ConvBlock(nn.Module):
    """Conv position encoding, then local mixing (1x1, depthwise 5x5, 1x1) and a conv MLP, batch norm before each."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.conv2(self.attn(self.conv1(self.norm1(x))))
        return x + self.mlp(self.norm2(x))


class AttentionBlock(nn.Module):
    """Conv position encoding, then global self-attention and an MLP over the tokens, layer norm before each."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, fused=False)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.attn(self.norm1(tokens))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class UniFormer(nn.Module):
    """The backbone with ``dims`` channels and ``depths`` blocks per stage (the first two convolutional)."""

    def __init__(self, dims: list[int], depths: list[int], hidden: list[int]):
        super().__init__()
        channels_in = [3] + dims[:-1]
        for stage in range(4):
            block = ConvBlock if stage < 2 else AttentionBlock
            self.add_module(f"patch_embed{stage + 1}", PatchEmbed(channels_in[stage], dims[stage],
                                                                   4 if stage == 0 else 2))
            self.add_module(f"blocks{stage + 1}", nn.ModuleList([block(dims[stage], hidden[stage])
                                                                 for _ in range(depths[stage])]))
            # The stages' output norms use 1e-6 (as the attention blocks'), the patch embeddings PyTorch's default.
            self.add_module(f"norm{stage + 1}", nn.LayerNorm(dims[stage], eps=1e-6))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in range(1, 5):
            x = getattr(self, f"patch_embed{stage}")(x)
            for block in getattr(self, f"blocks{stage}"):
                x = block(x)
            features.append(getattr(self, f"norm{stage}")(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous())
        return features


def build_uniformer(state: dict[str, torch.Tensor], prefix: str) -> UniFormer:
    """The backbone the keys under ``prefix`` describe (unloaded)."""
    dims = [int(state[f"{prefix}patch_embed{s}.proj.weight"].shape[0]) for s in range(1, 5)]
    depths = [count_indexed(state, f"{prefix}blocks{s}.") for s in range(1, 5)]
    hidden = [int(state[f"{prefix}blocks{s}.0.mlp.fc1.weight"].shape[0]) for s in range(1, 5)]
    return UniFormer(dims, depths, hidden)
