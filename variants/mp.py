"""Magnitude-preserving building blocks (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of
Diffusion Models", EDM2): each keeps unit-variance inputs at unit variance, so activations neither grow nor
shrink with depth. Written from the paper's equations (its equation numbers in the docstrings).

Every function here is element-wise or a reduction over one dimension: memory-bound work that the FLOP
counters count as zero (bench/measure/flops.py, docs/flops.md).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-4            # EDM2's: added to the RMS, so a zero vector stays finite
MP_SILU_SCALE = 0.596  # sqrt(E[silu(z)^2]) for z ~ N(0, 1) (eq. 81)
MP_SUM_BALANCE = 0.3  # EDM2's weight of the residual (and attention) branch against the main path
MP_CAT_BALANCE = 0.5  # EDM2's weight of the skip against the main path


def normalize(x: Tensor, dim: int | tuple[int, ...], eps: float = EPS) -> Tensor:
    """``x / (eps + RMS(x over dim))``: unit RMS over ``dim`` (the norm is taken in float32)."""
    dims = (dim,) if isinstance(dim, int) else dim
    count = math.prod(x.shape[d] for d in dims)
    rms = torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=torch.float32) / math.sqrt(count)
    return x / (rms + eps).to(x.dtype)


def mp_silu(x: Tensor, inplace: bool = False) -> Tensor:
    """SiLU rescaled to unit output variance for unit-normal input (eq. 81)."""
    return F.silu(x, inplace=True).div_(MP_SILU_SCALE) if inplace else F.silu(x) / MP_SILU_SCALE


def mp_sum(a: Tensor, b: Tensor, t: float = MP_SUM_BALANCE) -> Tensor:
    """``((1 - t) a + t b) / sqrt((1 - t)^2 + t^2)`` (eq. 88): a weighted sum of two unit-variance,
    uncorrelated tensors that has unit variance; ``t`` weighs ``b``."""
    return torch.lerp(a, b, t) / math.sqrt((1 - t) ** 2 + t ** 2)


def mp_cat(a: Tensor, b: Tensor, t: float = MP_CAT_BALANCE) -> Tensor:
    """Concatenation along channels with ``a`` weighted ``1 - t`` and ``b`` weighted ``t`` (eq. 103): each part is
    scaled so that the result has unit variance and the two parts contribute in that balance, whatever their
    channel counts."""
    na, nb = a.shape[1], b.shape[1]
    scale = math.sqrt((na + nb) / ((1 - t) ** 2 + t ** 2))
    return torch.cat([a * (scale * (1 - t) / math.sqrt(na)), b * (scale * t / math.sqrt(nb))], dim=1)


class MPSiLU(nn.Module):
    """``mp_silu`` as a layer; computed in place when its input is fresh and no autograd graph is recorded."""

    def __init__(self, fresh_input: bool = False) -> None:
        super().__init__()
        self.fresh_input = fresh_input

    def forward(self, x: Tensor) -> Tensor:
        return mp_silu(x, inplace=self.fresh_input and not torch.is_grad_enabled())


class PixelNorm(nn.Module):
    """Unit RMS over the channels of each pixel, no learned scale (EDM2's normalisation of the encoder's main
    path, eq. 2 of Karras et al. 2018's ProGAN with EDM2's epsilon)."""

    def forward(self, x: Tensor) -> Tensor:
        return normalize(x, dim=1)


class MPWeight(nn.Module):
    """A weight-normalised learned layer (eq. 47): the stored weight ``w`` (unit-normal init, no bias) is used as
    ``w_i / ||w_i|| * 1`` per output row ``i``, i.e. ``normalize(w) / sqrt(fan_in)``, so a unit-variance input
    gives a unit-variance output whatever the weight's scale.

    ``forced``: forced weight normalisation (eq. 66, Algorithm 1): in training mode every forward first rescales
    the *stored* weight in place to unit RMS per row (without gradient), so its norm cannot grow under the
    optimiser's updates and the effective learning rate stays what the schedule says. The differentiable
    normalisation then acts on that rescaled weight.
    """

    def __init__(self, shape: tuple[int, ...], forced: bool) -> None:
        super().__init__()
        self.forced = forced
        self.weight = nn.Parameter(torch.randn(shape))

    def normalized_weight(self, dtype: torch.dtype) -> Tensor:
        rows = tuple(range(1, self.weight.ndim))
        if self.forced and self.training:
            with torch.no_grad():
                self.weight.copy_(normalize(self.weight, rows))
        fan_in = self.weight[0].numel()
        return (normalize(self.weight, rows) / math.sqrt(fan_in)).to(dtype)


class MPLinear(MPWeight):
    """A magnitude-preserving fully-connected layer: ``x @ normalized_weight.T``."""

    def __init__(self, in_features: int, out_features: int, forced: bool) -> None:
        super().__init__((out_features, in_features), forced)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(x.dtype))


class MPConv2d(MPWeight):
    """A magnitude-preserving 2-D convolution (no bias), with ``nn.Conv2d``'s stride and padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, forced: bool, stride: int = 1,
                 padding: int = 0) -> None:
        super().__init__((out_channels, in_channels, kernel_size, kernel_size), forced)
        self.stride, self.padding = stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.normalized_weight(x.dtype), stride=self.stride, padding=self.padding)
