"""Sample quality of a U-Net variant: train briefly, sample, score against held-out real data.

The runner calls ``run_quality_cell`` per (variant, seed), ``real_floor`` per seed and
``checkpoint_equivalence`` once; each returns ``bench.schema.Measurement`` rows.
"""
from .cell import checkpoint_equivalence, real_floor, run_quality_cell, save_grid
from .config import DIGITS_BASE, MNIST_BASE, QUALITY_PRESETS, QualityConfig
from .data import DATASETS, DatasetSplits, load_dataset
from .inception import InceptionUnavailable, require_inception

__all__ = [
    "DATASETS", "DIGITS_BASE", "DatasetSplits", "InceptionUnavailable", "MNIST_BASE", "QUALITY_PRESETS",
    "QualityConfig", "checkpoint_equivalence", "load_dataset", "real_floor", "require_inception",
    "run_quality_cell", "save_grid",
]
