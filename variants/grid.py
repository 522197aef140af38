"""Full-factorial sweeps over the ablation axes."""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

from .spec import AXES, UNetSpec

# The default sweep: 2 x 2 x 2 x 2 = 16 variants.
DEFAULT_AXES: dict[str, tuple[Any, ...]] = {
    "upsample": ("nearest_conv", "conv_transpose"),
    "time_injection": ("additive", "film"),
    "attn_heads": (1, 4),
    "checkpoint": (False, True),
}

# smalldiffusion's FashionMNIST U-Net: the default base of the cost sweep.
FASHION_MNIST_BASE = UNetSpec(in_dim=28, in_ch=1, out_ch=1, ch=64, ch_mult=(1, 1, 2), attn_resolutions=(14,))


def grid(base: UNetSpec = FASHION_MNIST_BASE, **axes: Iterable[Any]) -> Iterator[UNetSpec]:
    """Iterate over one spec per combination of axis values, everything else taken from ``base``.

    Axes not given take their values from ``DEFAULT_AXES``; pass a single value to hold one fixed.
    Every spec is validated when ``grid`` is called, so a bad value fails before any work.
    """
    unknown = sorted(set(axes) - set(AXES))
    if unknown:
        raise ValueError(f"unknown axis {unknown}; valid axes: {', '.join(AXES)}")
    values = {axis: tuple(axes.get(axis, DEFAULT_AXES[axis])) for axis in AXES}
    for axis, vals in values.items():
        if not vals:
            raise ValueError(f"{axis}: no values given; valid: at least one, e.g. {DEFAULT_AXES[axis]}")
    specs = [base.replace(**dict(zip(AXES, combo))) for combo in itertools.product(*values.values())]
    return iter(specs)
