"""The ResnetBlock, its resampling form, the down-sampler and the dropout they use, for every variant."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

from .parts import Parts


class Dropout(nn.Dropout):
    """``nn.Dropout`` with its CPU mask drawn as ``torch.rand(...) >= p``: the same Bernoulli(1 - p) keep
    mask from the same generator (so checkpointing replays it), saved for backward as one byte per element
    like CUDA's fused dropout, where torch's CPU dropout saves a float32 noise tensor (four bytes).

    On CPU, ``bernoulli_`` takes a serial fallback that ``rand`` and a comparison avoid; on CUDA the fused kernel
    stays.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return (x * keep).mul_(1.0 / (1.0 - self.p))


class ResnetBlock(nn.Module):
    """norm -> activation -> conv3x3 -> norm and time injection -> activation -> dropout -> conv3x3, joined with a
    1x1 shortcut when the channel count changes (else the input). The norm, activation, layers, time injection
    and join come from ``parts``: GroupNorm, SiLU, torch's conv, additive and a plain sum for the baseline; the
    join is the ``residual_join`` axis's (1/sqrt(2), as NCSN++ / DDPM++ do and ADM does not: two uncorrelated
    unit-variance branches then sum to unit variance, so activations do not grow with depth; or EDM2's
    magnitude-preserving sum).

    ``encoder``: the block is on the encoder's path, where ``parts.main_norm`` (EDM2's pixel norm) normalises the
    main path before both branches read it. In EDM2's block form (``parts.block_form == "edm2"``) an encoder
    block applies its 1x1 shortcut first and runs the residual branch at the output width, so conv1 is
    out -> out; a decoder block keeps the standard form.
    """

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, dropout: float, parts: Parts, *,
                 encoder: bool = False) -> None:
        super().__init__()
        self.join = parts.residual_join
        self.shortcut_first = encoder and parts.block_form == "edm2"
        branch_in = out_ch if self.shortcut_first else in_ch
        self.norm1 = parts.norm(branch_in)
        self.conv1 = parts.conv(branch_in, out_ch, 3, padding=1)
        self.time = parts.time_injection(temb_ch, out_ch, parts)
        # read once: a module that later wraps self.time (packed seeds vmap it) need not carry the attribute
        self.time_before_norm = self.time.before_norm
        self.norm2 = parts.norm(out_ch)
        self.act = parts.act(True)  # its input is the block's own tensor (conv1's output, normalised or injected)
        # act_in reads norm1's output: a fresh tensor, or without normalisation the main path itself (kept intact).
        self.act_in = self.act if parts.normalized else parts.act(False)
        self.dropout = Dropout(dropout)
        self.conv2 = parts.conv(out_ch, out_ch, 3, padding=1)
        self.shortcut = parts.conv(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        has_main_norm = encoder and parts.main_norm is not None
        self.main_norm = parts.main_norm(out_ch if self.shortcut_first else in_ch) if has_main_norm else None
        self.resample: nn.Module | None = None  # ResampleResnetBlock's
        self.resample_first = False  # True: the input is resampled; False: the branch after its act, and the shortcut

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        if self.resample is not None and self.resample_first:
            x = self.resample(x)  # EDM2's resampling block: everything after reads the resampled main path
        if self.shortcut_first:
            x = self.shortcut(x)  # EDM2's encoder block: the residual branch then runs at the output width
        if self.main_norm is not None:
            x = self.main_norm(x)  # EDM2's pixel norm: both branches read the normalised main path
        h = self.act_in(self.norm1(x))
        if self.resample is not None and not self.resample_first:
            h, x = self.resample(h), self.resample(x)  # ADM's: the branch after its activation, the shortcut alike
        h = self.conv1(h)
        if self.time_before_norm:
            h = self.norm2(self.time(h, temb))
        else:
            h = self.time(self.norm2(h), temb)
        h = self.conv2(self.dropout(self.act(h)))
        shortcut = x if self.shortcut_first else self.shortcut(x)
        return self.join(h, shortcut)  # the join may overwrite h, conv2's fresh output (its backward needs none)


# The parameter-free resamplers of ResampleResnetBlock, by its ``resample`` argument.
_RESAMPLES: dict[str, Callable[[], nn.Module]] = {
    "down": partial(nn.AvgPool2d, kernel_size=2),
    "up": partial(nn.Upsample, scale_factor=2.0, mode="nearest"),
}


class ResampleResnetBlock(ResnetBlock):
    """ADM's ``resblock_updown`` ("BigGAN") block: a ResnetBlock that halves or doubles the resolution itself,
    in place of a separate Downsample / upsampler.

    As guided-diffusion's ``ResBlock(up=True / down=True)`` (and diffusers' ``ResnetBlock2D``): the input
    goes through norm1 -> SiLU, then a parameter-free resample (2x2 average pooling for "down", nearest 2x
    for "up"), then conv1; the shortcut sees the input resampled the same way. In EDM2's block form the main
    path is resampled first. ``ResnetBlock.forward`` runs both forms.
    """

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, dropout: float, parts: Parts, *,
                 resample: Literal["down", "up"], encoder: bool = False) -> None:
        if resample not in _RESAMPLES:
            raise ValueError(f"resample={resample!r} is invalid; valid: {' or '.join(map(repr, _RESAMPLES))}")
        super().__init__(in_ch, out_ch, temb_ch, dropout, parts, encoder=encoder)
        self.resample = _RESAMPLES[resample]()
        self.resample_first = parts.block_form == "edm2"


class Downsample(nn.Module):
    """Pad right/bottom by one, then a stride-2 3x3 conv (DDPM / smalldiffusion)."""

    def __init__(self, channels: int, parts: Parts) -> None:
        super().__init__()
        self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        self.conv = parts.conv(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))
