"""UNetSpec: the small, serialisable description a U-Net is built from.

Its first fields are smalldiffusion ``Unet``'s arguments; then one field per ablation axis. A spec is
validated when it is made, so a bad one fails before any module is built or any sweep starts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .attention import ATTENTIONS
from .checks import check_positive_int
from .registry import Registry
from .time_injection import TIME_INJECTIONS
from .upsample import UPSAMPLERS

AXES = ("upsample", "time_injection", "attn_heads", "checkpoint")
REGISTRIES: dict[str, Registry] = {r.field: r for r in (UPSAMPLERS, TIME_INJECTIONS, ATTENTIONS)}


@dataclass(frozen=True)
class UNetSpec:
    in_dim: int
    in_ch: int
    out_ch: int
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    embed_ch_mult: int = 4
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    norm_groups: int = 32
    # ablation axes
    upsample: str = "nearest_conv"
    time_injection: str = "additive"
    attn_heads: int = 1
    checkpoint: bool = False  # torch.utils.checkpoint around every ResnetBlock(+attention) and the middle
    attention: str = "sdpa"  # attention implementation; heads is the axis swept by default

    def __post_init__(self) -> None:
        # JSON has no tuples: accept lists so that from_json(to_json(s)) == s.
        for name in ("ch_mult", "attn_resolutions"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if type(self.dropout) is int and self.dropout == 0:  # JSON writes 0.0 as 0; any other int is invalid
            object.__setattr__(self, "dropout", 0.0)
        self.validate()

    # --- validation -------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the field, the bad value and what is valid."""
        for name in ("in_dim", "in_ch", "out_ch", "ch", "embed_ch_mult", "num_res_blocks", "norm_groups", "attn_heads"):
            check_positive_int(name, getattr(self, name))
        _check_int_tuple("ch_mult", self.ch_mult, allow_empty=False)
        _check_int_tuple("attn_resolutions", self.attn_resolutions, allow_empty=True)
        if not isinstance(self.dropout, float) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r} is invalid; valid: a float in [0, 1)")
        if not isinstance(self.checkpoint, bool):
            raise ValueError(f"checkpoint={self.checkpoint!r} is invalid; valid: True or False")
        for field, registry in REGISTRIES.items():
            value = getattr(self, field)
            if not isinstance(value, str) or value not in registry:
                raise ValueError(f"{field}={value!r} is not a registered variant; valid: {', '.join(registry.names())}")

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
        for channels in sorted(self.attention_channels):
            if channels % self.attn_heads:
                raise ValueError(
                    f"attn_heads={self.attn_heads} does not divide the {channels} channels of an attention block; "
                    f"valid: a common divisor of {sorted(self.attention_channels)}"
                )

    # --- derived layout (shared by validation, the builder's tests and the FLOP hand count) --
    @property
    def resolutions(self) -> tuple[int, ...]:
        """Spatial size of each level, finest first."""
        return tuple(self.in_dim // 2**i for i in range(len(self.ch_mult)))

    @property
    def level_channels(self) -> tuple[int, ...]:
        return tuple(self.ch * m for m in self.ch_mult)

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
        parts = [self.upsample, self.time_injection, f"{self.attn_heads}h"]
        if self.attention != "sdpa":
            parts.append(self.attention)
        if self.checkpoint:
            parts.append("ckpt")
        return "+".join(parts)

    @property
    def hash(self) -> str:
        """Stable across processes and sessions (unlike ``hash()``): sha256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetSpec:
        """Raise ValueError naming unknown or missing fields, or a field whose value is invalid."""
        if not isinstance(data, dict):
            raise ValueError(f"a UNetSpec must be an object of fields, not {type(data).__name__} {data!r}; valid: "
                             '{"in_dim": 28, "in_ch": 1, "out_ch": 1, ...}')
        fields = dataclasses.fields(cls)
        unknown = sorted(set(data) - {f.name for f in fields})
        if unknown:
            raise ValueError(f"unknown UNetSpec field(s) {unknown}; valid: {sorted(f.name for f in fields)}")
        missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in data]
        if missing:
            raise ValueError(f"UNetSpec field(s) {missing} missing; valid: every one of "
                             f"{[f.name for f in fields if f.default is dataclasses.MISSING]} given")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> UNetSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"UNetSpec JSON {text!r} does not parse ({err}); valid: a JSON object of fields") from err
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> UNetSpec:
        return dataclasses.replace(self, **changes)


def _check_int_tuple(name: str, value: Any, allow_empty: bool) -> None:
    ok = isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok or (not allow_empty and not value):
        what = "a non-empty" if not allow_empty else "a"
        raise ValueError(f"{name}={value!r} is invalid; valid: {what} tuple of positive integers")
