"""Blocks that cannot be built with a spec's other levels, found by what each block builds with, not by its name.

A registered block declares, in ``needs_parts``, the parts it builds with that some levels leave out:
``conv_transpose`` (EDM2's magnitude-preserving layers have no transposed convolution) or ``norm`` (a spec
without normalisation has the identity there, and a FiLM-style injection has nothing to modulate). A spec whose
parts lack one is refused naming both axes, so a plugin's block is checked as a built-in one is.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .assembly import baseline_parts, parts_for_spec
from .axes import AXES, Axis
from .parts import Parts, identity

if TYPE_CHECKING:
    from .spec import UNetSpec

# What each part a level may leave out is, for the refusal's wording.
OPTIONAL_PARTS = {"conv_transpose": "a transposed convolution", "norm": "a normalisation"}


def check_needed_parts(spec: UNetSpec) -> None:
    """Raise ValueError when a block the spec names needs a part its other levels leave out."""
    parts = parts_for_spec(spec)
    for name, declared in AXES.items():
        if declared.registry is None:
            continue
        value = getattr(spec, name)
        for part in needed_parts(declared, value):
            if _missing(parts, part):
                raise ValueError(_refusal(spec, name, value, part))


def needed_parts(declared: Axis, value: str) -> tuple[str, ...]:
    """The optional parts the block registered as ``value`` builds with (none declared: none)."""
    needs = getattr(declared.registry.get(value), "needs_parts", ())
    unknown = [part for part in needs if part not in OPTIONAL_PARTS]
    if unknown:
        raise ValueError(f"{declared.name}={value!r} declares needs_parts={tuple(needs)!r}; valid: parts among "
                         f"{', '.join(OPTIONAL_PARTS)}")
    return tuple(needs)


def _missing(parts: Parts, part: str) -> bool:
    return getattr(parts, part) in (None, identity)


def _leaves_out(declared: Axis, level: Any, part: str, spec: UNetSpec) -> bool:
    """Whether ``level`` of this axis alone, on the baseline's parts, leaves ``part`` out."""
    parts = baseline_parts(spec.norm_groups)
    declared.configure_parts(parts, level)
    return _missing(parts, part)


def _refusal(spec: UNetSpec, name: str, value: str, part: str) -> str:
    declared = AXES[name]
    blocks = [v for v in declared.registry.names() if part not in needed_parts(declared, v)]
    cause = next((axis for axis in AXES.values() if axis.name != name and
                  _leaves_out(axis, getattr(spec, axis.name), part, spec)), None)
    what = f"{OPTIONAL_PARTS[part]} (parts.{part})"
    if cause is None:  # only several levels together leave it out
        return (f"{name}={value!r} is invalid with this spec: it builds with {what}, which the spec's other levels "
                f"leave out; valid: {name} one of {', '.join(blocks)}")
    level = getattr(spec, cause.name)
    others = [v for v in cause.values if not _leaves_out(cause, v, part, spec)]
    return (f"{name}={value!r} is invalid with {cause.name}={level!r}: it builds with {what}, which "
            f"{cause.name}={level!r} leaves out; valid: {name} one of {', '.join(blocks)}, or {cause.name} one of "
            f"{', '.join(map(str, others))}")
