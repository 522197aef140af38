"""Imported by the seed-throughput benchmark's workers (as a plugin): the quick quality preset cut to
``BENCH_SEED_STEPS`` training steps (default 300, a fifth of the quick preset's, so `pytest --benchmark-only` stays
short; 1500 is the quick preset as it is)."""
import os

from bench.plan.quality_presets import QUALITY_PRESETS

STEPS = int(os.environ.get("BENCH_SEED_STEPS", "300"))
PRESET = f"quick_{STEPS}_steps"
QUALITY_PRESETS[PRESET] = QUALITY_PRESETS["quick"].replace(train_steps=STEPS,
                                                           eval_every=min(STEPS, QUALITY_PRESETS["quick"].eval_every))
