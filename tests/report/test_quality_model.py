"""The quality model: known main effects recovered from synthetic quality tables of a fractional design with
seed blocks, its intervals against an independent statsmodels formula fit, and the primary family's bounds."""
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from bench.plan.designs import grid
from bench.report.compute.derived import Derived
from bench.report.compute.load import normalise
from bench.report.compute.quality_model import seed_blocked_model
from bench.schema import columns
from variants import AXES, BASES

AXES_ADM = {"attn_heads": (1, 4), "attn_resolutions": ((4,), (8, 4)), "time_injection": ("additive", "film"),
            "resblock_updown": (False, True), "residual_join": ("plain", "rescaled")}
TRUE = {"attn_heads": -0.3, "attn_resolutions": 0.0, "time_injection": -1.5, "resblock_updown": 0.8,
        "residual_join": 0.0}
SEED_OFFSETS = (0.0, 2.0, -1.5, 0.7)  # a seed that trains every variant better or worse: the block


def quality_table(noise: float = 0.15, seed: int = 0, seeds=SEED_OFFSETS) -> pd.DataFrame:
    """FD of the 16 runs of ADM's fractional design x 4 seeds: 3 + the true main effects + the seed's offset +
    noise, and a real-versus-real floor."""
    rng = np.random.default_rng(seed)
    rows = []
    for spec in grid(BASES["digits8_ch16"], "fractional", **AXES_ADM):
        fd = 3.0 + sum(effect for name, effect in TRUE.items() if getattr(spec, name) != AXES_ADM[name][0])
        for s, offset in enumerate(seeds):
            rows.append(_row(spec, "quality", s, fd + offset + rng.normal(0, noise)))
    rows += [_row(None, "floor", s, 1.8 + rng.normal(0, 0.1)) for s in range(len(seeds))]
    return normalise(pd.DataFrame(rows, columns=list(columns())))


def _row(spec, kind, seed, value):
    row = dict.fromkeys(columns(), "")
    row.update({name: (axis.cell(getattr(spec, name)) if spec else axis.empty) for name, axis in AXES.items()})
    row.update(run_id="synthetic", cell_id=f"{kind}-{spec.name if spec else 'real'}-{seed}", kind=kind,
               variant=spec.name if spec else "real", device="cpu", dtype="float32", threads=1, batch_size=0,
               base_config="digits8_ch16", dataset="digits", block="total", repeat=0, seed=seed, step=pd.NA, n=250,
               status="ok", message="", method="synthetic", phase="sample", metric="fd", value=value, unit="fd")
    return row


def test_every_known_main_effect_is_recovered_from_the_fractional_design_despite_the_seed_blocks():
    effects = Derived.of_table(quality_table()).effects.set_index("axis")
    assert set(effects.index) == set(TRUE)
    for axis, true in TRUE.items():
        row = effects.loc[axis]
        assert row["ci_low"] <= true <= row["ci_high"], axis
        assert row["estimate"] == pytest.approx(true, abs=0.15) and row["n"] == 64
        assert row["resolved"] == (true != 0)  # the nulls stay unresolved, the real ones resolve
        assert row["family"] == "primary"
    # the seed offsets (SD ~1.5) are blocked out: the intervals reflect the 0.15 noise alone
    assert (effects["ci_high"] - effects["ci_low"]).max() < 0.25


def test_without_the_seed_block_the_same_data_would_give_intervals_ten_times_wider():
    frame = Derived.of_table(quality_table()).quality_values
    blocked = seed_blocked_model(frame, list(AXES_ADM), {k: AXES[k].cell(v[0]) for k, v in AXES_ADM.items()})
    pooled = smf.ols("value ~ C(attn_heads) + C(attn_resolutions) + C(time_injection) + C(resblock_updown) "
                     "+ C(residual_join)", data=_plain(frame)).fit()
    assert blocked["se"].max() * 5 < pooled.bse.iloc[1:].min()


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Numpy dtypes for patsy: axis levels as text, values as floats."""
    return frame.assign(value=frame["value"].astype(float), seed=frame["seed"].astype(int),
                        **{axis: frame[axis].astype(str) for axis in AXES_ADM})


def test_the_model_s_intervals_are_statsmodels_formula_fit_s():
    frame = Derived.of_table(quality_table(noise=0.5, seed=3)).quality_values
    frame = _plain(frame)
    ours = seed_blocked_model(frame, list(AXES_ADM), {k: AXES[k].cell(v[0]) for k, v in AXES_ADM.items()})
    formula = smf.ols("value ~ C(attn_heads) + C(attn_resolutions) + C(time_injection) + C(resblock_updown) "
                      "+ C(residual_join) + C(seed)", data=frame).fit()
    intervals = formula.conf_int(0.05)
    for term, row in zip(formula.params.index[1:6], ours.itertuples()):
        assert term.startswith(f"C({row.factor})")
        assert (row.estimate, row.ci_low, row.ci_high, row.p_value, row.df) == pytest.approx(
            (formula.params[term], *intervals.loc[term], formula.pvalues[term], formula.df_resid))


def test_an_unresolved_primary_effect_is_bounded_by_its_family_adjusted_interval():
    effects = Derived.of_table(quality_table()).effects.set_index("axis")
    null = effects.loc["residual_join"]
    m = (effects["family"] == "primary").sum()
    from scipy import stats

    se = (null["ci_high"] - null["ci_low"]) / (2 * stats.t.ppf(0.975, 64 - 1 - 5 - 3))
    adjusted = abs(null["estimate"]) + stats.t.ppf(1 - 0.025 / m, 64 - 1 - 5 - 3) * se
    assert null["bound"] == pytest.approx(adjusted) and null["bound"] > max(abs(null["ci_low"]), abs(null["ci_high"]))
    # the smallest resolvable effect: (t at Holm's first step + t at 80% power) standard errors
    assert null["resolvable"] == pytest.approx((stats.t.ppf(1 - 0.025 / m, 55) + stats.t.ppf(0.8, 55)) * se)


def test_too_few_runs_leave_an_effect_estimated_but_untested():
    # two seeds of two variants: one residual degree of freedom is enough, one seed of two variants is not
    table = quality_table(seeds=(0.0,))
    first_two = table[table["variant"].isin(sorted(set(table["variant"]) - {"real"})[:2]) | (table["kind"] == "floor")]
    effects = Derived.of_table(first_two).effects
    assert effects["ci_low"].isna().all() and not effects["resolved"].any()


def test_the_report_states_the_design_s_aliasing_and_reads_adm_s_table_beside_ours(tmp_path):
    from bench.report import write_report
    from bench.report.sections.against_paper import adm_table

    table = quality_table()
    root = tmp_path / "fractional"
    root.mkdir()
    table.to_parquet(root / "metrics.parquet", index=False)
    write_report([root])
    markdown = (root / "report.md").read_text()
    design = markdown.split("## Design and aliasing")[1].split("\n## ")[0]
    assert "16 variants, 4 seeds each" in design and "fractional factorial of resolution V" in design
    assert "attn_heads×attn_resolutions = time_injection×resblock_updown×residual_join" in design
    paper = markdown.split("## Against the paper (ADM)")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip() + line.split("|")[3].strip(): line.split("|")[6].strip()
            for line in paper.splitlines() if line.startswith("| Table")}
    assert rows["Table 3: AdaGN-2.02 (of 15.08)"] == "reproduced"              # FiLM -1.5, ADM -2.02
    assert rows["Table 1: BigGAN up/downsampling-1.2 (of 15.33, at 700K steps)"] == "contradicted"  # +0.8 here
    assert rows["Table 1: rescale residual by 1/sqrt(2)+0.16 (of 15.33, at 700K steps)"].startswith(
        "not resolved: no difference beyond ±")
    assert "Contradicted at this scale: Table 1: BigGAN up/downsampling." in paper
    assert adm_table()["source"].str.contains("arXiv:2105.05233").all()
