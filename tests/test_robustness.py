"""Effects along training, across scales and across recipes, from synthetic quality tables with known effects:
the last checkpoint's effect is the final effect exactly, and each reading names what the data hold."""
import numpy as np
import pandas as pd
import pytest

from bench.plan.designs import grid
from bench.report.build import run_sections
from bench.report.compute.derived import Derived
from bench.report.compute.load import normalise
from bench.report.compute.robustness import trajectories
from bench.report.render.document import Section
from bench.schema import ALONG_TRAINING, columns
from variants import AXES, BASES

LEVELS = {"time_injection": ("additive", "film"), "attn_heads": (1, 4), "upsample": ("nearest_conv", "conv_transpose")}
STEPS = (500, 1000, 1500)
# FD effect of each switch at each checkpoint: one that grows, one that flips, one that stays
PATHS = {"time_injection": (-0.3, -1.0, -2.0), "attn_heads": (1.5, 0.0, -1.5), "upsample": (0.8, 0.8, 0.8)}
SEEDS = (0.0, 1.0, -0.5, 0.4)


def _row(spec, seed, phase, step, metric, value, base="digits8_ch16", lr=4e-3, kind="quality"):
    row = dict.fromkeys(columns(), "")
    row.update({name: axis.cell(getattr(spec, name)) for name, axis in AXES.items()})
    row.update(run_id="synthetic", cell_id=f"{kind}-{spec.name}-{seed}-{lr}", kind=kind, variant=spec.name,
               device="cpu", dtype="float32", threads=1, batch_size=64, base_config=base, quality_preset="quick",
               dataset="digits", block="total", repeat=0, seed=seed, step=step, n=250, status="ok", message="",
               method="synthetic", phase=phase, metric=metric, value=value, unit=metric, lr=lr,
               lr_schedule="constant", weight_decay=0.01, ema_decay=0.99)
    return row


def table(paths=PATHS, bases=(("digits8_ch16", 1.0),), noise=0.05, seed=0, tuned=False) -> pd.DataFrame:
    """FD at every checkpoint of a 2x2x2 factorial x 4 seeds on each base (its effects scaled by the factor),
    the held-out loss along the curve; with ``tuned``, tuning rows choosing lr 0.01 for film variants and the
    final runs there (which read time_injection's effect as +0.5 instead)."""
    rng = np.random.default_rng(seed)
    rows = []
    for base, scale in bases:
        for spec in grid(BASES["digits8_ch16"], "factorial", **LEVELS):
            for s, offset in enumerate(SEEDS):
                for i, step in enumerate(STEPS):
                    fd = 3 + offset + rng.normal(0, noise) + scale * sum(
                        path[i] for name, path in paths.items() if getattr(spec, name) != LEVELS[name][0])
                    phase = "sample" if step == STEPS[-1] else ALONG_TRAINING
                    rows.append(_row(spec, s, phase, step, "fd", fd, base))
                    rows.append(_row(spec, s, "train", step, "heldout_loss", fd / 10, base))
                film = spec.time_injection == "film"
                if tuned and base == bases[0][0]:
                    rows.append(_row(spec, 10_000, "sample", STEPS[-1], "fd", 1.0 if film else 2.0, base, 1e-2,
                                     "tune"))
                    rows.append(_row(spec, 10_000, "sample", STEPS[-1], "fd", 2.0 if film else 1.0, base, 4e-3,
                                     "tune"))
                    if film:  # the final runs of film variants at their chosen lr
                        fd = 3 + offset + 0.5 + rng.normal(0, noise) + sum(
                            p[-1] for name, p in paths.items() if name != "time_injection"
                            and getattr(spec, name) != LEVELS[name][0])
                        rows.append(_row(spec, s, "sample", STEPS[-1], "fd", fd, base, 1e-2))
    return normalise(pd.DataFrame(rows, columns=list(columns())))


def test_the_effect_at_the_last_checkpoint_is_the_final_effect_exactly():
    effects = Derived.of_table(table()).effects
    paths = trajectories(effects)
    for (axis, metric), path in paths.groupby(["axis", "metric"]):
        assert list(path["step"]) == list(STEPS)
        last = path.iloc[-1]
        final_phase = "sample" if metric == "fd" else "train (final step)"
        final = effects[(effects["axis"] == axis) & (effects["metric"] == metric) & (effects["phase"] == final_phase)]
        assert len(final) == 1
        for column in ("estimate", "ci_low", "ci_high", "p_value"):
            assert last[column] == final.iloc[0][column]
    fd = paths[paths["metric"] == "fd"]
    for axis, true in PATHS.items():
        estimates = fd.loc[fd["axis"] == axis, "estimate"].to_numpy()
        assert estimates == pytest.approx(true, abs=0.1)


def test_each_switch_is_read_stable_growing_or_changing_sign_and_unsettled_when_it_still_moves():
    trends = Derived.of_table(table()).trends
    fd = trends[trends["metric"] == "fd"].set_index("axis")
    assert fd.loc["time_injection", "trend"] == "growing" and not fd.loc["time_injection", "settled"]
    assert fd.loc["attn_heads", "trend"] == "changes sign" and not fd.loc["attn_heads", "settled"]
    assert fd.loc["upsample", "trend"] == "stable" and fd.loc["upsample", "settled"]
    shrinking = Derived.of_table(table({**PATHS, "upsample": (2.0, 1.0, 0.9)})).trends
    row = shrinking[(shrinking["metric"] == "fd") & (shrinking["axis"] == "upsample")].iloc[0]
    assert row["trend"] == "shrinking"


def test_across_scales_reads_holding_reversing_and_one_scale_only():
    derived = Derived.of_table(table(bases=(("digits8_ch16", 1.0), ("digits8_ch32", -1.0))))
    scales = derived.across_scales.set_index("axis")["reading"]
    assert scales["time_injection"] == "reverses" and scales["upsample"] == "reverses"
    same = Derived.of_table(table(bases=(("digits8_ch16", 1.0), ("digits8_ch32", 1.0)))).across_scales
    assert set(same["reading"]) == {"holds across scales"}
    flat = {**PATHS, "upsample": (0.0, 0.0, 0.0)}
    one = Derived.of_table(table(flat, bases=(("digits8_ch16", 1.0), ("digits8_ch32", 0.0)))).across_scales
    assert one.set_index("axis").loc["time_injection", "reading"] == "resolved at one scale only (digits8_ch16)"
    assert one.set_index("axis").loc["upsample", "reading"] == "resolved at neither scale"


def test_the_tuned_reading_scores_each_variant_at_its_choice_and_says_when_it_disagrees():
    derived = Derived.of_table(table(tuned=True))
    chosen = derived.tuning.set_index("variant")["lr"]
    assert {v: lr for v, lr in chosen.items()} == {
        v: (1e-2 if "film" in v else 4e-3) for v in chosen.index}
    effects = derived.effects
    primary = effects[(effects["family"] == "primary") & (effects["metric"] == "fd")]
    assert set(primary["recipe"]) == {"shared", "tuned"}
    tuned = primary[(primary["recipe"] == "tuned") & (primary["axis"] == "time_injection")].iloc[0]
    shared = primary[(primary["recipe"] == "shared") & (primary["axis"] == "time_injection")].iloc[0]
    assert tuned["estimate"] == pytest.approx(0.5, abs=0.1) and shared["estimate"] == pytest.approx(-2.0, abs=0.1)
    agreement = derived.across_recipes.set_index("axis")["agreement"]
    assert agreement["time_injection"] == "disagree: opposite directions"
    assert agreement["upsample"] == "agree"


def test_a_report_holds_the_robustness_sections_only_when_they_apply(tmp_path):
    titles = lambda d: [s.title for s in run_sections(d, tmp_path) if isinstance(s, Section)]
    plain = titles(Derived.of_table(table()))
    assert "Effects along training" in plain and "Tuning" not in plain and "Across scales" not in plain
    assert "Against the paper (EDM2)" not in plain
    both = titles(Derived.of_table(table(bases=(("digits8_ch16", 1.0), ("digits8_ch32", 1.0)), tuned=True)))
    assert {"Tuning", "Across scales", "Effects along training"} <= set(both)
