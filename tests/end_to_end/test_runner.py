"""The runner: options fail before any work, failures become rows, and a killed sweep resumes exactly."""
import dataclasses
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.schema import columns

from helpers import ENV, ROOT, SMALL, bench, refused


BAD_OPTIONS = [
    (["--preset", "huge"], "--preset 'huge' is not a preset; valid: adm_table1, edm2_table1, full, gpu, peers, quick, scale, smoke"),
    (["--axis", "heads=1,2"], "--axis 'heads=1,2' is invalid; valid: NAME=V1,V2 with NAME an axis (upsample, "),
    (["--axis", "heads=1,2"], "or a recipe axis (lr, lr_schedule, weight_decay, ema_decay)"),
    (["--axis", "upsample=pixel_shuffle"], "upsample='pixel_shuffle' is not a registered variant; valid: nearest_conv"),
    (["--axis", "attn_heads=3"], "attn_heads=3 does not divide"),
    (["--device", "tpu"], "--device 'tpu' is invalid; valid: cpu, cuda, auto"),
    (["--only", "beauty"], "--only 'beauty' is invalid; valid: cost, quality"),
    (["--threads", "0"], "--threads 0 is invalid"),
    (["--jobs", "0"], "--jobs 0 is invalid; valid: an integer from 1 to 1024"),
    (["--base", "imagenet"], "--base 'imagenet' is invalid; valid: digits8, digits8_ch16, digits8_ch32, digits8_ch8, fmnist28, cifar32, ddpm_cifar10"),
    (["--import", "no_such_plugin"], "--import 'no_such_plugin' cannot be imported"),
    (["--quality", "imagenet"], "--quality 'imagenet' is invalid; valid: smoke, quick, quick_ch32, full, fashion_mnist_fid"),
    (["--base", '{"in_dim": 28, "in_ch": 1, "out_ch": 1, "ch": 100000, "ch_mult": [1, 1, 2], '
                '"attn_resolutions": [14]}'],
     "--base and --batch-size: fmnist28[ch=100000] at batch 4 plans 165,645.6 GiB for one training step (weights, "
     "gradients, AdamW moments and saved activations), more than the"),
    (["--base", "fmnist28", "--batch-size", "65536"], "--base and --batch-size: fmnist28 at batch 65536 plans"),
]


def test_inception_fid_without_its_package_fails_at_once_saying_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as offline machines without the extra are
    err = refused(capsys, "run", "--out", str(tmp_path / "run"), "--preset", "smoke", "--quality", "cifar10_fid")
    assert "--quality cifar10_fid: inception_fid=True needs the torch-fidelity package: `pip install torch-fidelity`" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,message", BAD_OPTIONS, ids=[a[1] for a, _ in BAD_OPTIONS])
def test_bad_options_fail_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert message in refused(capsys, "run", "--out", str(out), "--preset", "smoke", *args)
    assert not out.exists()


# A user's block that fails, fails in one line: a plugin the registry refuses, one whose own code raises, and a block
# that raises while the plan builds it each exit 2 with one line naming the plugin's file and line.
OLD_SIGNATURE_PLUGIN = """from torch import nn
from variants import UPSAMPLERS

@UPSAMPLERS.register("old_style")
class OldUpsample(nn.Module):
    def __init__(self, channels):  # written before blocks took `parts`
        super().__init__()
"""
BROKEN_INIT_PLUGIN = """from variants import UPSAMPLERS, Parts, Upsampler

@UPSAMPLERS.register("broken_init")
class BrokenInit(Upsampler):
    def __init__(self, channels: int, parts: Parts) -> None:
        super().__init__()
        raise RuntimeError("my block is broken")
"""


def test_a_plugin_with_an_old_signature_block_fails_in_one_line_not_a_traceback(tmp_path):
    (tmp_path / "old_signature.py").write_text(OLD_SIGNATURE_PLUGIN)
    result = subprocess.run([sys.executable, "-m", "bench", "list", "--import", "old_signature"], cwd=ROOT,
                            env=ENV | {"PYTHONPATH": f"{ENV['PYTHONPATH']}{os.pathsep}{tmp_path}"},
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == (
        f"error: --import 'old_signature' failed at {tmp_path / 'old_signature.py'}:4: TypeError: upsample: "
        "'old_style' is OldUpsample(channels), but the builder calls it as OldUpsample(channels, parts); valid: "
        "def __init__(self, channels, parts) (blocks take `parts`, the toolbox they build their layers with: "
        "docs/extending.md)\n")


@pytest.fixture
def user_plugins(tmp_path, monkeypatch):
    """A folder on sys.path for the test's plugin modules; afterwards they and what they registered are gone."""
    from variants import UPSAMPLERS

    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for path in tmp_path.glob("*.py"):
        sys.modules.pop(path.stem, None)
    UPSAMPLERS.unregister("broken_init")


def test_a_plugin_whose_code_raises_fails_in_one_line(user_plugins, tmp_path, capsys):
    (user_plugins / "typo_plugin.py").write_text("from variants import UPSAMPLERS\n\nUPSAMPLERS.regster('x')\n")
    err = refused(capsys, "run", "--out", str(tmp_path / "run"), *SMALL, "--import", "typo_plugin")
    assert err.startswith("error: --import 'typo_plugin' failed at ") and err.count("\n") == 1
    assert err.endswith("typo_plugin.py:3: AttributeError: 'Registry' object has no attribute 'regster'\n")
    assert not (tmp_path / "run").exists()


def test_a_block_that_raises_while_the_plan_builds_it_fails_in_one_line(user_plugins, tmp_path, capsys):
    (user_plugins / "broken_init.py").write_text(BROKEN_INIT_PLUGIN)
    err = refused(capsys, "run", "--out", str(tmp_path / "run"), *SMALL, "--import", "broken_init",
                  "--axis", "upsample=nearest_conv,broken_init")
    assert err.startswith("error: --import 'broken_init' failed at ") and err.count("\n") == 1
    assert err.endswith("broken_init.py:7 (in BrokenInit.__init__): RuntimeError: my block is broken (while "
                        "planning, which builds every variant before any cell runs)\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so asking for it is not an error")
def test_missing_cuda_device_fails_before_any_work(tmp_path, capsys):
    err = refused(capsys, "run", "--out", str(tmp_path / "run"), "--device", "cpu,cuda", *SMALL)
    assert "--device cuda was asked for, but torch sees no CUDA device" in err


def test_a_folder_with_a_foreign_table_is_refused(tmp_path, capsys):
    (tmp_path / "metrics.csv").write_text("a,b\n1,2\n")
    assert "not a run of this tool" in refused(capsys, "run", "--out", str(tmp_path), *SMALL)


def test_a_folder_with_another_schema_is_refused(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "old", "schema_version": 0, "columns": ["x"],
                                                   "config": {}}))
    err = refused(capsys, "run", "--out", str(tmp_path), "--resume", *SMALL)
    assert "holds a table of another schema" in err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    # at the smoke preset's batch of 4: its checks that every measured value is positive are not about batch 1
    result = bench("run", "--out", str(out), *SMALL, "--batch-size", "4", "--import", "faulty_variants",
                   "--axis", "upsample=nearest_conv,exploding,out_of_memory", timeout=600)
    return out, result


def test_sweep_writes_tidy_tables_and_env(finished_run):
    out, result = finished_run
    table = pd.read_parquet(out / "metrics.parquet")
    assert list(table.columns) == list(columns())
    csv = pd.read_csv(out / "metrics.csv")
    assert len(csv) == len(table)
    env = json.loads((out / "env.json").read_text())
    for key in ("libraries", "cpu_model", "threads", "load_start", "load_end", "git_revision", "command"):
        assert key in env
    assert env["threads"] == 1 and env["command"].startswith("python -m bench run")
    clean = table.groupby("variant")["status"].agg(lambda s: (s == "ok").all())
    assert set(clean[clean].index) == {"nearest_conv+additive+1h", "group"}
    ok = table[table["variant"].isin({*clean[clean].index, "group"}) & (table["status"] == "ok")]
    speed = ok[(ok["metric"] == "seconds_per_iter")]
    assert set(speed["phase"]) == {"train_step", "inference"} and set(speed["kind"]) == {"timing"}
    # rounds are rows, never averages; every model of the setting is timed in every round
    per_model = speed.groupby(["variant", "replica", "phase"])["repeat"].agg(["count", "nunique"])
    assert (per_model["count"] >= 3).all() and (per_model["count"] == per_model["nunique"]).all()
    assert speed["cell_id"].nunique() == 1
    # the A/A control: the baseline's second instance, timed in every round beside the first
    control = speed[speed["replica"] == 1]
    assert set(control["variant"]) == {"nearest_conv+additive+1h"}
    assert set(control["repeat"]) == set(speed["repeat"])
    for metric, unit in [("params", "count"), ("saved_tensor_bytes", "bytes"), ("peak_rss_bytes", "bytes"),
                         ("images_per_s", "images/s"), ("fraction_of_peak", "ratio"),
                         ("cpu_seconds_per_iter", "s"), ("matmul_peak_flop_per_s", "FLOP/s"),
                         ("planned_state_bytes", "bytes"), ("state_bytes", "bytes")]:
        rows = ok[ok["metric"] == metric]
        assert len(rows) and set(rows["unit"]) == {unit}, metric
        assert (rows["value"] > 0).all(), metric


def test_a_failing_cell_is_a_row_and_the_sweep_goes_on(finished_run):
    out, result = finished_run
    assert result.returncode == 1, result.stderr  # an error anywhere makes the run exit non-zero, loudly
    table = pd.read_parquet(out / "metrics.parquet")
    exploding = table[table["upsample"] == "exploding"]
    assert set(exploding["status"]) >= {"error"}
    assert "injected failure in the exploding upsampler" in " ".join(exploding["message"])
    oom = table[table["upsample"] == "out_of_memory"]
    assert "oom" in set(oom["status"]) and "error" not in set(oom["status"])
    assert "did not finish cleanly" in result.stderr
    assert "Traceback" not in result.stderr  # a user's block that raises is its cell's rows, not a traceback


def test_summary_is_printed(finished_run):
    _, result = finished_run
    assert "Cost per variant" in result.stdout and "train [img/s]" in result.stdout


def test_rerun_without_resume_is_refused_and_resume_with_other_options_too(finished_run, capsys):
    out, _ = finished_run
    assert "pass --resume" in refused(capsys, "run", "--out", str(out), *SMALL)
    err = refused(capsys, "run", "--out", str(out), "--resume", *SMALL, "--batch-size", "3")
    assert "batch_size: stored 4, now 3" in err


def test_resume_removes_temporaries_a_killed_write_left_behind(tmp_path):
    from bench.atomic import atomic_write_text
    from bench.store.folder import RunStore

    store = RunStore(tmp_path / "run")
    store.open({"preset": "smoke"}, resume=False, run_id="r1", planned=[])
    atomic_write_text(store.root / "metrics.csv", "kept\n")
    stale = [store.root / ".metrics.csv.abc123.tmp", store.cells_dir / ".0123456789ab.parquet.def456.tmp"]
    for path in stale:
        path.write_text("half a file")
    assert store.open({"preset": "smoke"}, resume=True, run_id="r2", planned=[]) == "r1"
    assert not any(path.exists() for path in stale)
    assert (store.root / "metrics.csv").read_text() == "kept\n"


def test_resuming_with_other_code_warns_and_keeps_every_revision(tmp_path, capsys):
    from bench.run.runner import _note_earlier_revisions

    env = {"git_revision": "new"}
    _note_earlier_revisions(env, {"git_revision": "old", "earlier_revisions": ["older"]})
    assert env["earlier_revisions"] == ["old", "older"]
    assert "measured at git revision(s) old, older, not new" in capsys.readouterr().err
    same = {"git_revision": "new"}
    _note_earlier_revisions(same, {"git_revision": "new"})
    assert "earlier_revisions" not in same and capsys.readouterr().err == ""


def test_plan_prints_the_cells_and_their_time_and_runs_nothing(tmp_path, capsys, monkeypatch):
    from bench.plan.planner import make_plan
    from bench.plan.options import SweepOptions

    monkeypatch.setattr("bench.run.runner.machine_pace", lambda: 1.5)  # a machine at 1.5x the priors' time
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--preset", "quick", "--plan"]) == 0
    text = capsys.readouterr().out
    paced = make_plan(SweepOptions(preset="quick", out=out)).estimate(1.5)
    assert text.startswith(f"quick: 47 cells (factorial design on fmnist28); {paced.describe()}\n")
    assert "on this machine, whose probe ran at 1.50x the priors' time (cost " in text
    assert "  timing: 2 cell(s)" in text and "  quality: 8 cell(s)" in text
    assert not out.exists()


def test_only_a_plan_longer_than_a_minute_and_run_here_probes_the_machine(monkeypatch):
    from bench.plan.estimate import PROBE_ABOVE_SECONDS, estimate
    from bench.plan.options import BackendOptions, SweepOptions
    from bench.plan.planner import make_plan
    from bench.run.runner import probed_pace

    probes = []
    monkeypatch.setattr("bench.run.runner.machine_pace", lambda: probes.append(1) or 0.8)
    plan = make_plan(SweepOptions(preset="smoke", out=Path("unused"), threads=2))
    short = [c for c in plan.cells if c.kind == "cost"][:1]
    assert estimate(short, plan.sweep.rounds, plan.jobs).seconds <= PROBE_ABOVE_SECONDS < plan.estimate().seconds
    assert probed_pace(plan, short) is None and probes == []
    assert probed_pace(plan, plan.cells) == 0.8 and probes == [1]
    elsewhere = dataclasses.replace(plan, options=dataclasses.replace(plan.options, backend=BackendOptions("ray")))
    assert probed_pace(elsewhere, elsewhere.cells) is None and probes == [1]  # its cells run on other machines


def test_a_ctrl_c_while_the_machine_is_probed_says_what_was_kept_in_one_line(tmp_path, monkeypatch, capsys):
    def interrupted() -> float:
        raise KeyboardInterrupt

    monkeypatch.setattr("bench.run.runner.machine_pace", interrupted)  # the smoke plan is long enough to probe
    assert main(["run", "--preset", "smoke", "--out", str(tmp_path / "run")]) == 130
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert lines == [f"interrupted by SIGINT: every finished cell is kept in {tmp_path / 'run'}; rerun with --resume "
                     "to finish"]


def test_the_pace_probe_times_two_one_thread_workers_and_leaves_the_thread_count_as_it_was(monkeypatch):
    from bench.measure import machine_pace

    timed = []  # (thread, torch threads) of every block the probe times
    real_timer = machine_pace.BlockTimer

    def watched_timer(*args, **kwargs):
        timer = real_timer(*args, **kwargs)

        def block():
            timed.append((threading.get_ident(), torch.get_num_threads()))
            return timer()
        return block

    monkeypatch.setattr(machine_pace, "BlockTimer", watched_timer)
    monkeypatch.setattr(machine_pace, "PROBE_BLOCKS", 3)  # the count is the probe's; the test checks it is obeyed
    torch.set_num_threads(3)  # not the probe's 1, so a probe that left it changed would show
    seconds = machine_pace.probe_seconds()
    assert 0 < seconds < 10 and torch.get_num_threads() == 3
    assert len(timed) == 2 * machine_pace.PROBE_BLOCKS and len({ident for ident, _ in timed}) == 2
    assert {threads for _, threads in timed} == {1}


def test_a_ctrl_c_during_the_probe_stops_its_workers_before_it_returns(monkeypatch):
    """Workers still inside torch when the interpreter exits can abort it: the probe stops and waits for them."""
    import signal

    from bench.measure import machine_pace

    timed, busy = [], []  # every block begun; one entry per worker inside torch (set-up, warm-up or a block)
    real_timer = machine_pace.BlockTimer

    def inside_torch(call):
        busy.append(1)
        try:
            return call()
        finally:
            busy.pop()

    def watched_timer(*args, **kwargs):
        timer = inside_torch(lambda: real_timer(*args, **kwargs))
        return lambda: timed.append(1) or inside_torch(timer)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(machine_pace, "BlockTimer", watched_timer)
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)  # 108 steps take seconds: this lands while the workers time blocks
    try:
        with pytest.raises(KeyboardInterrupt):
            machine_pace.probe_seconds()
        assert busy == [] and len(timed) < 2 * machine_pace.PROBE_BLOCKS  # stopped short, none inside torch
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_pace_probe_worker_that_fails_fails_the_probe(monkeypatch):
    from bench.measure import machine_pace

    real_timer, timers = machine_pace.BlockTimer, []

    def second_fails(*args, **kwargs):  # the first worker times its blocks, the second fails
        timers.append(1)
        if len(timers) == 2:
            raise RuntimeError("no memory for the probe")
        return real_timer(*args, **kwargs)

    monkeypatch.setattr(machine_pace, "BlockTimer", second_fails)
    monkeypatch.setattr(machine_pace, "PROBE_BLOCKS", 3)
    torch.set_num_threads(3)
    with pytest.raises(RuntimeError, match="no memory for the probe"):  # not a median of the other worker's blocks
        machine_pace.probe_seconds()
    assert torch.get_num_threads() == 3


def test_progress_predicts_the_paced_estimate_and_corrects_only_what_the_pace_missed(capsys):
    from bench.plan.estimate import cell_seconds, clock, estimate
    from bench.plan.options import SweepOptions
    from bench.plan.planner import make_plan
    from bench.run.runner import Progress

    plan = make_plan(SweepOptions(preset="smoke", out=Path("unused"), parts=("cost",), threads=2))
    cells, rounds = plan.cells, plan.sweep.rounds
    progress = Progress(cells, rounds, plan.jobs, pace=2.0)
    first = cells[0]
    progress.done(first, progress.prior[first], "ok")  # took exactly its paced prior: nothing left to correct
    left = estimate(cells[1:], rounds, plan.jobs, pace=2.0).seconds
    assert f"about {clock(left)} left" in capsys.readouterr().out
    assert progress.prior[first] == pytest.approx(2 * cell_seconds(first, rounds))


def test_the_estimate_scales_each_kind_s_measured_prior():
    from bench.plan.cells import Cell
    from bench.plan.estimate import PRIORS, cell_seconds
    from bench.plan.sweep import RoundsBudget
    from variants import BASES

    rounds = RoundsBudget(warmup=1, block_seconds=0.1, min_rounds=10, max_seconds=100.0)
    base = Cell("cost", BASES["fmnist28"], "cpu", batch_size=16, base_config="fmnist28")
    assert cell_seconds(base, rounds) == PRIORS["cost"]["fmnist28"]["seconds"]
    wider = Cell("cost", BASES["fmnist28"].replace(ch=128), "cpu", batch_size=16, base_config="fmnist28[ch=128]")
    assert cell_seconds(wider, rounds) > 3 * cell_seconds(base, rounds)  # ~4x the parameters
    timing = Cell("timing", None, "cpu", base_config="fmnist28", members=(base, base))
    # each process starts and sets up both members: the first counts them too, so it takes longer; a later one's
    # set-up is its warm-up calls, measured at priors["warmup"] of them (here one fewer in every process)
    priors, processes = PRIORS["timing"], rounds.processes
    call = priors["later"]["fmnist28"] / priors["warmup"]
    set_up = 2 * (priors["first"]["fmnist28"] - call + (processes - 1) * call * rounds.warmup)
    assert (rounds.warmup, priors["warmup"]) == (1, 2)
    assert cell_seconds(timing, rounds) == pytest.approx(processes * priors["start"] + set_up + 100.0)
    assert priors["first"]["fmnist28"] > priors["later"]["fmnist28"]
    warmer = RoundsBudget(warmup=5, block_seconds=0.1, min_rounds=10, max_seconds=100.0)
    assert cell_seconds(timing, warmer) == pytest.approx(cell_seconds(timing, rounds) + 2 * 4 * call * processes)
    assert cell_seconds(Cell("cost", BASES["fmnist28"], "cuda", batch_size=16, base_config="fmnist28"), rounds) is None
    # on a machine at twice the priors' time every prior doubles but a timing cell's rounds, which stop on the clock
    quality = Cell("quality", BASES["digits8_ch16"], "cpu", base_config="digits8_ch16", quality="quick", seeds=(0,))
    for cell in (base, wider, quality):
        assert cell_seconds(cell, rounds, pace=2.0) == pytest.approx(2 * cell_seconds(cell, rounds))
    assert cell_seconds(timing, rounds, pace=2.0) == pytest.approx(2 * cell_seconds(timing, rounds) - 100.0)
