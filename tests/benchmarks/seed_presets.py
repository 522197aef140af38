"""Imported by the seed-throughput benchmark's workers (as a plugin): the quick quality preset cut to
``BENCH_SEED_STEPS`` training steps, so the benchmark can be sized; unset, the quick preset as it is."""
import os

from bench.plan.quality_presets import QUALITY_PRESETS

STEPS = int(os.environ.get("BENCH_SEED_STEPS", QUALITY_PRESETS["quick"].train_steps))
PRESET = f"quick_{STEPS}_steps"
QUALITY_PRESETS[PRESET] = QUALITY_PRESETS["quick"].replace(train_steps=STEPS,
                                                           eval_every=min(STEPS, QUALITY_PRESETS["quick"].eval_every))
