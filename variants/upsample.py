"""Upsampling axis: how the decoder doubles the resolution.

Every upsampler takes ``(channels, parts)`` and maps (B, C, H, W) -> (B, C, 2H, 2W).
"""
from __future__ import annotations

from torch import Tensor, nn

from .parts import Parts
from .registry import Registry

UPSAMPLERS: Registry[nn.Module] = Registry("upsample", ("channels", "parts"))


class Upsampler(nn.Module):
    """Base class, so cost breakdowns can find every upsampler whatever its variant."""

    needs_parts: tuple[str, ...] = ()  # parts it builds with that some levels leave out (variants/compatibility.py)


@UPSAMPLERS.register("nearest_conv")
class NearestConvUpsample(Upsampler):
    """Nearest-neighbour 2x then a 3x3 conv: the DDPM / smalldiffusion default (9*C^2 MACs per output pixel)."""

    def __init__(self, channels: int, parts: Parts) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.conv = parts.conv(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.up(x))


@UPSAMPLERS.register("conv_transpose")
class ConvTransposeUpsample(Upsampler):
    """Learned ConvTranspose2d. Kernel 4 is divisible by stride 2, the usual guard against
    checkerboard artefacts; 4*C^2 MACs per output pixel and 16/9 the parameters of nearest_conv."""

    needs_parts = ("conv_transpose",)  # EDM2's magnitude-preserving layers have none

    def __init__(self, channels: int, parts: Parts) -> None:
        super().__init__()
        if parts.conv_transpose is None:  # UNetSpec refuses the combination first, naming both axes
            raise ValueError("upsample='conv_transpose': these parts' layers have no transposed convolution")
        self.conv = parts.conv_transpose(channels, channels, 4, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)
