"""Effects along training, across scales and across recipes, from synthetic quality tables with known effects:
the last checkpoint's effect is the final effect exactly, and each reading names what the data hold. The labels'
rules on constructed effects and fits: what "growing", "holds", "differs" and "not resolved" may be said of."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.plan.designs import grid
from bench.report.build import run_sections
from bench.report.compute.derived import Derived
from bench.report.compute.load import normalise
from bench.report.compute.robustness import (across_scales, bound_level, confidence, paper_reading, trajectories,
                                             trend_reading)
from bench.report.render.wording import recipe_reading, scale_reading
from bench.report.render.paper import paper_table
from bench.report.sections.against_edm2 import edm2_section, paper_step
from bench.report.render.document import Section, Text
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


def _ends(first, last, change):
    row = lambda e, low, high: pd.Series({"estimate": e, "ci_low": low, "ci_high": high})
    return row(*first), row(*last), row(*change) if change else None


@pytest.mark.parametrize("first, last, change, reading", [
    # EDM2's F after E at the shared recipe: +2.82 [-1.02, 6.66] at 500 steps, -1.52 [-2.99, -0.0562] at 1,500; it
    # crossed zero from within noise, and its size fell: neither "growing" nor "changes sign"
    ((2.82, -1.02, 6.66), (-1.52, -2.99, -0.0562), (-4.34, -7.9, -0.8), "not settled"),
    ((2.82, 1.02, 4.66), (-1.52, -2.99, -0.0562), (-4.34, -7.9, -0.8), "changes sign"),  # both ends resolved
    ((0.3, -1.0, 1.6), (-0.2, -1.5, 1.1), (-0.5, -2.0, 1.0), "stable"),  # a crossing within noise
    ((-0.3, -0.6, 0.0), (-2.0, -2.3, -1.7), (-1.7, -2.0, -1.4), "growing"),
    ((-8.06, -9.5, -6.6), (-3.44, -4.9, -1.97), (4.62, 3.0, 6.2), "shrinking"),
    ((-8.06, -9.5, -6.6), (-3.44, -4.9, -1.97), (4.62, -0.5, 9.7), "stable"),  # the change in size not resolved
    ((1.0, 0.5, 1.5), (1.2, 0.7, 1.7), None, "stable"),  # no fit of the change
])
def test_a_trend_grows_or_shrinks_only_with_both_ends_on_one_side_and_changes_sign_only_with_both_resolved(
        first, last, change, reading):
    assert trend_reading(*_ends(first, last, change)) == reading


def test_a_crossing_from_within_noise_reads_not_settled_in_a_fitted_table():
    derived = Derived.of_table(table({**PATHS, "upsample": (0.005, -0.8, -1.2)}))
    row = derived.trends[(derived.trends["metric"] == "fd") & (derived.trends["axis"] == "upsample")].iloc[0]
    path = trajectories(derived.effects)
    first = path[(path["axis"] == "upsample") & (path["metric"] == "fd")].iloc[0]
    assert first["estimate"] > 0 and first["ci_low"] < 0  # the constructed case: it starts within noise, above zero
    assert row["trend"] == "not settled"


def _primary(base, estimate, se, df, resolved, axis="time_injection", recipe="shared"):
    """An effects.csv row of the primary quality family and the quality model's row behind it."""
    half = stats.t.ppf(0.975, df) * se
    key = {"base_config": base, "setting": f"{base} · cpu", "recipe": recipe, "phase": "sample", "step": 1500.0,
           "metric": "fd"}
    effect = {"axis": axis, "from_level": "additive", "to_level": "film", **key, "unit": "squared_feature",
              "estimate": estimate, "ci_low": estimate - half, "ci_high": estimate + half, "n": 12, "p_value": 0.01,
              "p_adjusted": 0.02, "resolved": resolved, "method": "synthetic", "family": "primary", "bound": np.nan,
              "resolvable": np.nan}
    fit = {"factor": axis, "reference": "additive", "level": "film", **key, "estimate": estimate, "se": se, "df": df,
           "ci_low": estimate - half, "ci_high": estimate + half}
    return effect, fit


def _scales(small, large, sizes=(179_793, 736_033)):
    rows = [_primary("digits8_ch16", *small), _primary("digits8_ch32", *large)]
    effects, fits = pd.DataFrame([e for e, _ in rows]), pd.DataFrame([f for _, f in rows])
    return across_scales(effects, fits, dict(zip(("digits8_ch16", "digits8_ch32"), sizes))).iloc[0]


def test_across_scales_reads_the_difference_between_the_scales_with_its_interval():
    # the scale run's FiLM: -1.93 on the small network, -0.56 on the larger, each resolved on its own (7 residual
    # degrees of freedom each): it holds, and it is 71% smaller, about ten standard errors
    row = _scales((-1.93, 0.114, 7, True), (-0.562, 0.0806, 7, True))
    assert row["reading"] == "holds" and row["size_change"] == pytest.approx(-70.9, abs=0.1)
    difference = row["difference"]
    se = np.hypot(0.114, 0.0806)
    df = se ** 4 / (0.114 ** 4 / 7 + 0.0806 ** 4 / 7)  # Welch-Satterthwaite
    assert difference["estimate"] == pytest.approx(1.368) and difference["se"] == pytest.approx(se)
    assert difference["df"] == pytest.approx(df)
    assert difference["ci_low"] == pytest.approx(1.368 - stats.t.ppf(0.975, df) * se)
    assert bool(difference["resolved"]) and difference["estimate"] / se > 9
    assert scale_reading(row) == (f"holds, 71% smaller at the larger scale (digits8_ch32 − digits8_ch16: +1.37 "
                                  f"[{difference['ci_low']:+.3g}, {difference['ci_high']:+.3g}])")
    # the same direction and the same size within noise
    same = _scales((-1.0, 0.1, 7, True), (-1.1, 0.1, 7, True))
    assert scale_reading(same, with_difference=False) == "holds, its size not told apart between the scales"
    # resolved at one scale only is no evidence that the scales differ unless their difference is resolved
    one = _scales((-0.3, 0.2, 7, False), (-0.5, 0.1, 7, True))
    assert one["reading"] == "resolved at one scale only (digits8_ch32)" and not bool(one["difference"]["resolved"])
    assert scale_reading(one, with_difference=False) == (
        "resolved at one scale only (digits8_ch32); the scales are not told apart")
    # networks whose sizes are unknown are named, not called smaller and larger
    unknown = _scales((-1.93, 0.114, 7, True), (-0.562, 0.0806, 7, True), sizes=(np.nan, np.nan))
    assert scale_reading(unknown, with_difference=False) == "holds, 71% smaller on digits8_ch32 than on digits8_ch16"


def test_across_scales_reads_holding_reversing_and_one_scale_only():
    derived = Derived.of_table(table(bases=(("digits8_ch16", 1.0), ("digits8_ch32", -1.0))))
    scales = derived.across_scales.set_index("axis")["reading"]
    assert scales["time_injection"] == "reverses" and scales["upsample"] == "reverses"
    same = Derived.of_table(table(bases=(("digits8_ch16", 1.0), ("digits8_ch32", 1.0)))).across_scales
    assert set(same["reading"]) == {"holds"}
    assert not any(bool(d["resolved"]) for d in same["difference"])  # the same effects at both scales
    shrunk = Derived.of_table(table(bases=(("digits8_ch16", 1.0), ("digits8_ch32", 0.3)))).across_scales
    film = shrunk.set_index("axis").loc["time_injection"]
    assert film["reading"] == "holds" and film["size_change"] == pytest.approx(-70, abs=3)
    assert bool(film["difference"]["resolved"]) and film["difference"]["estimate"] == pytest.approx(1.4, abs=0.1)
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
    recipes = derived.across_recipes.set_index("axis")
    # tuned minus shared is the model fitted to each run's difference: the difference of the two effects exactly,
    # with an interval of its own
    film = recipes.loc["time_injection"]
    assert film["difference"]["estimate"] == pytest.approx(tuned["estimate"] - shared["estimate"])
    assert film["difference"]["ci_low"] > 2 and bool(film["difference"]["resolved"])
    assert recipe_reading(film).startswith("the tuned reading differs from the shared: tuned − shared +2.5")
    upsample = recipes.loc["upsample"]
    assert not bool(upsample["difference"]["resolved"])
    assert recipe_reading(upsample).startswith("the tuned and shared readings are not told apart: tuned − shared")


def test_a_report_holds_the_robustness_sections_only_when_they_apply(tmp_path):
    titles = lambda d: [s.title for s in run_sections(d, tmp_path) if isinstance(s, Section)]
    plain = titles(Derived.of_table(table()))
    assert "Effects along training" in plain and "Tuning" not in plain and "Across scales" not in plain
    assert "Against the paper (EDM2)" not in plain
    sections = run_sections(Derived.of_table(table(bases=(("digits8_ch16", 1.0), ("digits8_ch32", 1.0)), tuned=True)),
                            tmp_path)
    assert {"Tuning", "Across scales", "Effects along training"} <= {s.title for s in sections}
    # every choice sits at an edge of the two-point grid: the verdict names each (film variants at the top)
    verdict = next(s for s in sections if s.title == "Verdict")
    edges = [line for item in verdict.items if isinstance(item, Text) for line in item.lines if "best lr" in line]
    assert len(edges) == 8 and sum("film" in line and "may lie above 0.01" in line for line in edges) == 4


def _family(m: int, unresolved: dict) -> pd.DataFrame:
    """m tested primary effects, the first ``unresolved`` (its 95% interval may exclude zero: Holm did not resolve
    it), the rest resolved."""
    rows = [{"axis": "F", "family": "primary", "p_value": 1e-6, "resolved": True, "estimate": -3.0, "ci_low": -4.0,
             "ci_high": -2.0, "bound": np.nan} for _ in range(m)]
    rows[0] = {**rows[0], "p_value": 0.04, "resolved": False, **unresolved}
    return pd.DataFrame(rows)


def test_a_bound_beside_an_interval_names_its_level():
    # EDM2's F after E: -1.52 [-2.99, -0.0562] at 95%, not resolved by Holm over 15 primary tests; its bound, ±4.04,
    # is its interval at 1 - 0.05/15
    effects = _family(15, {"estimate": -1.52, "ci_low": -2.99, "ci_high": -0.0562, "bound": 4.04})
    mine = effects.iloc[0]
    assert bound_level(effects, mine) == pytest.approx(1 - 0.05 / 15) and confidence(bound_level(effects, mine)) == (
        "99.67%")
    assert paper_reading(-0.31, mine, bound_level(effects, mine)) == (
        "not resolved: no difference beyond ±4.04 (99.67% interval)")
    secondary = effects.iloc[0].copy()
    secondary["family"] = "secondary"
    assert confidence(bound_level(effects, secondary)) == "95%"
    assert paper_reading(-0.31, effects.iloc[1], bound_level(effects, effects.iloc[1])) == "reproduced"


def test_a_ladder_rung_is_read_against_the_paper_s_architecture_only_step():
    paper = paper_table("edm2")
    change, shown = paper_step(paper, "A", "C")  # our C follows A; the paper's B changes the recipe
    assert change == pytest.approx(6.96 - 7.24) and "B → C 7.24 → 6.96 (-0.28), the architecture only" in shown
    assert "A → C -1.04 includes B" in shown
    assert paper_step(paper, "C", "D") == (pytest.approx(3.75 - 6.96), "6.96 → 3.75 (-3.21)")
    # a rung better by 0.5 FD, resolved: EDM2's architecture-only step (-0.28) is better too, so it is reproduced;
    # every reading says that it holds at this scale
    effects = pd.DataFrame([
        {**_primary("digits8_ch16", -0.5, 0.1, 10, True)[0], "axis": "C", "from_level": "A", "to_level": "C"},
        {**_primary("digits8_ch16", 0.3, 0.2, 10, False)[0], "axis": "D", "from_level": "C", "to_level": "D",
         "bound": 0.9}])
    section = edm2_section(SimpleNamespace(effects=effects, rungs={"C": "...", "D": "..."}))
    frame = section.items[0].frame.set_index("rung")
    assert frame.filter(like="C after A", axis=0).iloc[0]["reading (shared recipe)"] == "reproduced"
    assert frame.filter(like="D after C", axis=0).iloc[0]["reading (shared recipe)"] == (
        "not resolved: no difference beyond ±0.9 (97.5% interval)")
    assert section.items[1].lines == ["Reproduced at this scale, shared recipe: C after A.",
                                      "Contradicted at this scale, shared recipe: none.",
                                      "Not resolved at this scale, shared recipe: D after C."]
    assert "at this scale" in section.note
