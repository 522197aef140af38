"""`bench report A B` reads each time effect with both runs' own intervals: two runs of the same code, with the
same true effects, agree within them as often as the intervals promise; a real change between them is found."""
import numpy as np
import pandas as pd

from bench.report.compute.run_ratios import effect_differences
from bench.schema import SECONDS_PER_ITER, Kind, references
from bench.statistics.rounds_model import timing_effects
from variants import AXES

ROUNDS, PAIRS = 15, 40
TRUE_PERCENT = {"upsample": 5.0, "time_injection": 0.0}  # a known effect and a known null
MODELS = [("nearest_conv", "additive"), ("conv_transpose", "additive"), ("nearest_conv", "film"),
          ("conv_transpose", "film")]
BLOCK_SD, ROUND_SD = 0.02, 0.05  # log scale: 2.5% per block, 5% drift shared by a round (the model takes it out)


def synthetic_round(rng: np.random.Generator, index: int, true: dict[str, float] = TRUE_PERCENT) -> pd.DataFrame:
    """One round of the four models' training-step blocks, with ``true`` effects in %."""
    shared = rng.normal(0, ROUND_SD)
    rows = []
    for upsample, time_injection in MODELS:
        effect = np.log1p(true["upsample"] / 100) * (upsample != "nearest_conv") + \
            np.log1p(true["time_injection"] / 100) * (time_injection != "additive")
        rows.append(references() | dict(upsample=upsample, time_injection=time_injection, kind=Kind.TIMING,
                                        status="ok", metric=SECONDS_PER_ITER, peer="", cell_id="synthetic",
                                        repeat=index, process=0, base_config="base", setting="cpu", phase="train_step",
                                        replica=0, rung="", rung_index=None, variant=f"{upsample}+{time_injection}",
                                        value=0.1 * np.exp(shared + effect + rng.normal(0, BLOCK_SD))))
    return pd.DataFrame(rows)


def synthetic_run(seed: int, true: dict[str, float] = TRUE_PERCENT) -> pd.DataFrame:
    """A run's timing effects: ROUNDS synthetic rounds (a +5% effect and a null by default) through its model."""
    rng = np.random.default_rng(seed)
    rounds = pd.concat([synthetic_round(rng, i, true) for i in range(ROUNDS)])
    return timing_effects(rounds, tuple(AXES), references())


def test_two_runs_with_the_same_true_effects_agree_within_their_intervals():
    pairs = [effect_differences(synthetic_run(2 * k), synthetic_run(2 * k + 1)) for k in range(PAIRS)]
    assert all(set(p["factor"]) == set(TRUE_PERCENT) for p in pairs)  # every effect matched, each run's own interval
    both = pd.concat(pairs)
    covered = ((both["low"] <= 0) & (0 <= both["high"])).mean()
    # a nominal 95% (a t-interval over 15 rounds); the difference of two such intervals, no less
    assert covered >= 0.85, covered
    # Holm over each pair's effects: a pair of runs of the same code is called different about 5% of the time
    called = np.mean([p["differs"].any() for p in pairs])
    assert called <= 0.15, called


def test_a_real_change_between_the_runs_is_found_and_the_unchanged_effect_is_not():
    before = synthetic_run(1000)
    after = synthetic_run(1001, true=TRUE_PERCENT | {"upsample": 10.0})  # +5% became +10%
    differences = effect_differences(before, after).set_index("factor")
    assert differences.loc["upsample", "differs"] and not differences.loc["time_injection", "differs"]
    assert differences.loc["upsample", "low"] > 0  # B's effect over A's: about (1.10 / 1.05) - 1 = +4.8%
    assert abs(differences.loc["upsample", "difference"] - 100 * (1.10 / 1.05 - 1)) < 2
