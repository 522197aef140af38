"""Designs: the fractional factorial's runs, generator, resolution and aliasing; specs that build the same network,
found before any work."""
import itertools

import numpy as np
import pytest
from pydoe import fracfact, fracfact_aliasing

from bench.plan.designs import grid
from bench.plan.designs.duplicates import distinct_networks
from bench.plan.designs.fractional import aliasing, resolution, resolve_generator, runs
from bench.plan.options import SweepOptions
from bench.plan.planner import make_plan
from bench.plan.sweep import PRESETS, sweep_from_dict
from variants import BASES

ADM_AXES = {"attn_heads": (1, 4), "attn_resolutions": ((4,), (8, 4)), "time_injection": ("additive", "film"),
            "resblock_updown": (False, True), "residual_join": ("plain", "rescaled")}
DIGITS = BASES["digits8_ch16"]


@pytest.mark.parametrize("factors", [3, 4, 5, 6, 7, 8, 9])
def test_the_default_generator_reaches_resolution_iv_in_the_fewest_runs(factors):
    design = runs(resolve_generator(factors))
    fewest = next(2 ** k for k in itertools.count(1) if 2 ** k >= 2 * factors)  # res IV needs 2n runs at least
    assert design.shape == (fewest, factors) and (design == -1).all(axis=1).any()
    assert resolution(design) is None if fewest == 2 ** factors else resolution(design) >= 4
    assert (design.sum(0) == 0).all() and np.allclose(design.T @ design, len(design) * np.eye(factors))  # orthogonal


def test_five_factors_get_the_resolution_v_half_fraction():
    generator = resolve_generator(5)
    assert generator == "a b c d -abcd" and resolution(runs(generator)) == 5
    assert (runs(generator) == -1).all(axis=1).any()  # the baseline is one of the runs
    assert aliasing(runs(generator), list("ABCDE"), max_order=2) == []  # no two-factor interaction aliased


def test_aliasing_names_the_chains_of_pydoe_up_to_the_order_asked():
    design = fracfact("a b c d bcd acd")  # 2^(6-2), resolution IV
    names = list("ABCDEF")
    chains = aliasing(design, names)
    assert "A = B×E×F = C×D×F" in chains  # main effects free of two-factor interactions: resolution IV
    assert "A×F = B×E = C×D" in aliasing(design, names, max_order=2)  # two-factor interactions aliased together
    pydoe_chains, _ = fracfact_aliasing(design)
    letters = dict(zip("abcdef", names))
    expected = [" = ".join("×".join(letters[c] for c in t) for t in chain.split(" = ") if len(t) <= 3)
                for chain in pydoe_chains]
    assert sorted(chains) == sorted(c for c in expected if " = " in c)
    # a generator's sign and the order of the runs change no alias
    flipped = fracfact("a b c d -bcd acd")[::-1]
    assert sorted(aliasing(flipped, names)) == sorted(chains)


def test_a_full_factorial_has_no_alias_and_no_defining_word():
    design = fracfact("a b c")
    assert aliasing(design, list("ABC")) == [] and resolution(design) is None


def test_fractional_grid_runs_each_axis_at_its_two_values_half_against_half():
    specs = grid(DIGITS, "fractional", **ADM_AXES)
    assert len(specs) == 16 and len(set(specs)) == 16 and DIGITS in specs  # the baseline is a run
    for name, (low, high) in ADM_AXES.items():
        assert sum(getattr(s, name) == high for s in specs) == 8 and {getattr(s, name) for s in specs} == {low, high}
    # every pair of axes crosses evenly: main effects are orthogonal
    for a, b in itertools.combinations(ADM_AXES, 2):
        counts = {(getattr(s, a), getattr(s, b)) for s in specs}
        assert len(counts) == 4


@pytest.mark.parametrize("axes, generator, message", [
    ({"attn_heads": (1, 2, 4), "residual_join": ("plain", "rescaled"), "resblock_updown": (False, True)}, None,
     "attn_heads=\\[1, 2, 4\\]: a fractional design takes two values per axis"),
    (ADM_AXES, "a b c d", "has 4 word\\(s\\) for 5 two-level axes"),
    (ADM_AXES, "a b c d zz", "generator 'a b c d zz' is invalid"),
    ({"residual_join": ("plain", "rescaled")}, None, "at least 2 two-level axes"),
])
def test_a_bad_fractional_design_fails_naming_what_is_valid(axes, generator, message):
    with pytest.raises(ValueError, match=message):
        grid(DIGITS, "fractional", generator, **axes)


def test_the_plan_records_the_generator_in_its_config(tmp_path):
    plan = make_plan(SweepOptions(out=tmp_path, preset="adm_table1"))
    config = plan.config()
    assert plan.sweep.design == "fractional" and config["generator"] == resolve_generator(len(ADM_AXES))
    quality = [c for c in plan.cells if c.kind == "quality"]
    assert len({c.spec for c in quality}) == 16
    custom = make_plan(SweepOptions(out=tmp_path, preset="adm_table1", generator="a b c d abcd"))
    assert custom.config()["generator"] == "a b c d abcd"
    assert {c.spec for c in custom.cells if c.kind == "quality"} != {c.spec for c in quality}  # the other half
    factorial = make_plan(SweepOptions(out=tmp_path, preset="quick"))
    assert factorial.config()["generator"] is None


def test_a_generator_without_the_fractional_design_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--generator 'a b ab' is only for --design fractional"):
        make_plan(SweepOptions(out=tmp_path, preset="smoke", generator="a b ab"))


def test_a_sweep_file_s_generator_is_read_and_checked():
    sweep = sweep_from_dict("x", {"design": "fractional", "generator": "a b ab", "axes": {
        "residual_join": ["plain", "rescaled"], "resblock_updown": [False, True], "time_injection": ["additive", "film"]}},
        "x.toml")
    assert sweep.generator == "a b ab"
    with pytest.raises(ValueError, match="x.toml: generator = 3 is invalid"):
        sweep_from_dict("x", {"generator": 3}, "x.toml")


# --- the same network under two specs ---------------------------------------------------------------------------

def test_a_head_count_reached_through_channels_per_head_is_the_same_network():
    specs = [DIGITS, DIGITS.replace(num_head_channels=32), DIGITS.replace(attn_heads=4),
             DIGITS.replace(num_head_channels=8), DIGITS.replace(residual_join="rescaled"), DIGITS.replace(checkpoint=True)]
    kept, merged = distinct_networks(specs)
    assert kept == [specs[0], specs[2], specs[4], specs[5]]  # rescaling changes the function, checkpointing the cost
    assert merged == [(specs[1], specs[0]), (specs[3], specs[2])]


def test_the_plan_merges_a_duplicate_variant_with_a_notice_naming_both(tmp_path):
    sweep = tmp_path / "heads.toml"
    sweep.write_text('base = "digits8_ch16"\ndesign = "one_at_a_time"\n[axes]\nattn_heads = [1, 4]\n'
                     'num_head_channels = [0, 32]\n')
    plan = make_plan(SweepOptions(out=tmp_path / "run", sweep_file=sweep))
    assert [c.spec.name for c in plan.cells if c.kind == "cost"] == ["nearest_conv+additive+1h",
                                                                      "nearest_conv+additive+4h"]
    (notice,) = plan.notices
    assert notice.startswith("nearest_conv+additive+1h+32ch_head builds the same network as "
                             "nearest_conv+additive+1h (num_head_channels=32 vs 0")
    assert plan.describe().splitlines()[0] == f"notice: {notice}"  # --plan says what the run will say first


def test_a_fractional_design_with_a_duplicate_run_is_refused(tmp_path):
    sweep = tmp_path / "dup.toml"
    sweep.write_text('base = "digits8_ch16"\ndesign = "fractional"\n[axes]\nnum_head_channels = [0, 32]\n'
                     'residual_join = ["plain", "rescaled"]\nresblock_updown = [false, true]\n')
    with pytest.raises(ValueError, match="builds the same network as .* fewer runs than its generator"):
        make_plan(SweepOptions(out=tmp_path / "run", sweep_file=sweep))


def test_the_adm_preset_heads_differ_on_the_quality_network():
    adm = PRESETS["adm_table1"]
    heads = adm.axes["attn_heads"]
    assert heads[0] != heads[1] and "num_head_channels" not in adm.axes
    assert len(distinct_networks([DIGITS.replace(attn_heads=h) for h in heads])[0]) == 2


# --- seeds trained together: one cell per variant and group of seeds ----------------------------------------------

def test_the_quick_preset_trains_each_variant_s_seeds_in_one_cell(tmp_path):
    plan = make_plan(SweepOptions(out=tmp_path, preset="quick"))
    quality = [c for c in plan.cells if c.kind == "quality"]
    assert len(quality) == 8 and {c.seeds for c in quality} == {(0, 1, 2, 3)}
    assert "seeds 0, 1, 2, 3 at once" in quality[0].label
    floors = [c for c in plan.cells if c.kind == "floor"]
    assert [c.seed for c in floors] == [0, 1, 2, 3] and all(not c.seeds for c in floors)


def test_seeds_are_grouped_at_most_k_at_a_time_and_a_cell_keeps_its_seeds_through_json(tmp_path):
    plan = make_plan(SweepOptions(out=tmp_path, preset="quick", seeds=3, seeds_at_once=2))
    groups = sorted({c.seeds or (c.seed,) for c in plan.cells if c.kind == "quality"})
    assert groups == [(0, 1), (2,)]
    from bench.plan.cells import Cell

    for cell in (c for c in plan.cells if c.kind == "quality"):
        assert Cell.from_json(cell.to_json()) == cell


def test_seeds_at_once_with_a_dropout_network_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="--seeds-at-once 2: the quality network has dropout=0.1"):
        make_plan(SweepOptions(out=tmp_path, preset="full", seeds_at_once=2))


def test_a_fractional_plan_measures_the_baseline_and_its_neighbours_so_every_switch_has_count_pairs(tmp_path):
    plan = make_plan(SweepOptions(out=tmp_path, preset="adm_table1"))
    design = {c.spec for c in plan.cells if c.kind == "quality"}
    timed = {m.spec for c in plan.cells if c.kind == "timing" for m in c.members if not m.peer}
    assert timed == design  # time and quality: the design's runs
    costs = {c.spec for c in plan.cells if c.kind == "cost" and not c.peer}
    star = set(grid(DIGITS, "one_at_a_time", **ADM_AXES))
    assert costs == design | star and costs - design  # only cost cells outside the design, and some
    for axis, (low, high) in ADM_AXES.items():
        assert any(spec.replace(**{axis: high}) in costs for spec in costs if getattr(spec, axis) == low), axis
    factorial = make_plan(SweepOptions(out=tmp_path, preset="quick"))
    assert {c.spec for c in factorial.cells if c.kind == "cost"} == {m.spec for c in factorial.cells
                                                                    if c.kind == "timing" for m in c.members}
