"""Noise-embedding axis: how the noise level sigma becomes the vector every ResnetBlock's time injection reads.

Every embedder takes ``(ch, temb_ch, parts)``, the U-Net's base channel count, its embedding width
(``ch * embed_ch_mult``) and the builder's parts, and maps sigma of shape (B,) to (B, temb_ch).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .parts import Parts, linear, silu
from .registry import Registry
from .smalldiffusion_mirror import SigmaEmbedderSinCos

NOISE_EMBEDDINGS: Registry[nn.Module] = Registry("noise_embedding", ("ch", "temb_ch", "parts"))


class NoiseEmbedding(nn.Module):
    """Base class, so cost breakdowns can find the embedder whatever its variant."""


def _mlp(in_features: int, temb_ch: int, parts: Parts) -> nn.Sequential:
    """Linear -> activation -> Linear, the layout of DDPM's and diffusers' ``TimestepEmbedding``."""
    return nn.Sequential(parts.linear(in_features, temb_ch), parts.act(False), parts.linear(temb_ch, temb_ch))


def _half(ch: int, minimum: int) -> int:
    if ch % 2 or ch < minimum:
        raise ValueError(f"ch={ch} is invalid for this noise embedding; valid: an even number >= {minimum}")
    return ch // 2


@NOISE_EMBEDDINGS.register("sincos")
class SinCosNoiseEmbedding(SigmaEmbedderSinCos, NoiseEmbedding):
    """smalldiffusion's ``SigmaEmbedderSinCos(temb_ch)`` itself: sin and cos of ln(sigma) / 2, then the MLP.

    Subclassed from the line-for-line mirror of smalldiffusion's class (``variants/smalldiffusion_mirror.py``,
    tested against the installed package), so the baseline stays smalldiffusion's parameter for parameter and
    bit for bit, with the same ``mlp.*`` state-dict keys; ``ch`` is unused (the features are always two). With
    other layers or another activation (the ``layers`` and ``act`` axes) the MLP is made of those instead.
    """

    def __init__(self, ch: int, temb_ch: int, parts: Parts) -> None:
        super().__init__(temb_ch)
        if (parts.linear, parts.act) != (linear, silu):  # not smalldiffusion's layers or activation
            self.mlp = _mlp(2, temb_ch, parts)

    def forward(self, sigma: Tensor) -> Tensor:
        return super().forward(sigma.shape[0], sigma)


@NOISE_EMBEDDINGS.register("ddpm")
class DDPMNoiseEmbedding(NoiseEmbedding):
    """DDPM's sinusoidal timestep embedding of width ``ch`` (sin half then cos half, frequencies
    10000^(-i / (ch/2 - 1)): diffusers' ``Timesteps(ch, flip_sin_to_cos=False, downscale_freq_shift=1)``,
    as google/ddpm-cifar10-32 sets it), then ``TimestepEmbedding``'s MLP.

    The model is given sigma, not a timestep, so the embedded position is EDM's c_noise = ln(sigma) / 4,
    what EDM's preconditioning feeds DDPM++'s positional embedding.
    """

    def __init__(self, ch: int, temb_ch: int, parts: Parts) -> None:
        super().__init__()
        half = _half(ch, 4)  # ch = 2 would divide by ch/2 - 1 = 0
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - 1)
        self.register_buffer("freqs", torch.exp(exponent), persistent=False)  # a function of ch: nothing to save
        self.mlp = _mlp(ch, temb_ch, parts)

    def forward(self, sigma: Tensor) -> Tensor:
        args = (sigma.log() / 4)[:, None] * self.freqs
        return self.mlp(torch.cat([args.sin(), args.cos()], dim=1))


@NOISE_EMBEDDINGS.register("fourier")
class FourierNoiseEmbedding(NoiseEmbedding):
    """NCSN++'s Gaussian Fourier features of ln(sigma): ``ch // 2`` fixed random frequencies f ~ N(0, 16^2),
    features sin(2 pi f ln sigma) then cos(2 pi f ln sigma), then the same MLP as "ddpm".

    Sin first, as NCSN++'s ``GaussianFourierProjection`` and EDM's SongUNet (whose ``FourierEmbedding``
    emits cos first, then swaps the halves) feed their MLP. NCSN++ draws ``ch`` frequencies (2 * ch
    features); half as many keep the MLP's input as wide as "ddpm"'s, so the two differ in the features only.
    The frequencies are a persistent buffer: never trained, but a checkpoint must restore the draw.
    """

    def __init__(self, ch: int, temb_ch: int, parts: Parts) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(_half(ch, 2)) * 16)
        self.mlp = _mlp(ch, temb_ch, parts)

    def forward(self, sigma: Tensor) -> Tensor:
        args = sigma.log()[:, None] * (2 * math.pi * self.freqs)
        return self.mlp(torch.cat([args.sin(), args.cos()], dim=1))


@NOISE_EMBEDDINGS.register("mp_fourier")
class MPFourierNoiseEmbedding(NoiseEmbedding):
    """EDM2's embedding: magnitude-preserving Fourier features of c_noise = ln(sigma) / 4, then one linear layer
    (EDM2 removed the MLP's second; every block applies the activation before its own projection).

    ``ch`` features sqrt(2) cos(f_i c_noise + phi_i), with angular frequencies f_i = 2 pi N(0, 1) and phases
    phi_i = 2 pi U(0, 1) drawn once at init (persistent buffers, restored by a checkpoint); sqrt(2) makes each
    feature unit-variance over the phases (eq. 75).
    """

    def __init__(self, ch: int, temb_ch: int, parts: Parts) -> None:
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(ch))
        self.register_buffer("phases", 2 * math.pi * torch.rand(ch))
        self.linear = parts.linear(ch, temb_ch)

    def forward(self, sigma: Tensor) -> Tensor:
        c_noise = sigma.to(torch.float32).log() / 4
        features = torch.cos(c_noise[:, None] * self.freqs + self.phases) * math.sqrt(2)
        return self.linear(features.to(sigma.dtype))
