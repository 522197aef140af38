"""The U-Net, composed from the variant classes a UNetSpec names.

The topology is smalldiffusion's ``Unet`` (itself DDPM's): conv_in; per level ``num_res_blocks``
ResnetBlocks (+ attention at ``attn_resolutions``) and a Downsample; a middle ResnetBlock ->
attention -> ResnetBlock; per level ``num_res_blocks + 1`` ResnetBlocks on concatenated skips and an
upsampler; GroupNorm -> SiLU -> conv_out. Modules are created in smalldiffusion's order, so with the
baseline axes the parameter list matches ``smalldiffusion.Unet`` one to one. EDM2's U-Net is the same
topology (its down and up blocks are the resampling ResnetBlocks of ``resblock_updown``, its two decoder blocks
at the coarsest level the middle), with EDM2's parts. Which module each component is comes from the spec's
``Parts`` (``variants/assembly.py``); the spec itself gives only the layout: sizes, where attention runs, its
heads, and checkpointing.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .assembly import parts_for_spec
from .parts import Gain
from .resnet import Downsample, ResampleResnetBlock, ResnetBlock
from .smalldiffusion_mirror import ModelMixin
from .spec import CLIP_ACT, UNetSpec


def clip(x: Tensor) -> Tensor:
    """EDM2's activation clipping: a block's output bounded to +-CLIP_ACT (a guard against rare blow-ups in low
    precision; the identity wherever activations are sane)."""
    return x.clamp(-CLIP_ACT, CLIP_ACT)


def no_clip(x: Tensor) -> Tensor:
    return x


class Stage(nn.Module):
    """A ResnetBlock optionally followed by attention: the unit gradient checkpointing wraps."""

    def __init__(self, resnet: ResnetBlock, attn: nn.Module | None = None, clip: Callable[[Tensor], Tensor] = no_clip
                 ) -> None:
        super().__init__()
        self.resnet = resnet
        self.attn = attn
        self.clip = clip

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.resnet(x, temb)
        return self.clip(self.attn(h) if self.attn is not None else h)


class Middle(nn.Module):
    """ResnetBlock -> attention -> ResnetBlock (EDM2's two decoder blocks at the coarsest level: each clipped)."""

    def __init__(self, first: ResnetBlock, attn: nn.Module, second: ResnetBlock,
                 clip: Callable[[Tensor], Tensor] = no_clip) -> None:
        super().__init__()
        self.first, self.attn, self.second = first, attn, second
        self.clip = clip

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        return self.clip(self.second(self.clip(self.attn(self.first(x, temb))), temb))


class OnesChannel(nn.Module):
    """Appends a constant channel of ones to the input (EDM2: with no biases, the first conv's learned constant)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, x.new_ones(x.shape[0], 1, *x.shape[2:])], dim=1)


class UNet(nn.Module, ModelMixin):
    """``forward(x, sigma, cond=None)`` predicts the noise in ``x``; it follows smalldiffusion's model
    protocol (``input_dims``, ``rand_input``, ``get_loss``, ``predict_eps``), so its schedules,
    training loop and sampler drive it unchanged."""

    def __init__(self, spec: UNetSpec) -> None:
        super().__init__()
        spec.validate()  # registries may have changed since the spec was made
        self.spec = spec
        self.input_dims = (spec.in_ch, spec.in_dim, spec.in_dim)
        temb_ch = spec.ch * spec.embed_ch_mult
        parts = parts_for_spec(spec)  # every axis's level, configured before any module exists

        self.clip = clip if parts.clip_act else no_clip
        self.skip_join = parts.skip_join

        def resnet(in_ch: int, out_ch: int, encoder: bool = False) -> ResnetBlock:
            return ResnetBlock(in_ch, out_ch, temb_ch, spec.dropout, parts, encoder=encoder)

        def resample(channels: int, direction: str) -> nn.Module:
            if parts.resblock_updown:
                return ResampleResnetBlock(channels, channels, temb_ch, spec.dropout, parts, resample=direction,
                                           encoder=direction == "down")
            return Downsample(channels, parts) if direction == "down" else parts.upsample(channels, parts)

        def attention(channels: int) -> nn.Module:
            return parts.attention(channels, spec.heads(channels), parts)

        def stage(in_ch: int, out_ch: int, res: int, encoder: bool = False) -> Stage:
            attn = attention(out_ch) if res in spec.attn_resolutions else None  # made first: the init order
            return Stage(resnet(in_ch, out_ch, encoder), attn, self.clip)

        self.sig_embed = parts.noise_embedding(spec.ch, temb_ch, parts)
        self.ones = OnesChannel() if parts.ones_channel else None
        self.conv_in = parts.conv(spec.in_ch + parts.ones_channel, spec.ch, 3, padding=1)

        levels = len(spec.ch_mult)
        skip_channels = (spec.ch,) + spec.level_channels
        self.downs = nn.ModuleList()
        block_in = spec.ch
        for level, (block_out, res) in enumerate(zip(spec.level_channels, spec.resolutions)):
            down = nn.Module()
            down.blocks = nn.ModuleList()
            for _ in range(spec.num_res_blocks):
                down.blocks.append(stage(block_in, block_out, res, encoder=True))
                block_in = block_out
            if level < levels - 1:
                down.downsample = resample(block_in, "down")
            self.downs.append(down)

        self.mid = Middle(resnet(block_in, block_in), attention(block_in), resnet(block_in, block_in), self.clip)

        self.ups = nn.ModuleList()
        for level in reversed(range(levels)):
            block_out, res = spec.level_channels[level], spec.resolutions[level]
            up = nn.Module()
            up.blocks = nn.ModuleList()
            for block in range(spec.num_res_blocks + 1):
                skip = block_out if block < spec.num_res_blocks else skip_channels[level]
                up.blocks.append(stage(block_in + skip, block_out, res))
                block_in = block_out
            if level > 0:
                up.upsample = resample(block_in, "up")
            self.ups.append(up)

        head = [parts.norm(block_in), parts.act(True)] if parts.normalized else []
        head.append(parts.conv(block_in, spec.out_ch, 3, padding=1))
        if parts.out_gain:
            head.append(Gain())
        self.out = nn.Sequential(*head)

    def _run(self, block: nn.Module, h: Tensor, temb: Tensor) -> Tensor:
        # Recompute activations in backward instead of storing them; pointless without autograd.
        # use_reentrant=False: works with keyword-free inputs that need no grad, and restores RNG (dropout).
        if self.spec.checkpoint and torch.is_grad_enabled():
            return checkpoint(block, h, temb, use_reentrant=False)
        return block(h, temb)

    def _resample(self, block: nn.Module, h: Tensor, temb: Tensor) -> Tensor:
        # ADM's resampling residual blocks take the time embedding (and are checkpointed like the others)
        return self.clip(self._run(block, h, temb) if isinstance(block, ResnetBlock) else block(h))

    def forward(self, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is not None:
            raise ValueError("cond: this U-Net is unconditional; pass cond=None")
        if tuple(x.shape[1:]) != self.input_dims:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected (batch, {', '.join(map(str, self.input_dims))})")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.numel() not in (1, x.shape[0]):
            raise ValueError(f"sigma has shape {tuple(sigma.shape)}; valid: one value (a scalar, shape (1,) or "
                             f"(1, 1, 1, 1)) or one per sample ({x.shape[0]} values, e.g. shape ({x.shape[0]},))")
        temb = self.sig_embed(sigma.reshape(-1).expand(x.shape[0]))

        hs = [self.conv_in(self.ones(x) if self.ones is not None else x)]
        for down in self.downs:
            for block in down.blocks:
                hs.append(self._run(block, hs[-1], temb))
            if hasattr(down, "downsample"):
                hs.append(self._resample(down.downsample, hs[-1], temb))

        h = self._run(self.mid, hs[-1], temb)

        for up in self.ups:
            for block in up.blocks:
                h = self._run(block, self.skip_join(h, hs.pop()), temb)
            if hasattr(up, "upsample"):
                h = self._resample(up.upsample, h, temb)

        return self.out(h)


def build(spec: UNetSpec) -> UNet:
    """Turn a spec into a model (on CPU, fp32, in train mode like any fresh nn.Module)."""
    return UNet(spec)
