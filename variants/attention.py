"""Attention axis: the self-attention block used at the chosen resolutions and in the middle.

Every attention block takes ``(channels, heads, parts)`` and maps (B, C, H, W) to the same shape; its
normalisation is ``parts.norm``, its layers ``parts.conv`` / ``parts.linear`` and its residual sum
``parts.attention_join``.
"""
from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .mp import normalize
from .parts import Parts
from .registry import Registry

ATTENTIONS: Registry[nn.Module] = Registry("attention", ("channels", "heads", "parts"))


class AttentionBlock(nn.Module):
    """Base class, so cost breakdowns can find every attention block whatever its variant."""

    heads: int

    def extra_repr(self) -> str:
        return f"heads={self.heads}"  # printed: a network's module tree tells its head counts (bench/plan/designs/duplicates.py)


@ATTENTIONS.register("sdpa")
class SDPAAttention(AttentionBlock):
    """GroupNorm -> multi-head self-attention over the H*W tokens -> 1x1 conv, residual.

    With ``heads=1`` this is smalldiffusion's ``AttnBlock`` layer for layer (bias-free qkv, a linear
    output projection, then the 1x1 ``proj_out``). The head count changes neither parameters nor
    multiply-adds, only how the (B, heads, T, T) scores are split and which fused kernel runs.
    """

    def __init__(self, channels: int, heads: int, parts: Parts) -> None:
        super().__init__()
        self.heads = heads
        self.norm = parts.norm(channels)
        self.qkv = parts.linear(channels, 3 * channels, bias=False)
        self.proj = parts.linear(channels, channels)
        self.proj_out = parts.conv(channels, channels, 1)
        self.join = parts.attention_join

    def forward(self, x: Tensor) -> Tensor:
        _, _, height, width = x.shape
        tokens = rearrange(self.norm(x), "b c h w -> b (h w) c")
        q, k, v = rearrange(self.qkv(tokens), "b n (qkv h d) -> qkv b h n d", qkv=3, h=self.heads)
        out = rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)")
        out = rearrange(self.proj(out), "b (h w) c -> b c h w", h=height, w=width)
        return self.join(x, self.proj_out(out))


@ATTENTIONS.register("ddpm")
class DDPMAttention(AttentionBlock):
    """DDPM's attention block: GroupNorm -> q, k, v as three 1x1 convs -> softmax(q k^T / sqrt(d)) over the
    H*W tokens -> 1x1 conv, residual. Every projection has a bias and there is no extra linear layer, so it
    has 4*C*C + 6*C parameters against "sdpa"'s 5*C*C + 4*C; heads split the channels as in "sdpa".
    """

    def __init__(self, channels: int, heads: int, parts: Parts) -> None:
        super().__init__()
        self.heads = heads
        self.norm = parts.norm(channels)
        self.q = parts.conv(channels, channels, 1)
        self.k = parts.conv(channels, channels, 1)
        self.v = parts.conv(channels, channels, 1)
        self.proj_out = parts.conv(channels, channels, 1)
        self.join = parts.attention_join

    def forward(self, x: Tensor) -> Tensor:
        _, _, height, width = x.shape
        h = self.norm(x)
        q, k, v = (rearrange(conv(h), "b (h d) x y -> b h (x y) d", h=self.heads) for conv in (self.q, self.k, self.v))
        out = rearrange(F.scaled_dot_product_attention(q, k, v), "b h (x y) d -> b (h d) x y", x=height, y=width)
        return self.join(x, self.proj_out(out))


@ATTENTIONS.register("cosine")
class CosineAttention(AttentionBlock):
    """EDM2's cosine attention: no normalisation before it; a 1x1 conv makes q, k and v, each normalised to unit
    RMS over the channels of its head (so q . k / sqrt(d) is sqrt(d) times the cosine of their angle, bounded
    whatever the activations' scale); softmax attention over the H*W tokens; a 1x1 conv; then the attention join
    (``residual_join``'s: a plain sum, or EDM2's magnitude-preserving sum). 4*C*C weights (and 4*C biases with
    biased layers), as DDPM's block; the same multiply-adds.

    The attention itself is ``scaled_dot_product_attention`` with its default 1/sqrt(d) scale, which both FLOP
    counters count exactly (QK^T and AV).
    """

    def __init__(self, channels: int, heads: int, parts: Parts) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = parts.conv(channels, 3 * channels, 1)
        self.proj_out = parts.conv(channels, channels, 1)
        self.join = parts.attention_join

    def forward(self, x: Tensor) -> Tensor:
        _, _, height, width = x.shape
        q, k, v = normalize(rearrange(self.qkv(x), "b (qkv h d) x y -> qkv b h (x y) d", qkv=3, h=self.heads), dim=-1)
        out = rearrange(F.scaled_dot_product_attention(q, k, v), "b h (x y) d -> b (h d) x y", x=height, y=width)
        return self.join(x, self.proj_out(out))
