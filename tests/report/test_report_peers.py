"""The report keeps peers and execution options apart: peers get their own section with ratios, never a place
in an axis effect, and cells of different settings are never averaged or paired together."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import write_report
from bench.report.compute.derived import Derived
from bench.report.compute.load import normalise
from bench.report.compute.peer_ratios import median_with_interval, ratio_of_medians
from bench.report.render.wording import add_effect_labels
from bench.report.sections.axis_effects import across_settings
from bench.run.runner import cell_outcome
from bench.schema import columns

from test_report import _row, write_run


def speed_rows(upsample: str, seconds: list[float], peer: str = "", memory_format: str = "contiguous") -> list[dict]:
    """One model's cost cell (its parameter count) and its blocks in its setting's timing cell, one per round."""
    common = dict(peer=peer, memory_format=memory_format, compile=False)
    rows = [_row("cost", upsample, 1, False, "cpu", phase="model", metric="params", value=1000.0 if not peer else 990.0,
                 unit="count", method="numel", **common)]
    for repeat, value in enumerate(seconds):
        for phase in ("train_step", "inference"):
            timed = dict(cell_id=f"timing-{memory_format}", phase=phase, repeat=repeat, method="blocks", batch_size=16,
                         **common)
            rows += [_row("timing", upsample, 1, False, "cpu", metric="seconds_per_iter", value=value, unit="s", **timed),
                     _row("timing", upsample, 1, False, "cpu", metric="images_per_s", value=16 / value,
                          unit="images/s", **timed)]
    if peer:
        for row in rows:
            row["variant"] = f"peer:{peer}"
    return rows


def table_of(*groups: list[dict]) -> pd.DataFrame:
    return normalise(pd.DataFrame([r for g in groups for r in g], columns=list(columns())))


def test_setting_names_the_non_default_execution_options():
    rows = [_row("cost", "nearest_conv", 1, False, device, phase="model", metric="params", value=1.0, unit="count",
                 dtype=dtype, memory_format=fmt, compile=compiled)
            for device, dtype, fmt, compiled in [("cpu", "float32", "contiguous", False),
                                                 ("cuda", "bfloat16", "channels_last", True),
                                                 ("cpu", "float32", "", "")]]
    table = normalise(pd.DataFrame(rows, columns=list(columns())))
    assert table["setting"].tolist() == ["cpu", "cuda · bfloat16 · channels_last · compiled", "cpu"]
    assert table["execution"].tolist() == ["", "bfloat16 · channels_last · compiled", ""]


def _time_effects(table: pd.DataFrame) -> pd.DataFrame:
    effects = Derived.of_table(table).effects
    return effects[(effects["axis"] == "upsample") & (effects["metric"] == "seconds_per_iter")]


def test_peers_never_enter_an_axis_effect():
    # The peer has the baseline's axis values; were it in the model, the effect would move from +20%.
    rounds = 12
    table = table_of(speed_rows("nearest_conv", [1.0] * rounds), speed_rows("conv_transpose", [1.2] * rounds),
                     speed_rows("nearest_conv", [0.1] * rounds, peer="smalldiffusion"))
    assert _time_effects(table)["estimate"].round(9).tolist() == [20.0, 20.0]


def test_settings_are_never_paired_or_averaged_together():
    rounds = 12
    table = table_of(speed_rows("nearest_conv", [1.0] * rounds), speed_rows("conv_transpose", [1.2] * rounds),
                     speed_rows("nearest_conv", [0.5] * rounds, memory_format="channels_last"),
                     speed_rows("conv_transpose", [0.475] * rounds, memory_format="channels_last"))
    train = _time_effects(table)
    train = train[train["phase"] == "train_step"].set_index("setting")
    assert train.loc["cpu", "estimate"] == pytest.approx(20.0)
    assert train.loc["cpu · channels_last", "estimate"] == pytest.approx(-5.0)
    verdicts = across_settings(add_effect_labels(train.reset_index()))
    assert verdicts["holds in every setting"].tolist() == ["no: the direction differs between settings"]


def test_a_run_of_the_baseline_and_its_peers_gives_the_control_as_its_only_time_effect():
    rounds = 12
    rng = np.random.default_rng(0)
    ours = speed_rows("nearest_conv", list(rng.uniform(0.9, 1.1, rounds)))
    copy = [r | {"replica": 1} for r in speed_rows("nearest_conv", list(rng.uniform(0.9, 1.1, rounds))) if r["kind"] == "timing"]
    table = table_of(ours, copy, speed_rows("nearest_conv", [1.2] * rounds, peer="smalldiffusion"))
    effects = Derived.of_table(table).effects
    assert set(effects["axis"]) == {"control"} and len(effects) == 2  # both phases
    assert (effects["from_level"] == "nearest_conv+additive+1h").all()
    assert (effects["to_level"] == "nearest_conv+additive+1h (second instance)").all()


def test_ratio_of_medians_and_median_interval():
    ratio, low, high = ratio_of_medians(np.array([10.0, 11.0, 30.0]), np.array([5.0, 5.5, 6.0]))
    assert ratio == pytest.approx(2.0) and low <= ratio <= high
    assert ratio_of_medians(np.array([4.0]), np.array([2.0]))[0] == 2.0
    assert np.isnan(ratio_of_medians(np.array([4.0]), np.array([2.0]))[1])
    median, low, high = median_with_interval(np.array([1.0, 1.1, 0.9, 1.05, 0.95]))
    assert median == 1.0 and 0.9 <= low <= median <= high <= 1.1


def test_peer_section_reports_both_ratios_and_the_parameter_counts(tmp_path):
    # ours 1.0 s a call in every round; the peer 1.1, 1.2, 1.3 s in the same rounds
    table = table_of(speed_rows("nearest_conv", [1.0, 1.0, 1.0]),
                     speed_rows("nearest_conv", [1.1, 1.2, 1.3], peer="smalldiffusion"))
    root = write_run(tmp_path / "run", table, samples=False)
    write_report([root])
    markdown = (root / "report.md").read_text()
    assert (root / "figures" / "peers.png").exists() and (root / "figures" / "peers_interleaved.png").exists()
    assert "ours / smalldiffusion on cpu: training step 1.200x [" in markdown
    line = next(row for row in markdown.splitlines() if row.startswith("| cpu | smalldiffusion |"))
    assert "990 (1,000)" in line and "1.200x [" in line  # params of peer (ours); ratio of medians 16 / 13.3


def test_a_run_without_peers_has_no_peers_section(tmp_path):
    root = write_run(tmp_path / "run", table_of(speed_rows("nearest_conv", [1.0, 1.0])), samples=False)
    write_report([root])
    assert "## Against the peers" not in (root / "report.md").read_text()  # only sections that apply


def test_cell_outcome_tells_failures_from_measurements_that_do_not_apply():
    def frame(*rows):
        return pd.DataFrame(rows, columns=["phase", "status"])

    assert cell_outcome(frame(("model", "ok"), ("train_step", "ok"))) == "ok"
    assert cell_outcome(frame(("model", "ok"), ("train_step", "skipped"))).startswith("ok (1 measurement(s)")
    assert cell_outcome(frame(("cell", "skipped"))) == "skipped"
    assert cell_outcome(frame(("model", "ok"), ("train_step", "skipped"), ("cell", "oom"))) == "oom"
    assert cell_outcome(frame(("model", "ok"), ("cell", "error"))) == "error"


def test_the_peers_figure_does_not_depend_on_python_s_string_hashing(tmp_path):
    """seaborn's catplot visited its facets in an order set by string hashing, so the jittered dots of the
    committed peers figure moved from one render to the next; two renders with different hash seeds now agree.
    Each render is the peers section of the committed peers run, in a process of its own (the seed is read at start)."""
    root = Path(__file__).resolve().parents[2]
    render = ("import sys; from pathlib import Path; from bench.report.compute.derived import Derived; "
              "from bench.report.compute.load import load_run; "
              "from bench.report.sections.against_peers import peers_section; "
              "peers_section(Derived(load_run(Path(sys.argv[1]))), Path(sys.argv[2]))")
    figures = []
    for seed in ("0", "1"):
        out = tmp_path / seed
        subprocess.run([sys.executable, "-c", render, str(root / "results" / "peers-cpu"), str(out)], cwd=root,
                       env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}, check=True,
                       capture_output=True, timeout=300)
        figures.append((out / "peers_interleaved.png").read_bytes())
    assert figures[0] == figures[1]
