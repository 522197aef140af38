"""UNetSpec: the small, serialisable description a U-Net is built from.

Its fields are smalldiffusion ``Unet``'s arguments and the ablation axes, each axis declared once on its field
(``variants.axes``). A spec is validated when it is made, so a bad one fails before any module is built or any
sweep starts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .attention import ATTENTIONS
from .axes import AXES, axis, collect
from .checks import check_int, check_int_tuple
from .compatibility import check_needed_parts
from .noise_embedding import NOISE_EMBEDDINGS
from .assembly import (
    use_act,
    use_layers,
    use_normalization,
    use_residual_join,
    use_skip_join,
)
from .time_injection import TIME_INJECTIONS
from .upsample import UPSAMPLERS

CLIP_ACT = 256.0  # EDM2's activation clipping bound


@dataclass(frozen=True)
class UNetSpec:
    in_dim: int
    in_ch: int
    out_ch: int
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    embed_ch_mult: int = 4
    num_res_blocks: int = 2
    dropout: float = 0.1
    norm_groups: int = 32
    # ablation axes
    upsample: str = axis("nearest_conv", registry=UPSAMPLERS, in_default_grid=True, label=lambda v, spec: v,
                         values=("nearest_conv", "conv_transpose"),
                         doc="how the decoder doubles the resolution: nearest 2x + 3x3 conv (DDPM, smalldiffusion), "
                             "or a learned ConvTranspose2d (kernel 4, stride 2)")
    time_injection: str = axis("additive", registry=TIME_INJECTIONS, in_default_grid=True, label=lambda v, spec: v,
                               values=("additive", "film"),
                               doc="how the time embedding enters a ResnetBlock: norm(h + Linear(temb)); FiLM "
                                   "norm(h) * (1 + scale) + shift (ADM's AdaGN); EDM2's scale-only "
                                   "norm(h) * (1 + Linear(temb)) (configs C-F); or EDM2's final "
                                   "norm(h) * (1 + gain * Linear(temb)), the gain a learned scalar initialised to 0")
    attn_heads: int = axis(1, values=(1, 4), in_default_grid=True, label=lambda v, spec: f"{v}h",
                           doc="attention heads (any divisor of the attention channels)")
    num_head_channels: int = axis(0, values=(0, 64), minimum=0, label=lambda v, spec: f"{v}ch_head" if v else None,
                                  doc="channels per attention head, ADM's alternative to a head count (0: use "
                                      "attn_heads)")
    # Named only when it is not the DDPM convention of one attention level at half the input size.
    attn_resolutions: tuple[int, ...] = axis(
        (16,), label=lambda v, spec: None if v == (spec.in_dim // 2,) else f"attn@{'_'.join(map(str, v)) or 'mid'}",
        doc="where attention runs besides the middle (ADM Table 1: 16 against 32, 16 and 8); "
            "values depend on the base's resolutions")
    # torch.utils.checkpoint around every ResnetBlock(+attention) and the middle
    checkpoint: bool = axis(False, values=(False, True), in_default_grid=True,
                            label=lambda v, spec: "ckpt" if v else None,
                            doc="torch.utils.checkpoint (use_reentrant=False) around every ResnetBlock(+attention) "
                                "and the middle")
    attention: str = axis("sdpa", registry=ATTENTIONS, values=("sdpa", "ddpm"),
                          label=lambda v, spec: None if v == "sdpa" else f"attn_{v}",
                          doc="the attention block: smalldiffusion's (bias-free Linear qkv, Linear proj, 1x1 "
                              "proj_out); DDPM's (q, k, v and out as biased 1x1 convs); or EDM2's cosine attention "
                              "(no norm before it; q, k and v each normalised per head)")
    noise_embedding: str = axis("sincos", registry=NOISE_EMBEDDINGS, values=("sincos", "ddpm", "fourier"),
                                label=lambda v, spec: None if v == "sincos" else f"emb_{v}",
                                doc="how sigma becomes the time embedding: sin/cos of ln sigma / 2 (smalldiffusion), "
                                    "DDPM's sinusoidal embedding of ln sigma / 4, or NCSN++'s Gaussian Fourier "
                                    "features of ln sigma, each then a 2-layer MLP; or EDM2's magnitude-preserving "
                                    "Fourier features of ln sigma / 4, then one linear")
    resblock_updown: bool = axis(False, values=(False, True),
                                 doc="ADM's BigGAN-style residual blocks that resample, instead of Downsample and "
                                     "the upsampler")
    residual_join: str = axis("plain", values=("plain", "rescaled", "mp_sum"), configure=use_residual_join,
                              label=lambda v, spec: {"plain": None, "rescaled": "skip_rescale"}.get(v, v),
                              doc="how a residual branch joins the main path: a plain sum; ResnetBlock sums times "
                                  "1/sqrt(2) (NCSN++, DDPM++); or EDM2's magnitude-preserving sum "
                                  "((1 - t) x + t y) / sqrt((1 - t)^2 + t^2), t = 0.3, in every ResnetBlock and "
                                  "attention block")
    # EDM2's choices (Karras et al. 2024, Table 1 configs C to G), each one idea; all at their EDM2 level build
    # its block (bases edm2_img512_xs and edm2_img512_s)
    normalization: str = axis("group", values=("group", "pixel", "none"), configure=use_normalization,
                              label=lambda v, spec: None if v == "group" else f"norm_{v}",
                              doc="GroupNorm before every conv and attention (smalldiffusion, ADM); EDM2's pixel "
                                  "norm (unit RMS over the channels) on the encoder blocks' main path and no other; "
                                  "or none. Without GroupNorm the output conv reads the last block directly")
    layers: str = axis("standard", values=("standard", "no_bias", "mp", "mp_forced"), configure=use_layers,
                       label=lambda v, spec: None if v == "standard" else f"layers_{v}",
                       doc="every conv and linear: torch's with biases; without biases (EDM2 C); EDM2's "
                           "magnitude-preserving MPConv, each output channel's weight normalised to unit norm, "
                           "unit-normal init, no bias (D); or MPConv that also renormalises its stored weight in "
                           "every training-mode forward (E, forced weight normalisation)")
    act: str = axis("silu", values=("silu", "mp_silu"), configure=use_act, label=lambda v, spec: None if v == "silu"
                    else v, doc="the nonlinearity: SiLU, or EDM2's magnitude-preserving silu(x) / 0.596")
    skip_join: str = axis("cat", values=("cat", "mp_cat"), configure=use_skip_join,
                          doc="how a decoder block takes its skip: concatenation, or EDM2's magnitude-preserving "
                              "concatenation, each part scaled by sqrt((Na + Nb) / 2 / N_part)")
    block_form: str = axis("standard", values=("standard", "edm2"),
                           label=lambda v, spec: None if v == "standard" else "edm2_blocks",
                           doc="the ResnetBlock's form: the shortcut projects the input at the end (DDPM, ADM); or "
                               "EDM2's, where an encoder block projects its input first and runs the residual "
                               "branch at the output width, and a resampling block resamples its main path first")
    ones_channel: bool = axis(False, values=(False, True),
                              doc="the input conv also sees a constant channel of ones (EDM2's stand-in for the "
                                  "biases it removed)")
    out_gain: bool = axis(False, values=(False, True),
                          doc="the output times a learned scalar gain initialised to zero (EDM2): the network's "
                              "output is 0 at init")
    clip_act: bool = axis(False, values=(False, True), label=lambda v, spec: f"clip{CLIP_ACT:g}" if v else None,
                          doc=f"every block's output clipped to +-{CLIP_ACT:g} (EDM2)")
    # values of axes added from outside the package (axes.add_axis), as sorted (name, value) pairs
    extra_axes: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # JSON has no tuples: accept lists so that from_json(to_json(s)) == s.
        for name in ("ch_mult", *(n for n, a in AXES.items() if a.type is tuple and not a.added)):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

        if type(self.dropout) is int and self.dropout == 0:  # JSON writes 0.0 as 0; any other int is invalid
            object.__setattr__(self, "dropout", 0.0)
        self.validate()

    # --- validation -------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the field, the bad value and what is valid."""
        for name in ("in_dim", "in_ch", "out_ch", "ch", "embed_ch_mult", "num_res_blocks", "norm_groups"):
            check_int(name, getattr(self, name))
        check_int_tuple("ch_mult", self.ch_mult, allow_empty=False)
        if not isinstance(self.dropout, float) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r} is invalid; valid: a float in [0, 1)")
        self._check_extra_axes()
        for name, declared in AXES.items():
            declared.check(getattr(self, name))

        levels = len(self.ch_mult)
        if self.in_dim % 2 ** (levels - 1):
            raise ValueError(
                f"in_dim={self.in_dim} is invalid for {levels} levels (ch_mult={self.ch_mult}); "
                f"valid: a multiple of 2^{levels - 1} = {2 ** (levels - 1)}"
            )
        resolutions = self.resolutions
        for res in self.attn_resolutions:
            if res not in resolutions:
                raise ValueError(
                    f"attn_resolutions contains {res}, a resolution this U-Net never has; valid: any of {resolutions}"
                )
        if self.normalization == "group":
            self._check_groups()
        self._check_combinations()
        if self.resblock_updown and self.upsample != AXES["upsample"].default:
            raise ValueError(f"resblock_updown=True resamples inside residual blocks, so upsample={self.upsample!r} "
                             f"would be ignored; valid: upsample={AXES['upsample'].default!r} with resblock_updown=True")
        if self.num_head_channels and self.attn_heads != 1:
            raise ValueError(f"num_head_channels={self.num_head_channels} and attn_heads={self.attn_heads} both set "
                             "the heads; valid: one of them (attn_heads=1 with num_head_channels, or "
                             "num_head_channels=0)")
        name, value = ("num_head_channels", self.num_head_channels) if self.num_head_channels else \
            ("attn_heads", self.attn_heads)
        for channels in sorted(self.attention_channels):
            if channels % value:
                raise ValueError(
                    f"{name}={value} does not divide the {channels} channels of an attention block; "
                    f"valid: a common divisor of {sorted(self.attention_channels)}"
                )

    def _check_groups(self) -> None:
        """GroupNorm's groups divide every normalised channel count and leave it more than one value per group."""
        for channels in sorted(self.normalised_channels):
            if channels % self.norm_groups:
                raise ValueError(
                    f"norm_groups={self.norm_groups} does not divide {channels} channels (ch={self.ch}, "
                    f"ch_mult={self.ch_mult}); valid: a divisor of every normalised channel count "
                    f"{sorted(self.normalised_channels)}"
                )
        # The fewest channels a GroupNorm at the coarsest level sees: the level's own, or those entering it.
        coarsest = min(((self.ch,) + self.level_channels)[-2:])
        if self.resolutions[-1] == 1 and coarsest // self.norm_groups < 2:
            raise ValueError(
                f"norm_groups={self.norm_groups} leaves one value per group and sample at the coarsest level "
                f"({coarsest} channels at 1x1; in_dim={self.in_dim}, ch_mult={self.ch_mult}), which GroupNorm "
                f"cannot normalise; valid: norm_groups at most {coarsest // 2}, or in_dim a multiple of "
                f"{2 ** len(self.ch_mult)}"
            )

    def _check_combinations(self) -> None:
        """Levels of two axes that cannot go together, each refused naming both axes."""
        check_needed_parts(self)  # a block that needs a part other levels leave out (variants/compatibility.py)
        if self.layers == "mp_forced" and self.checkpoint:
            raise ValueError("layers='mp_forced' renormalises the stored weights in every training-mode forward, and "
                             "checkpoint=True would run that forward twice per step (once more in the recompute); "
                             "valid: checkpoint=False with layers='mp_forced', or layers='mp'")

    def _check_extra_axes(self) -> None:
        for pair in self.extra_axes:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and pair[0] in AXES and AXES[pair[0]].added):
                added = [a.name for a in AXES.values() if a.added]
                raise ValueError(f"extra_axes entry {pair!r} is invalid; valid: (name, value) of an axis added with "
                                 f"variants.add_axis ({', '.join(added) or 'none added'})")

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields: the values of axes added from outside the package.
        if name in AXES and AXES[name].added:
            return dict(self.extra_axes).get(name, AXES[name].default)
        raise AttributeError(f"{type(self).__name__} has no field or axis {name!r}")

    # --- derived layout (shared by validation, the builder's tests and the FLOP hand count) --
    @property
    def resolutions(self) -> tuple[int, ...]:
        """Spatial size of each level, finest first."""
        return tuple(self.in_dim // 2**i for i in range(len(self.ch_mult)))

    @property
    def level_channels(self) -> tuple[int, ...]:
        return tuple(self.ch * m for m in self.ch_mult)

    def heads(self, channels: int) -> int:
        """Attention heads of a block with ``channels`` channels."""
        return channels // self.num_head_channels if self.num_head_channels else self.attn_heads

    @property
    def attention_channels(self) -> set[int]:
        """Channel counts of every attention block (levels in attn_resolutions, plus the middle)."""
        chans = {c for c, r in zip(self.level_channels, self.resolutions) if r in self.attn_resolutions}
        return chans | {self.level_channels[-1]}

    @property
    def normalised_channels(self) -> set[int]:
        """Every channel count a GroupNorm sees, including the decoder's concatenated skip inputs."""
        chans = {self.ch, *self.level_channels}
        next_skip = (self.ch,) + self.level_channels  # the skip the last block of each up level eats
        h = self.level_channels[-1]
        for level in reversed(range(len(self.ch_mult))):
            out = self.level_channels[level]
            for block in range(self.num_res_blocks + 1):
                skip = out if block < self.num_res_blocks else next_skip[level]
                chans.add(h + skip)
                h = out
        return chans

    # --- identity and serialisation -----------------------------------------------------------
    @property
    def name(self) -> str:
        """Short canonical name of the variant (its axis values), for tables and file names."""
        parts = (declared.name_part(getattr(self, name), self) for name, declared in AXES.items())
        return "+".join(part for part in parts if part is not None)

    @property
    def hash(self) -> str:
        """Stable across processes and sessions (unlike ``hash()``): sha256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        """Every field; the values of added axes as fields of their own (and only where set)."""
        data = dataclasses.asdict(self)
        data.update(data.pop("extra_axes"))
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetSpec:
        """Raise ValueError naming unknown or missing fields, or a field whose value is invalid."""
        if not isinstance(data, dict):
            raise ValueError(f"a UNetSpec must be an object of fields, not {type(data).__name__} {data!r}; valid: "
                             '{"in_dim": 28, "in_ch": 1, "out_ch": 1, ...}')
        fields = dataclasses.fields(cls)
        added = {name for name, declared in AXES.items() if declared.added}
        unknown = sorted(set(data) - {f.name for f in fields} - added)
        if unknown:
            raise ValueError(f"unknown UNetSpec field(s) {unknown}; valid: {sorted(f.name for f in fields)}")
        missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in data]
        if missing:
            raise ValueError(f"UNetSpec field(s) {missing} missing; valid: every one of "
                             f"{[f.name for f in fields if f.default is dataclasses.MISSING]} given")
        own = {k: v for k, v in data.items() if k not in added}
        extra = {name: AXES[name].parse_json(data[name]) for name in sorted(added & set(data))}
        return cls(**own).replace(**extra)  # replace: an added axis at its reference level is left out

    @classmethod
    def from_json(cls, text: str) -> UNetSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"UNetSpec JSON {text!r} does not parse ({err}); valid: a JSON object of fields") from err
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> UNetSpec:
        """A copy with ``changes``, which may name added axes as well as fields."""
        extra = dict(self.extra_axes)
        for name in [n for n in changes if n in AXES and AXES[n].added]:
            value = changes.pop(name)
            extra.pop(name, None)
            if value != AXES[name].default:  # a spec at every default is the same spec, with or without plugins
                extra[name] = value
        return dataclasses.replace(self, **changes, extra_axes=tuple(sorted(extra.items())))


collect(UNetSpec)
