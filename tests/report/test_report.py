"""bench.report: paired effects on a case with a known answer, every section and figure on a synthetic run,
escaping, two-run comparison, and the HTML in a real (headless) browser."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.report import write_report
from bench.report.compute.derived import Derived
from bench.report.compute.frames import cost_pairs
from bench.report.compute.load import normalise
from bench.report.render.wording import describe_effect
from bench.schema import columns
from variants import AXES

INJECTED = '<script>alert("boom")</script> & <b>bold</b>'
UPSAMPLERS, HEADS, SEEDS, STEPS = ("nearest_conv", "conv_transpose"), (1, 4), (0, 1, 2), (0, 50, 100, 150, 200)


def _name(upsample: str, heads: int, checkpoint: bool) -> str:
    return f"{upsample}+additive+{heads}h" + ("+ckpt" if checkpoint else "")


def _row(kind: str, upsample: str, heads: int, checkpoint: bool, device: str, **measured) -> dict:
    real = kind == "floor"
    row = dict.fromkeys(columns(), "")
    row.update({name: axis.empty if real else axis.cell(axis.default) for name, axis in AXES.items()})
    row.update(run_id="synthetic", cell_id=f"{kind}-{upsample}-{heads}-{checkpoint}-{device}", kind=kind,
               variant="real" if real else _name(upsample, heads, checkpoint), upsample="" if real else upsample,
               time_injection="" if real else "additive", attn_heads=0 if real else heads,
               checkpoint=checkpoint, attention="" if real else "sdpa", device=device, dtype="float32",
               threads=2, batch_size=16 if kind == "cost" else 0, base_config="digits8",
               dataset="" if kind == "cost" else "digits", block="total", repeat=0, seed=pd.NA, step=pd.NA,
               n=pd.NA, status="ok", message="", method="synthetic")
    row.update(measured)
    return row


def cost_rows(upsample: str, heads: int, checkpoint: bool, device: str, rng: np.random.Generator,
              speed: float = 1.0) -> list[dict]:
    """Plausible rows of one cost cell: counted values exact, memory measured once."""
    ct, ck = upsample == "conv_transpose", checkpoint
    params = 1_000_000 + (60_000 if ct else 0)
    flops = 2e9 * (0.9 if ct else 1.0)
    memory = "peak_rss_bytes" if device == "cpu" else "peak_allocated_bytes"
    args = (upsample, heads, checkpoint, device)
    rows = [
        _row("cost", *args, phase="model", metric="params", value=params, unit="count", method="numel"),
        _row("cost", *args, phase="model", block="upsample", metric="params", value=params / 10, unit="count",
             method="numel"),
        _row("cost", *args, phase="forward", metric="flops", value=flops / 2, unit="MAC", method="fvcore"),
        _row("cost", *args, phase="train_step", metric="flops", value=3 * flops * (1.3 if ck else 1), unit="FLOP",
             method="torch.utils.flop_counter"),
        _row("cost", *args, phase="train_step", metric="saved_tensor_bytes", value=5e7 * (0.4 if ck else 1),
             unit="bytes", method="saved_tensors_hooks"),
        _row("cost", *args, phase="train_step", metric=memory, value=2e8 * (0.7 if ck else 1) * (1 + heads / 100),
             unit="bytes", method="VmHWM"),
        _row("cost", *args, phase="env", metric="loadavg_1min", value=0.5, unit="processes", method="os.getloadavg"),
    ]
    return rows


def timing_rows(device: str, rng: np.random.Generator, speed: float = 1.0, rounds: int = 12) -> list[dict]:
    """One timing cell: every variant and the baseline's A/A copy timed once per round, with round-level drift
    (+-20%) and 3% block noise; conv_transpose 5% faster, checkpointing 25% slower in training."""
    members = [(u, h, c, 0) for u in UPSAMPLERS for h in HEADS for c in (False, True)]
    members.insert(1, ("nearest_conv", 1, False, 1))
    rows = []
    for repeat in range(rounds):
        drift = rng.uniform(-0.2, 0.2)
        for position, index in enumerate(rng.permutation(len(members))):
            upsample, heads, checkpoint, replica = members[index]
            for phase, batch in (("train_step", 16), ("inference", 48)):
                slower = 1.25 if checkpoint and phase == "train_step" else 1.0
                seconds = 0.1 * slower * (0.95 if upsample == "conv_transpose" else 1) / speed * np.exp(
                    drift + rng.normal(0, 0.03))
                common = dict(cell_id=f"timing-{device}", phase=phase, repeat=repeat, position=position, batch_size=16,
                              replica=replica, method="time.perf_counter blocks")
                rows += [_row("timing", upsample, heads, checkpoint, device, metric="seconds_per_iter", value=seconds,
                              unit="s", **common),
                         _row("timing", upsample, heads, checkpoint, device, metric="images_per_s",
                              value=batch / seconds, unit="images/s", **common)]
        rows.append(_row("timing", "", 0, False, device, cell_id=f"timing-{device}", variant="group",
                         phase="calibration", metric="matmul_peak_flop_per_s", value=3e11, unit="FLOP/s",
                         repeat=repeat, method="time.perf_counter blocks"))
    return rows


def quality_rows(kind: str, upsample: str, heads: int, seed: int, device: str, rng: np.random.Generator) -> list[dict]:
    args = (upsample, heads, False, device)
    base = 1.6 if kind == "floor" else 3.0 + (0.3 if upsample == "conv_transpose" else 0)
    sample = {"fd": base, "kid": base / 100, "precision": 0.7, "recall": 0.6, "swd": 0.05, "copy_rate": 0.0,
              "class_kl": 0.02, "sampling_time": 0.4}
    units = {"sampling_time": "s"}
    rows = [_row(kind, *args, phase="sample", metric=m, value=v * rng.normal(1, 0.1), unit=units.get(m, "ratio"),
                 seed=seed, n=100) for m, v in sample.items()]
    if kind == "quality":
        for step in STEPS:
            loss = 0.25 + 0.5 * np.exp(-step / 60) + rng.normal(0, 0.01)
            rows += [_row(kind, *args, phase="train", metric="heldout_loss", value=loss, unit="mse", seed=seed,
                          step=step),
                     _row(kind, *args, phase="train", metric="wall_time", value=step * 0.02 * rng.normal(1, 0.05),
                          unit="s", seed=seed, step=step)]
    return rows


def synthetic_table(devices=("cpu",), quality: bool = True, speed: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """A small run: 8 cost variants per device, 4 quality variants x 3 seeds, the floor, a check, a failure."""
    rng = np.random.default_rng(seed)
    rows = []
    for device in devices:
        for upsample in UPSAMPLERS:
            for heads in HEADS:
                for checkpoint in (False, True):
                    rows += cost_rows(upsample, heads, checkpoint, device, rng, speed)
        rows += timing_rows(device, rng, speed)
    rows.append(_row("cost", "conv_transpose", 8, False, devices[0], phase="train_step", metric="failure",
                     value=float("nan"), unit="", method="", status="error", message=INJECTED))
    if quality:
        for s in SEEDS:
            rows += quality_rows("floor", "", 0, s, devices[0], rng)
            for upsample in UPSAMPLERS:
                for heads in HEADS:
                    rows += quality_rows("quality", upsample, heads, s, devices[0], rng)
        rows.append(_row("check", "nearest_conv", 1, True, devices[0], phase="check", metric="max_abs_loss_difference",
                         value=0.0, unit="mse", seed=0))
    return normalise(pd.DataFrame(rows, columns=list(columns())))


def write_run(root: Path, table: pd.DataFrame, samples: bool = True) -> Path:
    import matplotlib.pyplot as plt

    root.mkdir(parents=True)
    table.to_parquet(root / "metrics.parquet", index=False)
    table.to_csv(root / "metrics.csv", index=False)
    env = {"python": "3.12", "libraries": {"torch": "2.14.1"}, "cpu_model": INJECTED, "threads": 2,
           "gpu_name": None, "git_revision": "abc123", "command": "python -m bench run --preset smoke"}
    (root / "env.json").write_text(json.dumps(env))
    if samples:
        (root / "samples").mkdir()
        for name in ("real_digits", "nearest_conv+additive+1h_seed0"):
            plt.imsave(root / "samples" / f"{name}.png", np.random.default_rng(0).random((16, 16)), cmap="gray")
    return root


# --- paired differences on cases with a known answer --------------------------------------------------------

def _pair_table(rows: list[tuple[str, int, list[float]]]) -> pd.DataFrame:
    """Cost rows of train_step peak RSS, a measured (not counted) cost: (upsample, heads, repeat values)."""
    out = []
    for upsample, heads, values in rows:
        for repeat, value in enumerate(values):
            out.append(_row("cost", upsample, heads, False, "cpu", phase="train_step", metric="peak_rss_bytes",
                            value=value, unit="bytes", method="VmHWM", repeat=repeat))
    return normalise(pd.DataFrame(out, columns=list(columns())))


def _effect(table: pd.DataFrame, axis: str) -> pd.Series:
    effects = Derived.of_table(table).effects
    return effects[effects["axis"] == axis].iloc[0]


def test_cost_effect_is_percent_change_of_cell_medians_over_matched_pairs():
    # Medians 11 -> 13.2 (+20%) at 1 head and 10 -> 11.5 (+15%) at 4 heads; the 30 is an outlier a mean would see.
    table = _pair_table([("nearest_conv", 1, [10, 11, 30]), ("conv_transpose", 1, [12, 13.2, 14]),
                         ("nearest_conv", 4, [10, 9, 11]), ("conv_transpose", 4, [11.5, 11.5, 11.5])])
    pairs = cost_pairs(Derived.of_table(table).cost_cells)
    upsample = pairs[pairs["axis"] == "upsample"].sort_values("attn_heads")
    assert upsample["percent"].round(9).tolist() == [20.0, 15.0]
    assert set(upsample["comparison"]) == {"nearest_conv → conv_transpose"}
    row = _effect(table, "upsample")
    half = stats.t.ppf(0.975, 1) * np.std([20.0, 15.0], ddof=1) / np.sqrt(2)
    assert (row["n"], row["estimate"], row["unit"]) == (2, pytest.approx(17.5), "%")
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(17.5 - half), pytest.approx(17.5 + half))
    assert half == pytest.approx(12.7062047 * 2.5)  # t(0.975, 1 dof) x sd / sqrt(2)
    assert row["p_value"] == pytest.approx(stats.ttest_1samp([20.0, 15.0], 0).pvalue)
    assert not row["resolved"]  # two pairs: +17.5% ± 31.8 straddles zero


def test_cost_effect_interval_straddling_zero_is_reported_unresolved():
    table = _pair_table([("nearest_conv", 1, [10]), ("conv_transpose", 1, [12]),
                         ("nearest_conv", 4, [10]), ("conv_transpose", 4, [9])])
    row = _effect(table, "upsample")
    assert row["estimate"] == pytest.approx(5.0) and row["ci_low"] < 0 < row["ci_high"] and not row["resolved"]
    assert describe_effect(row).startswith("+5% [95% CI ")


def test_quality_effect_blocks_on_seed_not_on_row_order():
    rows = []
    for upsample, values in (("nearest_conv", {0: 4.0, 1: 5.0, 2: 6.0}), ("conv_transpose", {2: 4.0, 1: 5.0, 0: 3.0})):
        for seed, value in values.items():
            rows.append(_row("quality", upsample, 1, False, "cpu", phase="sample", metric="fd", value=value,
                             unit="fd", seed=seed, n=100))
    table = normalise(pd.DataFrame(rows, columns=list(columns())))
    row = _effect(table, "upsample")
    # two variants and the seed as a block: the model is the paired t-test over seeds (differences -1, 0, -2)
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert (row["n"], row["estimate"], row["ci_low"], row["ci_high"], row["unit"]) == (
        6, pytest.approx(-1.0), pytest.approx(-1 - half), pytest.approx(-1 + half), "fd")
    assert row["p_value"] == pytest.approx(stats.ttest_1samp([-1.0, 0.0, -2.0], 0).pvalue)
    assert row["family"] == "primary" and not row["resolved"]


def test_axis_with_one_level_or_no_pairs_gives_no_effect():
    table = _pair_table([("nearest_conv", 1, [10]), ("conv_transpose", 4, [12])])  # differ in two axes at once
    derived = Derived.of_table(table)
    assert cost_pairs(derived.cost_cells).empty and derived.effects.empty


def test_holm_runs_over_the_primary_family_and_the_controls_apart_and_counts_are_exact(runs):
    effects = pd.read_csv(runs["full"] / "effects.csv")
    assert tuple(effects.columns) == ("axis", "from_level", "to_level", "base_config", "setting", "recipe", "phase",
                                      "step", "metric", "unit", "estimate", "ci_low", "ci_high", "n", "p_value", "p_adjusted",
                                      "resolved", "method", "family", "bound", "resolvable")
    from statsmodels.stats.multitest import multipletests

    primary = effects[effects["family"] == "primary"]
    # one time and one quality question per axis switch: upsample, attn_heads and checkpoint (time only)
    assert sorted(zip(primary["axis"], primary["metric"])) == [
        ("attn_heads", "fd"), ("attn_heads", "seconds_per_iter"), ("checkpoint", "seconds_per_iter"),
        ("upsample", "fd"), ("upsample", "seconds_per_iter")]
    aa = effects["axis"] == "control"
    for family, members in (("primary", effects["family"] == "primary"), ("known nulls", (effects["family"] == "control")
                                                                         & ~aa)):
        tested = effects[members & effects["p_value"].notna()]
        assert len(tested), family
        assert tested["p_adjusted"].tolist() == pytest.approx(
            multipletests(tested["p_value"], 0.05, "holm")[1].tolist())
        assert (tested["resolved"] == (tested["p_adjusted"] < 0.05)).all()
    # the A/A control is the run's bias check: each reading on its own, not diluted by a correction
    own = effects[aa & effects["p_value"].notna()]
    assert len(own) and (own["family"] == "control").all() and (own["p_adjusted"] == own["p_value"]).all()
    assert (own["resolved"] == (own["p_value"] < 0.05)).all()
    secondary = effects[(effects["family"] == "secondary") & effects["p_value"].notna()]
    assert secondary["p_adjusted"].isna().all() and (secondary["resolved"] == (secondary["p_value"] < 0.05)).all()
    assert primary["resolvable"].notna().all() and effects.loc[effects["family"] != "primary", "resolvable"].isna().all()
    counted = effects[effects["metric"].isin(["params", "flops", "saved_tensor_bytes"])]
    assert counted["p_value"].isna().all() and counted["method"].str.startswith("exact").all()


def test_the_factorial_model_finds_the_synthetic_timing_effects_and_the_control_rows_exist(runs):
    effects = pd.read_csv(runs["full"] / "effects.csv")
    time = effects[effects["metric"] == "seconds_per_iter"].set_index(["axis", "phase"])
    assert time.loc[("upsample", "train_step"), "estimate"] == pytest.approx(-5.0, abs=1.5)
    assert time.loc[("checkpoint", "train_step"), "estimate"] == pytest.approx(25.0, abs=2.0)
    assert time.loc[("upsample", "train_step"), "resolved"] and time.loc[("checkpoint", "train_step"), "resolved"]
    for null in (("control", "train_step"), ("control", "inference"), ("checkpoint", "inference"),
                 ("attn_heads", "train_step")):
        assert not time.loc[null, "resolved"] and time.loc[null, "ci_low"] < 0 < time.loc[null, "ci_high"]
    assert time.loc[("control", "train_step"), "n"] == 12
    assert "known null" in time.loc[("checkpoint", "inference"), "method"]


def test_effects_csv_agrees_with_the_report(runs):
    effects = pd.read_csv(runs["full"] / "effects.csv")
    markdown = (runs["full"] / "report.md").read_text()
    for _, row in effects.iterrows():
        assert describe_effect(row) in markdown, row.to_dict()


# --- the report of a synthetic run -----------------------------------------------------------------------------

EXPECTED_FIGURES = {
    "effect_upsample_cost", "effect_upsample_quality", "effect_attn_heads_cost", "effect_attn_heads_quality",
    "effect_checkpoint_cost", "cost_size", "cost_memory", "cost_speed", "checkpoint_tradeoff", "pareto",
    "curves_heldout_loss",
}
SECTIONS = ("Noise floor and controls", "Axis effects", "Cost per variant", "Checkpointing trade-off",
            "Quality against cost", "Learning curves", "Sample grids", "Tables")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    full = write_run(root / "cpu-run", synthetic_table())
    cuda = write_run(root / "cuda-run", synthetic_table(devices=("cuda",), quality=False, speed=4.0), samples=False)
    return {"full": full, "cuda": cuda, "full_html": write_report([full]), "cuda_html": write_report([cuda]),
            "compare_html": write_report([full, cuda])}


def test_report_has_every_section_and_figure(runs):
    html_text = runs["full_html"].read_text()
    markdown = (runs["full"] / "report.md").read_text()
    figures = {p.stem for p in (runs["full"] / "figures").glob("*.png")}
    assert figures == EXPECTED_FIGURES
    for title in SECTIONS:
        assert f"## {title}" in markdown and f">{html.escape(title)}</h2>" in html_text
    for name in EXPECTED_FIGURES:
        assert f"(<figures/{name}.png>)" in markdown
    readings = re.findall(r"^Reading: (.+)$", markdown, flags=re.M)
    assert len(readings) == len(EXPECTED_FIGURES) and all(len(r) > 20 for r in readings)
    # figures and both sample grids are embedded: the HTML needs no other file
    assert html_text.count('<img src="data:image/png;base64,') == len(EXPECTED_FIGURES) + 2
    assert "src=\"figures/" not in html_text and "samples/" not in html_text
    for table_title in ("Cost per variant: median", "Quality per variant", "Failed cells", "Environment of the run",
                        "Checks", "Per-block breakdown", "Machine measurements"):
        assert table_title in markdown


def test_readings_state_numbers_from_the_data(runs):
    markdown = (runs["full"] / "report.md").read_text()
    # the synthetic run makes conv_transpose 10% cheaper in FLOPs and checkpointing save 60% of saved bytes
    assert "nearest_conv → conv_transpose on cpu: train_step/flops -10% (exact, n=4)" in markdown
    assert "saved_tensor_bytes -60% (exact, n=4)" in markdown
    assert "real-data floor" in markdown and "not resolved: " in markdown
    assert "Noise floor (A/A control: the baseline timed twice as two instances): inference on cpu " in markdown


def test_every_injected_string_is_escaped_and_no_machine_path_leaks(runs):
    for path in (runs["full_html"], runs["full"] / "report.md", runs["compare_html"]):
        text = path.read_text()
        assert "<script" not in text.lower() and "<b>bold" not in text
        assert "&lt;script&gt;" in text
        assert str(runs["full"].parent) not in text


def test_a_cost_only_run_has_no_quality_sections(runs):
    markdown = (runs["cuda"] / "report.md").read_text()
    for title in ("Quality against cost", "Learning curves", "Sample grids", "Effects along training", "Tuning",
                  "Across scales", "Against the paper"):
        assert f"## {title}" not in markdown  # a section that does not apply to a run is not in its report
    assert "## Verdict" in markdown and "## Axis effects" in markdown
    figures = {p.stem for p in (runs["cuda"] / "figures").glob("*.png")}
    assert "pareto" not in figures and "effect_upsample_cost" in figures


def test_two_runs_side_by_side_with_ratios(runs):
    out = runs["compare_html"].parent
    assert out == runs["full"] / "compare-cuda-run"
    assert {p.stem for p in (out / "figures").glob("*.png")} >= {"compare_ratio_cost", "compare_cost_speed"}
    markdown = (out / "report.md").read_text()
    assert "matched by variant and measurement across devices (cpu vs cuda)" in markdown
    # the cuda run is built 4x faster: throughput ratios are 4, counted costs 1
    header = next(line for line in markdown.splitlines() if line.startswith("| variant |") and "B / A" in line)
    names = [c.strip() for c in header.split("|")]
    column, ratio, flag = names.index("measurement"), names.index("B / A [95% CI]"), names.index("beyond both floors")
    rows = [line for line in markdown.splitlines() if line.startswith("| nearest_conv+additive+1h |")]
    by_measure = {cells[column].strip(): (cells[ratio].strip(), cells[flag].strip())
                  for cells in (r.split("|") for r in rows)}
    assert by_measure["train_step/flops"] == ("1.000 [1.000, 1.000]", "")  # exact and unchanged
    ratio, low, high = map(float, re.findall(r"[\d.]+", by_measure["inference/images_per_s"][0]))
    assert ratio == pytest.approx(4.0, rel=0.1) and low < ratio < high  # resampled rounds: a real interval
    assert by_measure["inference/images_per_s"][1] == "yes"  # 4x is far beyond both A/A floors
    assert "Caution, the runs differ" not in markdown  # same base, batch, dtype and threads in both
    assert "No quality measurement appears in both runs" in markdown


def test_a_run_compared_with_itself_changes_nothing_beyond_the_noise(runs, tmp_path):
    write_report([runs["full"], runs["full"]], tmp_path / "self")
    markdown = (tmp_path / "self" / "report.md").read_text()
    assert "**Cost: changes beyond both runs' noise floors**" in markdown
    section = markdown.split("**Cost: changes beyond both runs' noise floors**")[1].split("**")[0]
    assert "None: every change is within the noise." in section
    effects = markdown.split("**Time effects on the wall time: each run's own 95% interval, and B vs A**")[1]
    assert re.search(r"None of the \d+ effects differs between the runs", effects.split("**")[0])


def test_bad_input_fails_early_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="valid: one folder, or two"):
        write_report([])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no metrics.parquet or metrics.csv"):
        write_report([tmp_path / "empty"])
    broken = tmp_path / "broken"
    broken.mkdir()
    pd.DataFrame({"kind": ["cost"], "value": [1.0]}).to_csv(broken / "metrics.csv", index=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['run_id', 'cell_id', 'variant', 'spec_hash', "):
        write_report([broken])


# --- the HTML in a real browser ---------------------------------------------------------------------------------

PROBE = """<script>window.addEventListener('load', () => {
  const widths = Array.from(document.images).map(i => (i.complete ? i.naturalWidth : -1));
  document.body.setAttribute('data-image-widths', widths.join(','));
});</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("headless Chromium is not installed (/usr/bin/chromium) and cannot be installed here "
                    "(needs root and apt-get): `apt-get install -y chromium` to run this check")
    for command in (["apt-get", "install", "-y", "chromium"], ["apt-get", "update"],
                    ["apt-get", "install", "-y", "chromium"]):
        subprocess.run(command, capture_output=True, timeout=900, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if os.path.exists("/usr/bin/chromium"):
            return "/usr/bin/chromium"
    pytest.skip("`apt-get install -y chromium` did not install /usr/bin/chromium (no package source reachable?)")


@pytest.mark.parametrize("which", ["full_html", "compare_html"])
def test_every_image_loads_in_headless_chromium(runs, which, tmp_path):
    browser = chromium()
    report = runs[which].read_text()
    expected = report.count("<img ")
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(report.replace("</body>", PROBE + "</body>"))
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
         probe_page.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'data-image-widths="([^"]*)"', result.stdout)
    assert match, f"Chromium did not run the probe (rc {result.returncode}): {result.stderr[-2000:]}"
    widths = [int(w) for w in match.group(1).split(",")]
    assert len(widths) == expected > 0
    assert all(w > 0 for w in widths), f"images that did not load: {[i for i, w in enumerate(widths) if w <= 0]}"


def test_values_equal_but_for_float_rounding_have_a_zero_width_interval():
    from bench.statistics.stats import t_interval

    low, high = t_interval([-4.3398, -4.3398 * (1 + 1e-15), -4.3398 * (1 - 1e-15)])
    assert low == high
    low, high = t_interval([1.0, 1.1, 0.9])
    assert low < 1.0 < high


def test_a_narrow_interval_is_shown_with_enough_digits_to_tell_its_ends_apart():
    from bench.report.render.wording import interval

    narrow = pd.Series({"mean": -4.3401, "low": -4.3422, "high": -4.3380, "n": 8})
    assert interval(narrow, "%", signed=True) == "-4.340% [95% CI -4.342, -4.338] (n=8)"
    wide = pd.Series({"mean": 1.0, "low": 0.5, "high": 1.5, "n": 3})
    assert interval(wide) == "1 [95% CI 0.5, 1.5] (n=3)"
    same = pd.Series({"mean": 2.0, "low": 2.0, "high": 2.0, "n": 4})
    assert interval(same) == "2 (identical in all n=4)"


def test_the_printed_summary_shows_the_report_s_medians_iqr_and_intervals():
    from bench.report.summary import printed_costs, printed_quality

    derived = Derived.of_table(synthetic_table())
    cost = printed_costs(derived).loc[("nearest_conv+additive+1h", "cpu")]
    cells = derived.cost_medians.set_index(["variant", "setting", "phase", "metric"])
    params = cells.loc[("nearest_conv+additive+1h", "cpu", "model", "params"), "value"]
    train = cells.loc[("nearest_conv+additive+1h", "cpu", "train_step", "images_per_s")]
    assert cost["params [M]"] == round(params / 1e6, 3)
    assert cost["train [img/s]"] == round(train["value"], 1)
    assert cost["train IQR%"] == round(100 * (train["q3"] - train["q1"]) / train["value"], 1)
    quality = printed_quality(derived)
    report = derived.quality.query("metric == 'fd'").set_index("variant")
    assert quality.loc["nearest_conv+additive+1h", "95% CI ±"] == round(
        report.loc["nearest_conv+additive+1h", "high"] - report.loc["nearest_conv+additive+1h", "mean"], 3)
    assert quality.loc["nearest_conv+additive+1h", "seeds"] == 3


LAYOUT_PROBE = """<script>window.addEventListener('load', () => {
  const verdict = document.querySelector('#verdict table');
  const rows = verdict ? Array.from(verdict.tBodies[0].rows).map(r => r.cells[0].textContent) : null;
  const visible = e => e.offsetParent !== null;
  const overflowing = Array.from(document.querySelectorAll('td, th, p, li, figcaption, h1, h2, h3, summary'))
    .filter(e => visible(e) && e.scrollWidth > e.clientWidth + 1).map(e => e.tagName + ': ' + e.textContent.slice(0, 60));
  document.body.setAttribute('data-verdict', JSON.stringify(rows));
  document.body.setAttribute('data-overflow', JSON.stringify(overflowing));
});</script>"""


def test_the_verdict_renders_one_row_per_axis_switch_and_no_text_overflows_in_headless_chromium(runs, tmp_path):
    browser = chromium()
    page = tmp_path / "layout.html"
    page.write_text(runs["full_html"].read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,900",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    verdict = re.search(r'data-verdict="([^"]*)"', result.stdout)
    overflow = re.search(r'data-overflow="([^"]*)"', result.stdout)
    assert verdict and overflow, f"Chromium did not run the probe (rc {result.returncode}): {result.stderr[-2000:]}"
    effects = pd.read_csv(runs["full"] / "effects.csv")
    switches = effects[effects["axis"] != "control"][["axis", "from_level", "to_level"]].drop_duplicates()
    expected = [f"{a}: {f} → {t}" for a, f, t in switches.itertuples(index=False)]
    assert json.loads(html.unescape(verdict.group(1))) == expected
    assert json.loads(html.unescape(overflow.group(1))) == []


def test_the_verdict_opens_the_report_and_is_effects_csv_in_other_words(runs):
    from bench.report.render.wording import signed

    markdown = (runs["full"] / "report.md").read_text()
    sections = re.findall(r"^## (.+)$", markdown, flags=re.M)
    assert sections[0] == "Verdict"
    effects = pd.read_csv(runs["full"] / "effects.csv")
    lines = markdown.split("## Verdict")[1].split("\n## ")[0].splitlines()
    header = next(line for line in lines if line.startswith("| switch |"))
    names = [c.strip() for c in header.split("|")]
    rows = {cells[1].strip(): cells for cells in (line.split("|") for line in lines if line.startswith("| upsample:"))}
    params = effects[(effects["axis"] == "upsample") & (effects["metric"] == "params")].iloc[0]
    row = rows[f"upsample: {params['from_level']} → {params['to_level']}"]
    assert row[names.index("parameters")].strip().startswith(signed(params["estimate"], "%"))
    fd = effects[(effects["axis"] == "upsample") & (effects["metric"] == "fd")].iloc[0]
    cell = row[names.index("FD")].strip()
    assert cell.startswith(signed(fd["estimate"])) and cell.endswith("✓") == bool(fd["resolved"])
    assert "Noise floor: the A/A control" in markdown.split("## Verdict")[1].split("\n## ")[0]
    # a sentence per switch, in words, with KID beside FD
    line = re.search(r"^- upsample nearest_conv → conv_transpose: .*: ((better|worse) by [0-9.]+ FD \(|no difference "
                     r"in quality beyond ±[0-9.]+ FD \([0-9.]+% interval; )[0-9.]+ of the real-versus-real floor, "
                     r"[0-9.]+\), (KID agrees|KID disagrees in direction|KID does not resolve it|only KID resolves it)"
                     r": ([-+][0-9.e-]+) \[([-+][0-9.e-]+), ([-+][0-9.e-]+)\] \(([0-9.]+)% interval\)\.$",
                     markdown, flags=re.M)
    assert line
    # KID's interval is at the level of FD's bound: as much wider than its 95% one as FD's bound's interval is
    kid = effects[(effects["axis"] == "upsample") & (effects["metric"] == "kid")].iloc[0]
    assert float(line.group(4)) == pytest.approx(kid["estimate"], rel=1e-2)
    fd_wider = (fd["bound"] - abs(fd["estimate"])) / ((fd["ci_high"] - fd["ci_low"]) / 2)
    kid_half = (float(line.group(6)) - float(line.group(5))) / 2
    assert kid_half / ((kid["ci_high"] - kid["ci_low"]) / 2) == pytest.approx(fd_wider, rel=2e-2)
    assert row[names.index("KID")].strip().startswith(signed(kid["estimate"]))
    # an unresolved primary effect reads its bound and the level of the interval it comes from (not the 95% printed
    # beside it); the run says what it could have resolved
    if not bool(fd["resolved"]):
        m = int(((effects["family"] == "primary") & effects["p_value"].notna()).sum())
        assert f"beyond ±{fd['bound']:.3g} FD ({100 * (1 - 0.05 / m):.4g}% interval" in markdown
    assert "Smallest effect this run resolves on FD:" in markdown
    assert "Smallest effect this run resolves on training step time:" in markdown


def test_runs_that_cost_two_networks_are_compared_network_by_network(tmp_path):
    table = synthetic_table(quality=False)
    other = table[table["kind"].isin(["cost", "timing"])].assign(
        base_config="other", cell_id=lambda t: t["cell_id"] + "-other")
    run = write_run(tmp_path / "two-bases", pd.concat([table, other], ignore_index=True), samples=False)
    write_report([run, run], tmp_path / "self")
    markdown = (tmp_path / "self" / "report.md").read_text()
    rows = [line.split("|") for line in markdown.splitlines()
            if line.startswith("| nearest_conv+additive+1h |") and "| train_step/flops" in line]
    header = next(line.split("|") for line in markdown.splitlines() if line.startswith("| variant | base_config"))
    pairs = sorted((row[header.index(" base_config ")].strip(), row[header.index(" measurement ")].strip())
                   for row in rows)
    # never digits8 against other: each network's flops against its own, and the table says which network
    assert pairs == [("digits8", "train_step/flops · digits8"), ("other", "train_step/flops · other")]


# --- what a report knows about its own run -----------------------------------------------------------------
def test_a_report_of_an_unfinished_run_opens_with_what_is_missing(tmp_path):
    table = synthetic_table()
    root = write_run(tmp_path / "partial", table[table["kind"] != "timing"], samples=False)
    held = sorted(set(table.loc[table["kind"] != "timing", "cell_id"]))
    planned = [{"id": i, "kind": i.split("-")[0], "label": i} for i in held] + [
        {"id": "timing-cpu", "kind": "timing", "label": "timing 9 models"}]
    (root / "run.json").write_text(json.dumps({"planned_cells": planned}))
    write_report([root])
    intro = (root / "report.md").read_text().split("\n\n")[1]
    assert intro.startswith(f"Incomplete run: {len(held)} of {len(planned)} planned cells; missing: 1 timing cell "
                            "(no time effects).")
    verdict = (root / "report.md").read_text().split("## Verdict")[1]
    assert "time not measured (no timing cell)" in verdict


def test_a_complete_run_says_nothing_of_missing_cells(runs):
    assert "Incomplete run" not in (runs["full"] / "report.md").read_text()


def test_timing_on_a_busy_machine_is_marked_disturbed_and_not_interpreted(tmp_path):
    table = synthetic_table(quality=False)
    timed = table[table["metric"] == "seconds_per_iter"]
    # a neighbour took a core: the 2 threads had 1.2 cores' worth of CPU per block, and the load was 3.9
    cpu = timed.assign(metric="cpu_seconds_per_iter", value=1.2 * timed["value"])
    load = timed.drop_duplicates("repeat").assign(phase="env", metric="loadavg_1min", value=3.9, unit="processes",
                                                  variant="group", position=pd.NA)
    table = normalise(pd.concat([table, cpu, load], ignore_index=True))
    root = write_run(tmp_path / "busy", table, samples=False)
    (root / "env.json").write_text(json.dumps({"cpu_count": 2}))
    write_report([root])
    effects = pd.read_csv(root / "effects.csv")
    time = effects[effects["unit"].eq("%") & effects["metric"].isin(["seconds_per_iter", "cpu_seconds_per_iter"])]
    assert len(time) and time["p_value"].isna().all() and not time["resolved"].any()
    assert time["method"].str.contains("timing disturbed: CPU/wall 1.20 of 2 threads, load 3.9 on 2 cores").all()
    report = (root / "report.md").read_text()
    assert "timing disturbed (CPU/wall 1.20 of 2 threads, load 3.9 on 2 cores): not interpreted" in report
    assert "1 setting(s) disturbed" in report


def test_a_resolved_control_opens_the_verdict_with_the_bias_it_shows():
    from bench.report.sections.verdict import _failed_control

    row = dict(axis="control", from_level="a", to_level="a (second instance)", phase="train_step",
               metric="seconds_per_iter", unit="%", estimate=3.59, ci_low=0.707, ci_high=6.65, setting="cpu")
    effects = pd.DataFrame([row | {"resolved": True}, row | {"phase": "inference", "estimate": 0.5, "resolved": False}])
    assert _failed_control(effects).startswith("Warning: this run's timing is biased by +3.6% (the A/A control, the "
                                               "baseline against a second instance of itself, on train_step on cpu: "
                                               "+3.59% [+0.707, +6.65], an interval that excludes zero): treat its "
                                               "time effects with care")
    assert _failed_control(effects.assign(resolved=False)) == ""
    # a known null (checkpointing on inference) that came out resolved: the design's bias
    null = row | {"axis": "checkpoint", "phase": "inference", "resolved": True}
    assert _failed_control(pd.DataFrame([null])).startswith("Warning: a control whose true effect is zero came out "
                                                            "resolved (inference/seconds_per_iter +3.59%")
