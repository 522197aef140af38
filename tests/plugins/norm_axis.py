"""A normalisation axis added from one file outside the package (``--import norm_axis --axis norm=group,layer``):
GroupNorm against LayerNorm over the channels of each pixel. It changes how every block is built, through the
builder's parts, not the finished model."""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from variants import Axis, Parts, Registry, add_axis

NORMS: Registry[nn.Module] = Registry("norm")


@NORMS.register("group")
class GroupNorm(nn.GroupNorm):
    """The baseline's (the builder's own parts already make it: registered so that "group" is a level)."""


@NORMS.register("layer")
class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel of (B, C, H, W), with a per-channel scale and shift."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        out = F.layer_norm(x.movedim(1, -1), x.shape[1:2], self.weight, self.bias, eps=1e-6)
        return out.movedim(-1, 1)


def use_norm(parts: Parts, name: str) -> None:
    if name == "layer":
        parts.norm = ChannelLayerNorm


add_axis(Axis(name="norm", type=str, default="group", values=("group", "layer"), registry=NORMS,
              configure=use_norm, doc="the normalisation of every block"))
