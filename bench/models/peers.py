"""Reference U-Nets ("peers") measured through the same code path as our variants.

Each peer is built at the configuration closest to a UNetSpec and wrapped to our model protocol
(``forward(x, sigma, cond=None)`` plus smalldiffusion's ``get_loss``), so the same workload, FLOP
counters and timers run it. The mapping, per spec field:

| spec | smalldiffusion ``Unet`` | diffusers ``UNet2DModel`` | lucidrains ``Unet`` |
|---|---|---|---|
| in_dim, in_ch, out_ch | same | sample_size, in/out_channels | channels, out_dim |
| ch, ch_mult | same | block_out_channels = ch * ch_mult | dim, dim_mults |
| num_res_blocks | same | layers_per_block | fixed 2 |
| attn_resolutions | same | Attn{Down,Up}Block2D at those levels, mid attention | full attention there, linear attention elsewhere (cannot be off) |
| attn_heads | 1 head always | attention_head_dim = None (1 head) or C_first_attn // heads | attn_heads, attn_dim_head = C_level // heads |
| time_injection | additive always | additive -> resnet_time_scale_shift "default", film -> "scale_shift" | FiLM always |
| upsample | nearest + conv always | upsample_type "conv" (nearest + conv; no ConvTranspose) | nearest + conv always |
| norm_groups, dropout | 32 groups always, dropout | norm_num_groups (attn_norm_num_groups too), dropout; downsample_padding 0 as DDPM | RMSNorm (no groups), dropout |
| checkpoint | ignored: peers run without it | | |

Peers that take a timestep instead of sigma get ``sigma_to_timestep(sigma) = 250 * ln(sigma)``: EDM's
noise conditioning ``c_noise = ln(sigma) / 4`` (Karras et al. 2022, Table 1) scaled by 1000, the range
of integer timesteps their sinusoidal embeddings are built for. One scalar per sample: it changes
no cost. The parameter count (``model / params``) shows how close each match is.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from variants import UNetSpec, build
from variants.smalldiffusion_mirror import ModelMixin


class PeerUnavailable(RuntimeError):
    """A peer's package is not installed: the cell becomes a 'skipped' row saying what to install."""


def sigma_to_timestep(sigma: Tensor) -> Tensor:
    """(B,) timesteps for peers conditioned on a DDPM-style timestep: 250 * ln(sigma)."""
    return 250.0 * torch.log(sigma.reshape(-1))


class PeerModel(nn.Module, ModelMixin):
    """A peer network behind our protocol: ``forward(x, sigma, cond=None)`` predicts the noise."""

    def __init__(self, name: str, net: nn.Module, spec: UNetSpec, takes_timestep: bool, returns_tuple: bool) -> None:
        super().__init__()
        self.name = name
        self.net = net
        self.spec = spec.replace(checkpoint=False)  # the spec it approximates; peers never checkpoint
        self.input_dims = (spec.in_ch, spec.in_dim, spec.in_dim)
        self.takes_timestep = takes_timestep
        self.returns_tuple = returns_tuple

    def forward(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is not None:
            raise ValueError("cond: peers are measured unconditional; pass cond=None")
        if not self.takes_timestep:
            return self.net(x, sigma)
        t = sigma_to_timestep(torch.as_tensor(sigma, dtype=x.dtype, device=x.device)).expand(x.shape[0])
        out = self.net(x, t, return_dict=False) if self.returns_tuple else self.net(x, t)
        return out[0] if self.returns_tuple else out


SMALLDIFFUSION_GROUPS = 32  # its GroupNorm group count is fixed


def _smalldiffusion(spec: UNetSpec) -> PeerModel:
    from smalldiffusion import Unet

    if any(c % SMALLDIFFUSION_GROUPS for c in spec.normalised_channels):
        raise ValueError(f"peer smalldiffusion normalises with {SMALLDIFFUSION_GROUPS} groups, which do not divide the "
                         f"spec's channel counts {sorted(spec.normalised_channels)}; valid: ch a multiple of 32")
    net = Unet(spec.in_dim, spec.in_ch, spec.out_ch, ch=spec.ch, ch_mult=spec.ch_mult,
               embed_ch_mult=spec.embed_ch_mult, num_res_blocks=spec.num_res_blocks,
               attn_resolutions=spec.attn_resolutions, dropout=spec.dropout)
    return PeerModel("smalldiffusion", net, spec, takes_timestep=False, returns_tuple=False)


def _diffusers(spec: UNetSpec) -> PeerModel:
    from diffusers import UNet2DModel

    attn = [res in spec.attn_resolutions for res in spec.resolutions]
    attn_channels = [c for c, a in zip(spec.level_channels, attn) if a] or [spec.level_channels[-1]]
    net = UNet2DModel(
        sample_size=spec.in_dim, in_channels=spec.in_ch, out_channels=spec.out_ch,
        block_out_channels=spec.level_channels, layers_per_block=spec.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        time_embedding_dim=spec.ch * spec.embed_ch_mult, dropout=spec.dropout,
        norm_num_groups=spec.norm_groups, attn_norm_num_groups=spec.norm_groups, norm_eps=1e-6,
        downsample_padding=0, upsample_type="conv",
        resnet_time_scale_shift="scale_shift" if spec.time_injection == "film" else "default",
        # One head dim for every block: None gives each attention block one full-width head.
        attention_head_dim=None if spec.attn_heads == 1 else attn_channels[0] // spec.attn_heads,
    )
    return PeerModel("diffusers", net, spec, takes_timestep=True, returns_tuple=True)


def _lucidrains(spec: UNetSpec) -> PeerModel:
    from denoising_diffusion_pytorch import Unet

    net = Unet(dim=spec.ch, dim_mults=spec.ch_mult, channels=spec.in_ch, out_dim=spec.out_ch, dropout=spec.dropout,
               full_attn=tuple(res in spec.attn_resolutions for res in spec.resolutions),
               attn_heads=spec.attn_heads, attn_dim_head=tuple(c // spec.attn_heads for c in spec.level_channels))
    return PeerModel("lucidrains", net, spec, takes_timestep=True, returns_tuple=False)


@dataclass(frozen=True)
class Peer:
    name: str
    module: str        # what must import for the peer to be available
    install: str       # the command that makes it available
    build: Callable[[UNetSpec], PeerModel]


PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("smalldiffusion", "smalldiffusion", "pip install smalldiffusion", _smalldiffusion),
    Peer("diffusers", "diffusers", "pip install diffusers", _diffusers),
    Peer("lucidrains", "denoising_diffusion_pytorch", "pip install denoising-diffusion-pytorch", _lucidrains),
)}


def get_peer(name: str) -> Peer:
    if name not in PEERS:
        raise ValueError(f"--peers {name!r} is not a peer; valid: {', '.join(PEERS)}")
    return PEERS[name]


def model_builder(peer: str) -> Callable[[UNetSpec], nn.Module]:
    """What builds a cell's model from its spec: the peer ``peer``'s closest match, or our U-Net when it is empty."""
    return functools.partial(build_peer, peer) if peer else build


def build_peer(name: str, spec: UNetSpec) -> PeerModel:
    """The peer ``name`` at the configuration closest to ``spec`` (on CPU, fp32, train mode)."""
    peer = get_peer(name)
    try:
        importlib.import_module(peer.module)
    except ImportError as err:
        raise PeerUnavailable(f"peer {name} needs the {peer.module} package: `{peer.install}` ({err})") from err
    return peer.build(spec)
