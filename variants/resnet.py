"""The ResnetBlock and the down-sampler, shared by every variant."""
from __future__ import annotations

from torch import Tensor, nn


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)  # smalldiffusion's eps


class ResnetBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3 -> time injection (+ norm) -> SiLU -> dropout -> conv3x3, plus a
    1x1 shortcut when the channel count changes. ``time_injection`` is a class from the registry."""

    def __init__(
        self, in_ch: int, out_ch: int, temb_ch: int, dropout: float, norm_groups: int, time_injection: type[nn.Module]
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch, norm_groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
        self.time = time_injection(temb_ch, out_ch)
        self.norm2 = group_norm(out_ch, norm_groups)
        self.act = nn.SiLU()
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, kernel_size=1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.time(h, temb, self.norm2)
        h = self.conv2(self.dropout(self.act(h)))
        return self.shortcut(x) + h


class Downsample(nn.Module):
    """Pad right/bottom by one, then a stride-2 3x3 conv (DDPM / smalldiffusion)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))
