"""The ladder design: cumulative rungs in bench.plan.designs, sweep files and plans, and a report that reads each rung
against the rung before it (effects.csv, the timing model, the verdict)."""
import numpy as np
import pandas as pd
import pytest

from bench.plan.cells import Cell
from bench.plan.designs import Rung, grid, ladder
from bench.plan.options import SweepOptions
from bench.plan.planner import make_plan
from bench.plan.sweep import PRESETS, load_sweep
from bench.report.compute.derived import Derived
from bench.report.compute.load import normalise
from bench.report.sections.verdict import verdict_section
from bench.schema import columns
from variants import AXES, BASES, UNetSpec
from variants.bases import EDM2_AXES

TINY = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=16, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8)


# --- bench.plan.designs -------------------------------------------------------------------------------------------
def test_a_ladder_over_axes_keeps_every_step_before_each_rung():
    specs = grid(TINY, "ladder", layers=("standard", "no_bias", "mp"), act=("silu", "mp_silu"))
    assert [(s.layers, s.act) for s in specs] == [("standard", "silu"), ("no_bias", "silu"), ("mp", "silu"),
                                                  ("mp", "mp_silu")]
    assert [name for name, _ in ladder(TINY, [Rung("baseline"), Rung("x", (("act", "mp_silu"),))])] == ["baseline",
                                                                                                     "x"]


def test_a_rung_may_change_several_axes_and_later_rungs_keep_them():
    rungs = [Rung("A", (("time_injection", "film"),)),
             Rung("C", (("layers", "no_bias"), ("time_injection", "scale"), ("attention", "cosine"))),
             Rung("D", (("layers", "mp"),))]
    (_, a), (_, c), (_, d) = ladder(TINY, rungs)
    assert (a.time_injection, a.layers) == ("film", "standard")
    assert (c.time_injection, c.layers, c.attention) == ("scale", "no_bias", "cosine")
    assert (d.time_injection, d.layers, d.attention) == ("scale", "mp", "cosine")


@pytest.mark.parametrize("rungs, message", [
    ([Rung("A"), Rung("A", (("act", "mp_silu"),))], "rung 'A' appears twice"),
    ([Rung("A"), Rung("B", (("act", "silu"),))], "rung 'B' (act=silu) changes nothing from rung 'A'"),
    ([Rung("A", (("normalization", "pixel"), ("time_injection", "film")),)], "rung 'A': time_injection='film'"),
    ([], "a ladder needs rungs"),
])
def test_a_bad_ladder_fails_naming_the_rung(rungs, message):
    with pytest.raises(ValueError) as err:
        ladder(TINY, rungs)
    assert message in str(err.value)


def test_a_rung_checks_its_axes_and_values():
    with pytest.raises(ValueError, match="unknown axis 'colour'"):
        Rung("A", (("colour", "red"),))
    with pytest.raises(ValueError, match="layers='wn' is invalid"):
        Rung("A", (("layers", "wn"),))
    assert Rung("C", (("layers", "mp"), ("ones_channel", True))).describe() == "layers=mp, ones_channel=true"


# --- sweep files and plans ---------------------------------------------------------------------------------
def test_the_edm2_preset_is_a_ladder_from_an_adm_style_rung_to_edm2s_block():
    sweep = PRESETS["edm2_table1"]
    assert sweep.design == "ladder" and [r.name for r in sweep.rungs] == ["A", "C", "D", "E", "F", "G"]
    specs = [spec for _, spec in ladder(BASES["fmnist28"], sweep.rungs)]
    last = specs[-1]
    assert all(getattr(last, name) == level for name, level in EDM2_AXES.items() if name != "num_head_channels")
    assert specs[0].time_injection == "film" and specs[0].resblock_updown
    assert [s.layers for s in specs] == ["standard", "no_bias", "mp", "mp_forced", "mp_forced", "mp_forced"]


def test_a_sweep_file_declares_rungs_and_round_trips_them(tmp_path):
    path = tmp_path / "steps.toml"
    path.write_text('design = "ladder"\n[[rungs]]\nname = "A"\nattn_resolutions = [8, 4]\n'
                    '[[rungs]]\nname = "B"\nlayers = "mp"\nones_channel = true\n')
    sweep = load_sweep(path)
    assert sweep.rungs == (Rung("A", (("attn_resolutions", (8, 4)),)), Rung("B", (("layers", "mp"),
                                                                                 ("ones_channel", True))))
    assert sweep.to_dict()["rungs"] == [{"name": "A", "axes": {"attn_resolutions": "8+4"}},
                                        {"name": "B", "axes": {"layers": "mp", "ones_channel": True}}]


def test_a_ladder_plan_labels_every_cell_with_its_rung_and_times_against_the_first(tmp_path):
    plan = make_plan(SweepOptions(out=tmp_path, preset="edm2_table1"))
    costs = [c for c in plan.cells if c.kind == "cost"]
    assert [(c.rung, c.rung_index) for c in costs if c.base_config == "fmnist28"] == [
        ("A", 0), ("C", 1), ("D", 2), ("E", 3), ("F", 4), ("G", 5)]
    assert {c.base_config for c in costs} == {"fmnist28", "digits8_ch16"}  # and the quality network's
    quality = [(c.rung, c.rung_index, c.seeds) for c in plan.cells if c.kind == "quality"]
    assert quality == [(r, i, (0, 1, 2)) for i, r in enumerate("ACDEFG")]  # 3 seeds trained together
    tune = [(c.rung, c.config.lr, c.seeds) for c in plan.cells if c.kind == "tune"]
    assert sorted(tune) == sorted((r, lr, (10000, 10001)) for r in "ACDEFG" for lr in (0.004, 0.01))
    for timing in (c for c in plan.cells if c.kind == "timing"):
        assert [(m.rung, m.replica) for m in timing.members[:2]] == [("A", 0), ("A", 1)]  # the A/A control
        assert timing.rung == "" and timing.identity_columns()["rung"] == ""
    row = costs[0].identity_columns()
    assert (row["rung"], row["rung_index"]) == ("A", 0)


def test_cells_outside_a_ladder_have_no_rung():
    cell = Cell("cost", TINY, "cpu", batch_size=4)
    assert cell.identity_columns()["rung"] == "" and cell.identity_columns()["rung_index"] is None
    assert Cell.from_json(Cell("cost", TINY, "cpu", rung="A").to_json()).rung == "A"


def test_a_ladder_from_axes_on_the_command_line(tmp_path):
    held = {"upsample": ("nearest_conv",), "checkpoint": (False,)}  # the smoke preset sweeps both
    plan = make_plan(SweepOptions(out=tmp_path, preset="smoke", design="ladder", parts=("cost",),
                                  axes=held | {"layers": ("standard", "mp"), "act": ("silu", "mp_silu")}))
    assert [c.rung for c in plan.cells if c.kind == "cost"] == ["baseline", "layers=mp", "act=mp_silu"]


@pytest.mark.parametrize("axes, message", [
    ({"layers": ("standard", "mp")}, "--axis layers: 2 values in a ladder with [[rungs]]"),
    ({"layers": ("mp",)}, "--axis layers holds one value in every rung, but rung 'C' sets it"),
])
def test_axes_given_with_rungs_hold_one_value_that_no_rung_sets(tmp_path, axes, message):
    with pytest.raises(ValueError) as err:
        make_plan(SweepOptions(out=tmp_path, preset="edm2_table1", parts=("cost",), axes=axes))
    assert message in str(err.value)


def test_a_ladder_without_steps_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--design ladder needs steps"):
        make_plan(SweepOptions(out=tmp_path, preset="smoke", design="ladder", parts=("cost",),
                               axes={"upsample": ("nearest_conv",), "checkpoint": (False,)}))


# --- the report: each rung against the rung before --------------------------------------------------------
RUNGS = [("A", 0, {}), ("B", 1, {"layers": "no_bias"}), ("C", 2, {"layers": "no_bias", "act": "mp_silu"})]
PARAMS = {"A": 1000.0, "B": 900.0, "C": 900.0}
SLOWER = {"A": 1.0, "B": 1.10, "C": 1.10 * 1.05}  # B adds 10% to A, C 5% to B
FD = {"A": 3.0, "B": 2.5, "C": 2.45}


def _row(kind: str, rung: str, **measured) -> dict:
    index, levels = next((i, lv) for name, i, lv in RUNGS if name == rung)
    row = dict.fromkeys(columns(), "")
    row.update({name: axis.cell(axis.default) for name, axis in AXES.items()} | levels)
    row.update(run_id="synthetic", cell_id=f"{kind}-{rung}", kind=kind, variant=rung, device="cpu",
               dtype="float32", threads=2, batch_size=16, base_config="digits8", dataset="digits",
               block="total", repeat=0, seed=pd.NA, step=pd.NA, n=pd.NA, status="ok", message="",
               method="synthetic", rung=rung, rung_index=index, replica=0)
    return row | measured


def ladder_table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for rung in PARAMS:
        rows.append(_row("cost", rung, phase="model", metric="params", value=PARAMS[rung], unit="count",
                         method="numel"))
        for s in range(4):
            rows.append(_row("quality", rung, phase="sample", metric="fd", value=FD[rung] + rng.normal(0, 0.02),
                             unit="ratio", seed=s, n=100))
    members = [("A", 0), ("A", 1), ("B", 0), ("C", 0)]
    for repeat in range(12):
        drift = rng.uniform(-0.2, 0.2)
        for position, (rung, replica) in enumerate(members):
            for phase in ("train_step", "inference"):
                seconds = 0.1 * SLOWER[rung] * np.exp(drift + rng.normal(0, 0.01))
                rows.append(_row("timing", rung, cell_id="timing", phase=phase, metric="seconds_per_iter",
                                 value=seconds, unit="s", repeat=repeat, position=position, replica=replica,
                                 method="time.perf_counter blocks"))
    return normalise(pd.DataFrame(rows, columns=list(columns())))


def test_every_effect_of_a_ladder_is_a_rung_against_the_rung_before():
    derived = Derived.of_table(ladder_table())
    effects = derived.effects
    assert derived.rungs == {"A": "the base", "B": "layers=no_bias", "C": "act=mp_silu"}
    steps = effects[effects["axis"] != "control"]
    assert set(zip(steps["axis"], steps["from_level"], steps["to_level"])) == {("B", "A", "B"), ("C", "B", "C")}
    assert not steps["axis"].isin(list(AXES)).any()  # no axis effect from rungs that differ in one axis
    params = steps[steps["metric"] == "params"].set_index("axis")["estimate"]
    assert params.to_dict() == {"B": -10.0, "C": 0.0}
    fd = steps[steps["metric"] == "fd"].set_index("axis")
    assert fd.loc["B", "estimate"] == pytest.approx(-0.5, abs=0.05) and bool(fd.loc["B", "resolved"])
    assert fd.loc["C", "estimate"] == pytest.approx(-0.05, abs=0.05)
    time = steps[(steps["metric"] == "seconds_per_iter") & (steps["phase"] == "train_step")].set_index("axis")
    assert time.loc["B", "estimate"] == pytest.approx(10, abs=1.5) and bool(time.loc["B", "resolved"])
    assert time.loc["C", "estimate"] == pytest.approx(5, abs=1.5) and bool(time.loc["C", "resolved"])
    assert time["method"].str.contains("each rung as a step over the rung before").all()
    control = effects[(effects["axis"] == "control") & (effects["phase"] == "train_step")]
    assert len(control) == 1 and not bool(control["resolved"].iloc[0])
    assert list(steps["axis"].drop_duplicates()) == ["B", "C"]  # in ladder order


def test_the_verdict_reads_each_rung_after_the_one_before():
    section = verdict_section(Derived.of_table(ladder_table()))
    table = next(item for item in section.items if hasattr(item, "frame")).frame
    assert table["switch"].tolist() == ["B after A: layers=no_bias", "C after B: act=mp_silu"]
    text = " ".join(next(item for item in section.items if hasattr(item, "lines")).lines)
    assert "B after A (layers=no_bias): -10% parameters" in text
    assert "rung of the ladder against the rung before it" in section.note
