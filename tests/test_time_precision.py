"""Timing rounds stop at a precision: the rule looks at interval widths only, so on synthetic rounds with known
effects it stops at different round counts yet leaves the estimates unbiased and covers the truth as often as the
same model does at a fixed number of rounds."""
import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.measure.timing_cell import stop_reason
from bench.plan.sweep import RoundsBudget
from bench.report.compute.frames import references
from bench.report.compute.rounds_model import timing_effects, widest_half_width
from bench.schema import SECONDS_PER_ITER, Kind
from variants import AXES

TRUE_PERCENT = {"upsample": 5.0, "time_injection": 0.0}  # a known effect and a known null
MODELS = [("nearest_conv", "additive"), ("conv_transpose", "additive"), ("nearest_conv", "film"),
          ("conv_transpose", "film")]
BLOCK_SD, ROUND_SD = 0.02, 0.05  # log scale: 2.5% per block, 5% drift shared by a round (the model takes it out)
BUDGET = RoundsBudget(min_rounds=10, max_seconds=60, precision=1.0)  # one simulated second per round
N_RESAMPLES = 199
RUNS = 80


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


def simulate(seed: int, fixed_rounds: int | None = None) -> tuple[pd.DataFrame, int, str]:
    """What a timing cell does, on synthetic rounds: a round, then the rule, until it says stop (or, for the
    comparison, ``fixed_rounds`` rounds whatever the widths)."""
    rng = np.random.default_rng(seed)
    frames = []
    while True:
        frames.append(synthetic_round(rng, len(frames)))
        if fixed_rounds and len(frames) < fixed_rounds:
            continue
        effects = timing_effects(pd.concat(frames), tuple(AXES), references(), n_resamples=N_RESAMPLES)
        if fixed_rounds:
            return effects, len(frames), "fixed"
        reached = widest_half_width(effects) if len(frames) >= BUDGET.min_rounds else float("nan")
        why = stop_reason(BUDGET, len(frames), float(len(frames)), reached)
        if why:
            return effects, len(frames), why


def coverage_and_bias(runs: list) -> tuple[float, dict[str, float]]:
    fits = pd.concat([effects[effects["factor"].isin(list(TRUE_PERCENT))] for effects, _, _ in runs])
    true = fits["factor"].map(TRUE_PERCENT)
    covered = ((fits["ci_low"] <= true) & (true <= fits["ci_high"])).mean()
    return covered, (fits["estimate"] - true).groupby(fits["factor"]).mean().to_dict()


def test_stopping_on_the_width_leaves_the_estimates_unbiased_and_the_coverage_of_a_fixed_count():
    sequential = [simulate(seed) for seed in range(RUNS)]
    rounds = np.array([n for _, n, _ in sequential])
    assert rounds.min() >= BUDGET.min_rounds and rounds.max() > rounds.min() + 5  # the rule decided, run by run
    assert {why for _, _, why in sequential} == {"precision"}  # all within the cap here, each at the target
    for effects, _, _ in sequential:
        main = effects[effects["factor"].isin(list(TRUE_PERCENT))]
        assert ((main["ci_high"] - main["ci_low"]) / 2 <= BUDGET.precision).all()
    fixed = [simulate(RUNS + seed, fixed_rounds=int(np.median(rounds))) for seed in range(RUNS)]
    (covered, bias), (covered_fixed, _) = coverage_and_bias(sequential), coverage_and_bias(fixed)
    # the estimate's SD is about 0.5 points here, so 0.15 is ~2.7 standard errors of a mean over 80 runs
    assert all(abs(b) < 0.15 for b in bias.values()), bias
    # The percentile bootstrap over 10-30 rounds covers about 90%, not 95%, at a fixed count too (few clusters);
    # what the stopping rule must not do is cover less than that.
    assert covered >= covered_fixed - 0.05 and covered >= 0.85, (covered, covered_fixed)


def test_the_rounds_stop_at_the_cap_when_the_target_is_out_of_reach_and_never_before_the_minimum():
    assert stop_reason(BUDGET, 9, 100.0, 0.1) is None  # below min_rounds: go on, precise or late
    assert stop_reason(BUDGET, 10, 5.0, 0.99) == "precision"
    assert stop_reason(BUDGET, 10, 5.0, float("nan")) is None  # no interval yet
    assert stop_reason(BUDGET, 30, 60.0, 1.6) == "cap"
    assert stop_reason(BUDGET, 30, 59.0, 1.6) is None


def test_the_widest_half_width_is_of_the_main_effects_and_the_control_only_alone():
    effects = pd.DataFrame({"metric": SECONDS_PER_ITER, "factor": ["upsample", "time_injection", "control"],
                            "ci_low": [3.0, -0.5, -4.0], "ci_high": [5.0, 0.7, 4.0]})
    assert widest_half_width(effects) == 1.0
    assert widest_half_width(effects[effects["factor"] == "control"]) == 4.0
    assert np.isnan(widest_half_width(effects.assign(ci_low=[3.0, np.nan, -4.0])))


@pytest.mark.parametrize("value", ["0", "-1", "inf"])
def test_a_bad_precision_is_refused_before_any_work(tmp_path, capsys, value):
    assert main(["run", "--preset", "smoke", "--precision", value, "--out", str(tmp_path / "run")]) == 2
    assert f"--precision {float(value):g} is invalid; valid: percentage points, a positive number" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_verdict_says_how_each_timing_cell_s_rounds_stopped():
    from bench.report.sections.verdict import precision_sentences

    def cell(cell_id, base, target, reached, rounds, why):
        common = dict(kind=Kind.TIMING, cell_id=cell_id, base_config=base, setting="cpu", phase="group", n=rounds,
                      status="ok")
        asked = common | dict(metric="time_precision_target", value=target, message="")
        return [asked] + ([common | dict(metric="time_precision", value=reached, message=why)] if why else [])

    table = pd.DataFrame(cell("a", "digits8", 1.0, 0.84, 41, "precision") + cell("b", "fmnist28", 1.0, 1.63, 14, "cap")
                         + cell("c", "tiny", 0.5, None, 3, None)
                         + cell("d", "edm2", 1.0, 2.5, 12, "every member failed"))
    table.loc[table["cell_id"] == "c", "setting"] = "tiny · cpu"  # a run of several networks names it already
    assert precision_sentences(table) == [
        "Timing precision on digits8 · cpu: reached ±0.84% in 41 rounds (asked ±1%).",
        # 14 rounds at ±1.63% make 14 x 1.63^2 = 37.2: at least 38 rounds for ±1%
        "Timing precision on fmnist28 · cpu: stopped at the cap after 14 rounds with ±1.6%: not the ±1% asked for, "
        "which at this noise needs at least 38 rounds.",
        "Timing precision on tiny · cpu: no interval after 3 rounds (the model gives one from 10), none of the ±0.5% "
        "asked for.",
        "Timing precision on edm2 · cpu: ±2.5% after 12 rounds, when every member failed: not the ±1% asked for."]
