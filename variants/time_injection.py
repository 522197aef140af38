"""Time-injection axis: how the noise-level embedding enters a ResnetBlock.

Every injector takes ``(temb_channels, channels, parts)`` and, in ``forward(h, temb)``, returns ``h`` conditioned
on the time embedding. The block applies its own norm: ``before_norm`` says on which side of it the block calls
the injector (DDPM adds before the norm; scale-shift must modulate its output). ``h`` belongs to the block (its
conv1 output, or that output normalised), so an injector may overwrite it.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .parts import Parts
from .registry import Registry

TIME_INJECTIONS: Registry[nn.Module] = Registry("time_injection", ("temb_channels", "channels", "parts"))


class TimeInjection(nn.Module):
    """Base class; ``proj`` maps the time embedding to per-channel values."""

    proj: nn.Sequential
    before_norm: bool = False  # True: called on conv1's output, then the block's norm; False: on the norm's output
    needs_parts: tuple[str, ...] = ()  # parts it builds with that some levels leave out (variants/compatibility.py)


@TIME_INJECTIONS.register("additive")
class AdditiveTimeInjection(TimeInjection):
    """DDPM / smalldiffusion: ``h + Linear(SiLU(temb))``, before the norm."""

    before_norm = True

    def __init__(self, temb_channels: int, channels: int, parts: Parts) -> None:
        super().__init__()
        self.proj = nn.Sequential(parts.act(False), parts.linear(temb_channels, channels))  # temb is shared

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        return h.add_(self.proj(temb)[:, :, None, None])


@TIME_INJECTIONS.register("film")
class FiLMTimeInjection(TimeInjection):
    """ADM's AdaGN / ``use_scale_shift_norm``: ``norm(h) * (1 + scale) + shift``; twice the projection width."""

    needs_parts = ("norm",)  # a scale and shift of a normalisation's output: without one it is not AdaGN

    def __init__(self, temb_channels: int, channels: int, parts: Parts) -> None:
        super().__init__()
        self.proj = nn.Sequential(parts.act(False), parts.linear(temb_channels, 2 * channels))

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        scale, shift = self.proj(temb)[:, :, None, None].chunk(2, dim=1)
        return torch.addcmul(shift, h, 1 + scale)  # one pass instead of a multiply and an add


@TIME_INJECTIONS.register("scale")
class ScaleTimeInjection(TimeInjection):
    """EDM2's scale-only conditioning as in its configs C to F: ``norm(h) * (1 + Linear(act(temb)))``, FiLM
    without the shift (EDM2 removed every bias and offset)."""

    def __init__(self, temb_channels: int, channels: int, parts: Parts) -> None:
        super().__init__()
        self.proj = nn.Sequential(parts.act(False), parts.linear(temb_channels, channels))

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        return h * (1 + self._scale(temb))[:, :, None, None]

    def _scale(self, temb: Tensor) -> Tensor:
        return self.proj(temb)


@TIME_INJECTIONS.register("scale_gain")
class GainedScaleTimeInjection(ScaleTimeInjection):
    """EDM2's final conditioning (config G): ``norm(h) * (1 + gain * Linear(act(temb)))`` with a learned scalar
    ``gain`` initialised to zero, so the conditioning is off at init and grows as training needs it."""

    def __init__(self, temb_channels: int, channels: int, parts: Parts) -> None:
        super().__init__(temb_channels, channels, parts)
        self.gain = nn.Parameter(torch.zeros(()))

    def _scale(self, temb: Tensor) -> Tensor:
        return self.gain * self.proj(temb)
