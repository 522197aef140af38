"""The builder's toolbox: what every component of a U-Net is made with.

The builder makes no layer on its own: it asks a ``Parts`` for each one (``parts.norm(channels)``,
``parts.conv(in, out, 3, padding=1)``, ``parts.upsample(channels, parts)``, ...). Every registered block takes
its sizes, then the ``Parts`` it is built with. This module is a leaf: which parts a spec gets is decided beside
the builder (``variants/assembly.py``). The baseline's factories make exactly smalldiffusion's modules
(``nn.Conv2d``, ``nn.Linear``, ``nn.GroupNorm``), in the same order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mp import MP_SUM_BALANCE, MPConv2d, MPLinear, MPSiLU, PixelNorm, mp_sum


class SiLU(nn.SiLU):
    """SiLU, computed in place when no autograd graph is recorded (inference, sampling).

    Used only where its input is a fresh normalisation output that nothing else reads, so overwriting it is
    safe, and it skips one activation-sized allocation per layer. With a graph the input is needed for the
    backward pass, so it stays out of place.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x, inplace=not torch.is_grad_enabled())


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)  # smalldiffusion's eps


def silu(fresh_input: bool) -> nn.Module:
    """The baseline activation; ``fresh_input``: its input is a new tensor nothing else reads."""
    return SiLU() if fresh_input else nn.SiLU()


def plain_sum(residual: Tensor, shortcut: Tensor) -> Tensor:
    """``residual + shortcut``, written into ``residual`` (a block's fresh branch output)."""
    return residual.add_(shortcut)


def rescaled_sum(residual: Tensor, shortcut: Tensor) -> Tensor:
    """``(residual + shortcut) / sqrt(2)`` (NCSN++, DDPM++), in place like ``plain_sum``."""
    return residual.add_(shortcut).div_(math.sqrt(2))


def mp_residual_sum(residual: Tensor, shortcut: Tensor) -> Tensor:
    """EDM2's magnitude-preserving sum, the residual branch weighted 0.3 against the main path's 0.7."""
    return mp_sum(shortcut, residual, MP_SUM_BALANCE)


def mp_attention_sum(x: Tensor, attended: Tensor) -> Tensor:
    """EDM2's magnitude-preserving sum, the attention's output weighted 0.3 against the main path's 0.7."""
    return mp_sum(x, attended, MP_SUM_BALANCE)


def plain_attention_sum(x: Tensor, attended: Tensor) -> Tensor:
    """``x + attended``; x first, so the sum takes x's memory format (attention's output may follow the token
    layout, NHWC)."""
    return x + attended


def concatenate(main: Tensor, skip: Tensor) -> Tensor:
    """The decoder's input: the main path's channels, then the skip's."""
    return torch.cat([main, skip], dim=1)


# --- learned layers: (in, out, kernel_size, stride=1, padding=0, bias=True) and (in, out, bias=True) ----------
def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
         bias: bool = True) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding, bias=bias)


def conv_transpose(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                   bias: bool = True) -> nn.Module:
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding,
                              bias=bias)


def linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    return nn.Linear(in_features, out_features, bias=bias)


def without_bias(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """``factory`` with every bias left out (EDM2's config C), init otherwise torch's own."""
    return lambda *args, bias=True, **kwargs: factory(*args, bias=False, **kwargs)


def mp_conv(forced: bool) -> Callable[..., nn.Module]:
    def make(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
             bias: bool = True) -> nn.Module:  # bias: asked for by the caller, never made (EDM2 has none)
        return MPConv2d(in_channels, out_channels, kernel_size, forced, stride=stride, padding=padding)
    return make


def mp_linear(forced: bool) -> Callable[..., nn.Module]:
    return lambda in_features, out_features, bias=True: MPLinear(in_features, out_features, forced)


def mp_silu_layer(fresh_input: bool) -> nn.Module:
    return MPSiLU(fresh_input)


def identity(channels: int) -> nn.Module:
    return nn.Identity()


def pixel_norm(channels: int) -> nn.Module:
    return PixelNorm()


class Gain(nn.Module):
    """A learned scalar that multiplies its input, initialised to zero (EDM2's output gain)."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gain


@dataclass
class Parts:
    """What the builder makes each component with; ``variants/assembly.py`` decides which, from a spec."""

    norm: Callable[[int], nn.Module]                # channels -> normalisation layer
    act: Callable[[bool], nn.Module]                 # fresh_input -> activation layer
    residual_join: Callable[[Tensor, Tensor], Tensor]  # (branch, shortcut) -> a ResnetBlock's output; it may
    #   overwrite branch, the block's own conv2 output
    upsample: type[nn.Module]                        # (channels, parts): (B, C, H, W) -> (B, C, 2H, 2W)
    time_injection: type[nn.Module]                  # (temb_channels, channels, parts)
    attention: type[nn.Module]                       # (channels, heads, parts)
    noise_embedding: type[nn.Module]                 # (ch, temb_ch, parts): sigma (B,) -> (B, temb_ch)
    conv: Callable[..., nn.Module] = conv            # (in, out, kernel_size, stride=1, padding=0, bias=True)
    conv_transpose: Callable[..., nn.Module] | None = conv_transpose  # the same; None: the layers have none
    linear: Callable[..., nn.Module] = linear        # (in, out, bias=True)
    main_norm: Callable[[int], nn.Module] | None = None  # the encoder blocks' main path, before both branches
    attention_join: Callable[[Tensor, Tensor], Tensor] = plain_attention_sum  # (x, attention's output)
    skip_join: Callable[[Tensor, Tensor], Tensor] = concatenate  # (main path, skip) -> a decoder block's input
    block_form: Literal["standard", "edm2"] = "standard"  # edm2: encoder blocks project the skip first, then
    #   run the residual branch at the output width; resampling blocks resample the main path first
    normalized: bool = True  # False: ``norm`` makes identities, so a block's norm1 returns the main path itself,
    #   and the output conv reads the last block directly (no norm -> act before it)
    out_gain: bool = False         # a learned Gain after the output conv
    resblock_updown: bool = False  # resampling ResnetBlocks in place of Downsample and the upsampler
    ones_channel: bool = False     # the input conv also reads a constant channel of ones
    clip_act: bool = False         # every block's output clipped to +-CLIP_ACT
