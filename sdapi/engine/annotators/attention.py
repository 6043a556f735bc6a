"""Multi-head self-attention over tokens in timm's layout (one ``qkv`` projection, one ``proj``), 64 channels per
head, shared by the ViT of MiDaS and UniFormer's attention blocks."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

HEAD_CHANNELS = 64


class Attention(nn.Module):
    """Self-attention; ``fused`` uses PyTorch's kernel (as timm 0.9's ViT computes it), otherwise the explicit
    ``softmax(q k^T / sqrt(d)) v`` (as UniFormer computes it), so each network matches its original to the bit."""

    def __init__(self, dim: int, fused: bool):
        super().__init__()
        self.heads = max(1, dim // HEAD_CHANNELS)
        self.fused = fused
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = ((q @ k.transpose(-2, -1)) * (dim // self.heads) ** -0.5).softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))
