"""Sample quality of a U-Net variant: train briefly, sample, score against held-out real data.

The worker calls ``run_quality_cell`` per (variant, seed) (``run_quality_seeds`` per variant and group of seeds
trained together), ``real_floor`` per seed and
``checkpoint_equivalence`` once; each returns ``bench.schema.Measurement`` rows. What a cell does (data,
steps, sampler, scoring sizes) is its quality preset: bench/plan/quality_presets.py.
"""
from bench.measure.quality.inception import InceptionUnavailable, require_inception

_CELLS = ("checkpoint_equivalence", "real_floor", "run_quality_cell", "run_quality_seeds", "save_grid")
_DATA = ("DatasetSplits", "load_dataset")
__all__ = ["InceptionUnavailable", "require_inception", *_CELLS, *_DATA]


def __getattr__(name: str) -> object:
    # The training and scoring code (torchmetrics, torchvision) is imported when first asked for, not by every
    # process that only checks for the Inception weights: the command line starts a second sooner.
    if name in _CELLS:
        from bench.measure.quality import cells
        return getattr(cells, name)
    if name in _DATA:
        from bench.measure.quality import data
        return getattr(data, name)
    raise AttributeError(f"module 'bench.measure.quality' has no attribute {name!r}")
