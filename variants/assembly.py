"""Which parts a spec's U-Net is built with: the assembly policy beside the builder.

``parts_for_spec`` starts from the smalldiffusion baseline and lets every axis configure it (``Axis.configure``)
before a single module exists, so an axis, in the package or added by a plugin, changes how blocks are built,
not a finished model. The toolbox itself (``Parts`` and its factories) is ``variants/parts.py``.
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from .attention import ATTENTIONS
from .axes import AXES
from .mp import mp_cat
from .noise_embedding import NOISE_EMBEDDINGS
from .parts import (
    Parts,
    conv,
    conv_transpose,
    group_norm,
    identity,
    linear,
    mp_attention_sum,
    mp_conv,
    mp_linear,
    mp_residual_sum,
    mp_silu_layer,
    pixel_norm,
    plain_sum,
    rescaled_sum,
    silu,
    without_bias,
)
from .time_injection import TIME_INJECTIONS
from .upsample import UPSAMPLERS

if TYPE_CHECKING:
    from .spec import UNetSpec


def baseline_parts(norm_groups: int = 32) -> Parts:
    """smalldiffusion's parts: every axis at its reference level (a block built alone, in a test)."""
    return Parts(norm=partial(group_norm, groups=norm_groups), act=silu, residual_join=plain_sum,
                 upsample=UPSAMPLERS.get(AXES["upsample"].default),
                 time_injection=TIME_INJECTIONS.get(AXES["time_injection"].default),
                 attention=ATTENTIONS.get(AXES["attention"].default),
                 noise_embedding=NOISE_EMBEDDINGS.get(AXES["noise_embedding"].default))


def parts_for_spec(spec: UNetSpec) -> Parts:
    """The baseline's parts, then each axis's level configured into them, in declaration order."""
    parts = baseline_parts(spec.norm_groups)
    for name, axis in AXES.items():
        axis.configure_parts(parts, getattr(spec, name))
    return parts


# --- how each axis without a registry of its own configures the parts (variants/spec.py declares the axes) -----
def use_residual_join(parts: Parts, level: str) -> None:
    """plain: sums; rescaled: ResnetBlock sums times 1/sqrt(2); mp_sum: EDM2's magnitude-preserving sum, in every
    ResnetBlock and attention block."""
    if level == "rescaled":
        parts.residual_join = rescaled_sum
    elif level == "mp_sum":
        parts.residual_join = mp_residual_sum
        parts.attention_join = mp_attention_sum


def use_normalization(parts: Parts, level: str) -> None:
    """group: the baseline's GroupNorms; pixel: none of them, and a pixel norm on the encoder blocks' main path;
    none: no normalisation. Without GroupNorm the output conv reads the last block directly (EDM2 dropped the
    GroupNorm -> SiLU pair before it with the group norms)."""
    if level == "group":
        return
    parts.norm = identity
    parts.normalized = False
    if level == "pixel":
        parts.main_norm = pixel_norm


def use_layers(parts: Parts, level: str) -> None:
    """standard: torch's conv and linear layers with biases; no_bias: the same without any bias; mp, mp_forced:
    EDM2's weight-normalised layers (no bias, unit-normal init), mp_forced also renormalising the stored weights
    in every training-mode forward."""
    if level == "no_bias":
        parts.conv, parts.conv_transpose, parts.linear = (without_bias(f) for f in (conv, conv_transpose, linear))
    elif level in ("mp", "mp_forced"):
        forced = level == "mp_forced"
        parts.conv, parts.linear, parts.conv_transpose = mp_conv(forced), mp_linear(forced), None


def use_act(parts: Parts, level: str) -> None:
    if level == "mp_silu":
        parts.act = mp_silu_layer


def use_skip_join(parts: Parts, level: str) -> None:
    if level == "mp_cat":
        parts.skip_join = mp_cat
