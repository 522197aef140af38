"""The report keeps peers and execution options apart: peers get their own section with ratios, never a place
in an axis effect, and cells of different settings are never averaged or paired together."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.report import write_report
from bench.report.effects import across_settings
from bench.report.load import normalise
from bench.report.peers import median_with_interval, ratio_of_medians
from bench.report.stats import cost_effects
from bench.runner import cell_outcome
from bench.schema import COLUMNS
from test_report import _row, write_run


def speed_rows(upsample: str, images_per_s: list[float], peer: str = "", memory_format: str = "contiguous",
               speedup: list[float] = ()) -> list[dict]:
    common = dict(peer=peer, memory_format=memory_format, compile=False)
    variant = f"peer:{peer}" if peer else None
    rows = [_row("cost", upsample, 1, False, "cpu", phase="model", metric="params", value=1000.0 if not peer else 990.0,
                 unit="count", method="numel", **common)]
    for repeat, value in enumerate(images_per_s):
        for phase in ("train_step", "inference"):
            rows.append(_row("cost", upsample, 1, False, "cpu", phase=phase, metric="images_per_s", value=value,
                             unit="images/s", method="torch.utils.benchmark", repeat=repeat, **common))
    for repeat, value in enumerate(speedup):
        for phase in ("train_step", "inference"):
            rows.append(_row("cost", upsample, 1, False, "cpu", phase=phase, metric="ours_speedup", value=value,
                             unit="ratio", method="interleaved A/B blocks", repeat=repeat, **common))
    if variant:
        for row in rows:
            row["variant"] = variant
    return rows


def table_of(*groups: list[dict]) -> pd.DataFrame:
    return normalise(pd.DataFrame([r for g in groups for r in g], columns=list(COLUMNS)))


def test_setting_names_the_non_default_execution_options():
    rows = [_row("cost", "nearest_conv", 1, False, device, phase="model", metric="params", value=1.0, unit="count",
                 dtype=dtype, memory_format=fmt, compile=compiled)
            for device, dtype, fmt, compiled in [("cpu", "float32", "contiguous", False),
                                                 ("cuda", "bfloat16", "channels_last", True),
                                                 ("cpu", "float32", "", "")]]
    table = normalise(pd.DataFrame(rows, columns=list(COLUMNS)))
    assert table["setting"].tolist() == ["cpu", "cuda · bfloat16 · channels_last · compiled", "cpu"]
    assert table["execution"].tolist() == ["", "bfloat16 · channels_last · compiled", ""]


def test_peers_never_enter_an_axis_effect():
    # The peer has the baseline's axis values; were it averaged in, the effect would move from +20%.
    table = table_of(speed_rows("nearest_conv", [10, 10, 10]), speed_rows("conv_transpose", [12, 12, 12]),
                     speed_rows("nearest_conv", [100, 100, 100], peer="smalldiffusion"))
    _, summary = cost_effects(table)
    effect = summary[(summary["axis"] == "upsample") & (summary["metric"] == "images_per_s")]
    assert effect["mean"].round(9).tolist() == [20.0, 20.0]


def test_settings_are_never_paired_or_averaged_together():
    table = table_of(speed_rows("nearest_conv", [10, 10, 10]), speed_rows("conv_transpose", [12, 12, 12]),
                     speed_rows("nearest_conv", [20, 20, 20], memory_format="channels_last"),
                     speed_rows("conv_transpose", [19, 19, 19], memory_format="channels_last"))
    _, summary = cost_effects(table)
    train = summary[(summary["axis"] == "upsample") & (summary["phase"] == "train_step")].set_index("setting")
    assert train.loc["cpu", "mean"] == pytest.approx(20.0)
    assert train.loc["cpu · channels_last", "mean"] == pytest.approx(-5.0)
    verdicts = across_settings(train.reset_index().assign(label="train_step/images_per_s"))
    assert verdicts["holds in every setting"].tolist() == ["no: the direction differs between settings"]


def test_ratio_of_medians_and_median_interval():
    ratio, low, high = ratio_of_medians(np.array([10.0, 11.0, 30.0]), np.array([5.0, 5.5, 6.0]))
    assert ratio == pytest.approx(2.0) and low <= ratio <= high
    assert ratio_of_medians(np.array([4.0]), np.array([2.0]))[0] == 2.0
    assert np.isnan(ratio_of_medians(np.array([4.0]), np.array([2.0]))[1])
    median, low, high = median_with_interval(np.array([1.0, 1.1, 0.9, 1.05, 0.95]))
    assert median == 1.0 and 0.9 <= low <= median <= high <= 1.1


def test_peer_section_reports_both_ratios_and_the_parameter_counts(tmp_path):
    table = table_of(speed_rows("nearest_conv", [10, 10, 10]),
                     speed_rows("nearest_conv", [8, 8, 8], peer="smalldiffusion", speedup=[1.1, 1.2, 1.3]))
    root = write_run(tmp_path / "run", table, samples=False)
    write_report([root])
    markdown = (root / "report.md").read_text()
    assert (root / "figures" / "peers.png").exists() and (root / "figures" / "peers_interleaved.png").exists()
    assert "ours / smalldiffusion on cpu: training step 1.200x [" in markdown
    line = next(row for row in markdown.splitlines() if row.startswith("| cpu | smalldiffusion |"))
    assert "990 (1,000)" in line and "1.250x" in line  # params of peer (ours); cell medians 10 / 8


def test_a_run_without_peers_says_how_to_measure_them(tmp_path):
    root = write_run(tmp_path / "run", table_of(speed_rows("nearest_conv", [10, 10])), samples=False)
    write_report([root])
    assert "No peer was measured in this run" in (root / "report.md").read_text()


def test_cell_outcome_tells_failures_from_measurements_that_do_not_apply():
    def frame(*rows):
        return pd.DataFrame(rows, columns=["phase", "status"])

    assert cell_outcome(frame(("model", "ok"), ("train_step", "ok"))) == "ok"
    assert cell_outcome(frame(("model", "ok"), ("train_step", "skipped"))).startswith("ok (1 measurement(s)")
    assert cell_outcome(frame(("cell", "skipped"))) == "skipped"
    assert cell_outcome(frame(("model", "ok"), ("train_step", "skipped"), ("cell", "oom"))) == "oom"
    assert cell_outcome(frame(("model", "ok"), ("cell", "error"))) == "error"
