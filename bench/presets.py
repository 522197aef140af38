"""Named sweeps: what `python -m bench run --preset NAME` measures."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from variants import DEFAULT_AXES, FASHION_MNIST_BASE, UNetSpec

from .measure.rounds import RoundsBudget

# Base configurations a sweep can start from (--base NAME, or a JSON spec).
BASES: dict[str, UNetSpec] = {
    "digits8": UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=32, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8),
    "fmnist28": FASHION_MNIST_BASE,  # smalldiffusion's FashionMNIST U-Net, 4,424,833 parameters
    "cifar32": UNetSpec(in_dim=32, in_ch=3, out_ch=3, ch=128, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,)),
}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    base: str                       # key of BASES for the cost sweep
    batch_size: int
    rounds: RoundsBudget            # timing of every variant of a setting, in randomized rounds
    quality: str | None             # key of bench.quality.QUALITY_PRESETS, or None for cost only
    seeds: int                      # quality seeds per functional variant
    axes: dict[str, tuple[Any, ...]] = field(default_factory=lambda: dict(DEFAULT_AXES))
    seconds_per_cell: dict[str, float] = field(default_factory=dict)  # prior for the time-left estimate
    jobs: int = 1                   # untimed cells (quality, floor, check) at once on the local backend


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        description="seconds: 2 upsamplers x checkpointing on a tiny 8x8 U-Net, 1 quality seed; for tests and CI",
        base="digits8", batch_size=4,
        rounds=RoundsBudget(warmup=1, block_seconds=0.01, min_rounds=3, max_seconds=0.5),
        quality="smoke", seeds=1,
        axes={"upsample": DEFAULT_AXES["upsample"], "time_injection": ("additive",), "attn_heads": (1,),
              "checkpoint": (False, True)},
        seconds_per_cell={"cost": 8, "timing": 10, "quality": 10, "floor": 8, "check": 8},
    ),
    "quick": Preset(
        name="quick",
        description="minutes on a 2-core CPU: all 16 variants at the FashionMNIST shape (batch 16), counted "
                    "and timed in randomized rounds; quality of the 8 functional variants x 3 seeds on the "
                    "embedded 8x8 digits, two quality cells at a time",
        base="fmnist28", batch_size=16,
        rounds=RoundsBudget(warmup=2, block_seconds=0.1, min_rounds=10, max_seconds=270.0),
        quality="quick", seeds=3,
        seconds_per_cell={"cost": 12, "timing": 300, "quality": 70, "floor": 8, "check": 8},
        # The tiny digits U-Net gains little from a second thread (43 ms a step on 2 threads, 42 on 1 with a
        # second cell beside it): two cells of one thread each train twice as much per minute.
        jobs=2,
    ),
    "full": Preset(
        name="full",
        description="GPU scale: all 16 variants at the CIFAR-10 shape (batch 128), quality at the full preset's "
                    "data and steps, 5 seeds",
        base="cifar32", batch_size=128,
        rounds=RoundsBudget(warmup=5, block_seconds=0.5, min_rounds=20, max_seconds=900.0),
        quality="full", seeds=5,
        seconds_per_cell={"cost": 30, "timing": 960, "quality": 1800, "floor": 120, "check": 120},
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r} is not a preset; valid: {', '.join(PRESETS)}")
    return PRESETS[name]
