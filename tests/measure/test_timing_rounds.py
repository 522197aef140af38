"""Timing in randomized rounds and the blocked factorial model behind its effects: mechanics only, no timing
is asserted."""
from __future__ import annotations

import dataclasses
import itertools
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bench.measure.rounds import RoundTimer, plain_counts, round_order
from bench.measure.timing_cell import time_in_rounds
from bench.models.sizes import planned_state_bytes
from bench.plan.cells import Cell
from bench.plan.designs import grid
from bench.plan.groups import timing_cells
from bench.plan.sweep import RoundsBudget
from bench.statistics.rounds_model import blocked_factorial, interval_method, percent, timing_effects
from variants import default_grid

from helpers import ROOT, SMALL_SPECS

TINY = SMALL_SPECS["8x8x1"]
BASELINE = TINY.name  # the reference level of every axis
AXES = ("a", "b", "c")


def test_each_round_order_is_a_permutation_and_the_seed_fixes_it():
    orders = [round_order(17, seed=3, round_index=r) for r in range(20)]
    assert all(sorted(order) == list(range(17)) for order in orders)
    assert orders == [round_order(17, seed=3, round_index=r) for r in range(20)]
    assert len({tuple(o) for o in orders}) == 20                 # a fresh order every round
    assert orders[0] != round_order(17, seed=4, round_index=0)


def synthetic_rounds(effects: dict[str, float], rounds: int, rng: np.random.Generator, noise: float = 0.05,
                     drift: float = 0.3, processes: int = 1, process_speed: float = 0.0,
                     process_model: float = 0.0) -> pd.DataFrame:
    """A 2^3 design plus an A/A copy of the baseline, timed in rounds: each round has its own speed (drift up to
    +-30%), a trend within the round, and log-normal block noise. ``effects`` are true log effects. The rounds are
    dealt to ``processes`` in turn, each with its own speed (SD ``process_speed``) and, for each model, its own
    offset (SD ``process_model``: a process's layout favouring one model), all on the log scale."""
    rows = []
    members = [dict(zip(AXES, levels), replica=0) for levels in itertools.product((0, 1), repeat=3)]
    members.insert(1, dict(a=0, b=0, c=0, replica=1))
    speed = rng.normal(0, process_speed, processes)
    offset = rng.normal(0, process_model, (processes, len(members)))
    for r in range(rounds):
        process = r * processes // rounds
        level = rng.uniform(-drift, drift) + speed[process]
        order = rng.permutation(len(members))
        for position, index in enumerate(order):
            m = members[index]
            log_t = (level + 0.02 * position + sum(effects[k] * m[k] for k in AXES) + offset[process, index]
                     + rng.normal(0, noise))
            rows.append(m | {"block": r, "process": process, "value": np.exp(log_t)})
    return pd.DataFrame(rows)


def test_the_model_recovers_known_effects_through_round_drift():
    truth = {"a": 0.10, "b": -0.05, "c": 0.0}
    fit = blocked_factorial(synthetic_rounds(truth, 30, np.random.default_rng(0)), [*AXES, "replica"],
                            dict.fromkeys([*AXES, "replica"], 0))
    got = dict(zip(fit["factor"], fit["beta"]))
    for axis, beta in truth.items():
        assert got[axis] == pytest.approx(beta, abs=0.02)
    assert got["replica"] == pytest.approx(0.0, abs=0.03)
    assert (fit["n"] == 30).all()
    assert fit["round_sd"].iloc[0] > 2 * fit["block_sd"].iloc[0]  # drift is large; the model sees through it


def test_intervals_over_rounds_cover_the_truth_at_the_nominal_rate():
    truth = {"a": 0.10, "b": -0.05, "c": 0.0}
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(300):
        fit = blocked_factorial(synthetic_rounds(truth, 12, rng), [*AXES, "replica"],
                                dict.fromkeys([*AXES, "replica"], 0))
        assert (fit["unit"] == "round").all() and (fit["df"] == 11).all()
        covered += [low <= truth.get(f, 0.0) <= high for f, low, high in zip(fit["factor"], fit["low"], fit["high"])]
    # 1,200 intervals: a t-interval over 12 rounds is exact for normal noise; 93% is 3.6 standard errors below 95%
    assert 0.93 <= np.mean(covered) <= 0.97, np.mean(covered)


@pytest.mark.parametrize("processes", [3, 4])
def test_over_processes_the_intervals_take_the_process_as_the_unit_and_cover_what_rounds_alone_cannot(processes):
    # each process favours some models by its own 4% (SD): rounds within a process cannot see it
    truth = {"a": 0.10, "b": -0.05, "c": 0.0}
    factors, reference = [*AXES, "replica"], dict.fromkeys([*AXES, "replica"], 0)
    rng = np.random.default_rng(3)
    covered = {"processes": [], "rounds alone": []}
    for _ in range(150):
        frame = synthetic_rounds(truth, 10 * processes, rng, noise=0.01, drift=0.1, processes=processes,
                                 process_model=0.04)
        for how, process in (("processes", "process"), ("rounds alone", None)):
            fit = blocked_factorial(frame, factors, reference, process=process)
            covered[how] += [low <= truth.get(f, 0.0) <= high for f, low, high in zip(fit["factor"], fit["low"],
                                                                                     fit["high"])]
    rate = {how: np.mean(hits) for how, hits in covered.items()}
    # 600 intervals each: over processes the t-interval on P - 1 degrees of freedom holds its 95% (93% is 2.7
    # standard errors below); intervals blind to the process level cover far too rarely
    assert rate["processes"] >= 0.93, rate
    assert rate["rounds alone"] <= 0.75, rate


def test_with_fewer_than_three_processes_the_unit_is_the_round_and_the_method_says_what_it_leaves_out():
    frame = synthetic_rounds({"a": 0.1, "b": 0.0, "c": 0.0}, 12, np.random.default_rng(4), processes=2)
    factors, reference = [*AXES, "replica"], dict.fromkeys([*AXES, "replica"], 0)
    two = blocked_factorial(frame, factors, reference, process="process")
    rounds = blocked_factorial(frame, factors, reference)
    pd.testing.assert_frame_equal(two.drop(columns=["processes", "round_sd", "process_speed_sd", "process_sd"]),
                                  rounds.drop(columns=["processes", "round_sd", "process_speed_sd", "process_sd"]))
    assert (two["unit"] == "round").all() and (two["processes"] == 2).all()
    for fit in (two, rounds):  # one process cannot show the variation between processes either
        assert "excludes the variation between processes" in interval_method("OLS", fit.iloc[0])
    three = blocked_factorial(synthetic_rounds({"a": 0.1, "b": 0.0, "c": 0.0}, 12, np.random.default_rng(4),
                                               processes=3), factors, reference, process="process")
    assert (three["unit"] == "process").all() and (three["df"] == 2).all()
    assert "over the processes" in interval_method("OLS", three.iloc[0])


def test_a_process_that_lacks_a_level_leaves_out_that_term_alone():
    # a member that failed in the first process (or a timing cell of a split setting) holds no a = 1 there
    frame = synthetic_rounds({"a": 0.1, "b": 0.0, "c": 0.0}, 12, np.random.default_rng(7), processes=4)
    frame = frame[(frame["process"] != 0) | (frame["a"] == 0)]
    fit = blocked_factorial(frame, [*AXES, "replica"], dict.fromkeys([*AXES, "replica"], 0), process="process")
    units = dict(zip(fit["factor"], fit["units"]))
    assert units == {"a": 3, "b": 4, "c": 4, "replica": 4}
    assert fit.loc[fit["factor"] == "a", "beta"].iloc[0] == pytest.approx(0.1, abs=0.05)


def test_the_noise_levels_recover_known_standard_deviations():
    frame = synthetic_rounds({"a": 0.1, "b": 0.0, "c": 0.0}, 400, np.random.default_rng(5), noise=0.02, drift=0.0,
                             processes=40, process_speed=0.05, process_model=0.03)
    frame["value"] *= np.exp(np.random.default_rng(6).normal(0, 0.1, 400))[frame["block"]]  # each round's speed
    fit = blocked_factorial(frame, [*AXES, "replica"], dict.fromkeys([*AXES, "replica"], 0),
                            process="process").iloc[0]
    # a block's residual holds the noise, the position trend (0.02 a place in a random order: SD 0.02 * 2.6) and
    # its model's offset in its process
    assert fit["block_sd"] == pytest.approx(np.sqrt(0.02 ** 2 + 0.02 ** 2 * (9 ** 2 - 1) / 12 + 0.03 ** 2), rel=0.1)
    assert fit["round_sd"] == pytest.approx(0.1, rel=0.15)
    assert fit["process_speed_sd"] == pytest.approx(0.05, rel=0.3)
    # a model's offset against its process's mean offset over the 9 models: SD 0.03 * sqrt(8 / 9)
    assert fit["process_sd"] == pytest.approx(0.03 * np.sqrt(8 / 9), rel=0.15)


def test_the_control_reads_the_baseline_s_two_instances_not_the_main_effects_fit_that_interactions_bend():
    # a 2^2 design whose interaction the main-effects model leaves out: it misses every cell by 0.3 / 4 in log time
    rng = np.random.default_rng(2)
    members = [dict(a=a, b=b, replica=0) for a in (0, 1) for b in (0, 1)] + [dict(a=0, b=0, replica=1)]
    rows = []
    for r in range(30):
        level = rng.uniform(-0.3, 0.3)
        for m in members:
            log_t = level + 0.2 * m["a"] + 0.2 * m["b"] + 0.3 * m["a"] * m["b"] + rng.normal(0, 0.01)
            rows.append(m | dict(variant=f"a{m['a']}b{m['b']}", cell_id="t", repeat=r, process=0, value=np.exp(log_t)))
    table = pd.DataFrame(rows).assign(kind="timing", status="ok", metric="seconds_per_iter", peer="", rung="",
                                      base_config="x", setting="cpu", phase="train_step")
    fits = timing_effects(table, ("a", "b"), {"a": 0, "b": 0})
    control = fits[fits["factor"] == "control"].iloc[0]
    assert abs(control["estimate"]) < 1.0 and control["ci_low"] < 0 < control["ci_high"], control
    assert "two instances" in control["method"]
    # read against the main-effects fit, the same two instances would show the misfit as a +7.8% "bias"
    full = blocked_factorial(table.assign(block=table["repeat"]), ["a", "b", "replica"],
                             {"a": 0, "b": 0, "replica": 0})
    assert percent(full.loc[full["factor"] == "replica", "beta"].iloc[0]) == pytest.approx(7.8, abs=1.0)


def test_percent_change_is_exp_minus_one():
    assert percent(np.log(1.1)) == pytest.approx(10.0)
    assert percent(0.0) == 0.0


def test_a_group_holds_the_baseline_its_copy_and_every_other_model():
    specs = grid(TINY, **(default_grid() | {"attn_heads": (1,)}))
    costs = [Cell("cost", spec, "cpu", batch_size=2, threads=1) for spec in specs]
    costs.append(Cell("cost", TINY, "cpu", batch_size=2, threads=1, peer="smalldiffusion"))
    [group] = timing_cells(costs, budget_bytes=10**12)
    baseline = next(c for c in costs if c.spec.name == BASELINE and not c.peer)
    assert [m.spec.name for m in group.members[:2]] == [baseline.spec.name] * 2
    assert [m.replica for m in group.members[:2]] == [0, 1]
    assert len(group.members) == len(costs) + 1 and group.kind == "timing"
    assert Cell.from_json(group.to_json()) == group


def test_groups_that_do_not_fit_are_split_and_each_keeps_the_baseline():
    specs = grid(TINY, **(default_grid() | {"attn_heads": (1,)}))
    costs = [Cell("cost", spec, "cpu", batch_size=2, threads=1) for spec in specs]
    one = planned_state_bytes(TINY)
    budget = int(4.5 * one)  # the baseline pair and at most two more per group (the others are no smaller)
    groups = timing_cells(costs, budget_bytes=budget)
    assert len(groups) == 4  # 7 others, two per group
    for group in groups:
        assert sum(planned_state_bytes(m.spec) for m in group.members) <= budget
        assert [m.replica for m in group.members[:2]] == [0, 1]
        assert group.members[0].spec.name == BASELINE
    others = [m.spec.name for g in groups for m in g.members[2:]]
    assert sorted(others) == sorted(c.spec.name for c in costs if c.spec.name != BASELINE)


def test_rounds_time_every_member_once_per_round_in_the_recorded_order():
    costs = [Cell("cost", spec, "cpu", batch_size=2, threads=1) for spec in
             grid(TINY, upsample=("nearest_conv", "conv_transpose"), attn_heads=(1,), checkpoint=(False,))]
    [group] = timing_cells(costs, budget_bytes=10**12)
    budget = RoundsBudget(warmup=1, block_seconds=0.001, min_rounds=3, max_seconds=0.0, seed=7, processes=1)
    rows: list = []
    time_in_rounds(group, budget, rows)
    timed = [r for r in rows if r.metric == "seconds_per_iter"]
    assert {r.repeat for r in timed} == {0, 1, 2}
    for round_index in range(3):
        train = sorted((r for r in timed if r.repeat == round_index and r.phase == "train_step"),
                       key=lambda r: r.position)
        assert [r.member for r in train] == round_order(len(group.members), 7, round_index)
    cpu = [r for r in rows if r.metric == "cpu_seconds_per_iter"]
    assert len(cpu) == len(timed) and all(r.value >= 0 for r in cpu)
    assert {r.metric for r in rows if r.phase == "group"} == {"planned_state_bytes", "state_bytes", "resident_bytes",
                                                              "memory_budget_bytes", "time_precision_target"}
    # the model gives intervals from 10 rounds: 3 have no precision to record, only the target and the rounds
    assert [r.n for r in rows if r.metric == "time_precision_target"] == [3]
    assert sum(r.phase == "calibration" for r in rows) == 2 * 3  # two matmuls after every round


@pytest.mark.parametrize("precision, max_seconds, why", [(1e3, 60.0, "precision"), (1e-6, 0.0, "cap")])
def test_the_rounds_stop_at_the_precision_or_at_the_cap_and_say_which(precision, max_seconds, why):
    costs = [Cell("cost", spec, "cpu", batch_size=2, threads=1) for spec in
             grid(TINY, upsample=("nearest_conv", "conv_transpose"), attn_heads=(1,), checkpoint=(False,))]
    [group] = timing_cells(costs, budget_bytes=10**12)
    budget = RoundsBudget(warmup=1, block_seconds=0.001, min_rounds=10, max_seconds=max_seconds, precision=precision,
                          processes=1)
    rows: list = []
    time_in_rounds(group, budget, rows)
    assert {r.repeat for r in rows if r.metric == "seconds_per_iter"} == set(range(10))
    [stop] = [r for r in rows if r.metric == "time_precision"]
    [asked] = [r for r in rows if r.metric == "time_precision_target"]
    assert (stop.status, stop.message, stop.n, stop.unit) == ("ok", why, 10, "%")
    assert (stop.value <= precision) == (why == "precision") and stop.value > 0
    assert (asked.value, asked.n) == (precision, 10)


def test_a_member_that_fails_leaves_a_row_and_the_others_are_still_timed(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "plugins"))
    import faulty_variants  # noqa: F401  registers the 'exploding' upsampler

    costs = [Cell("cost", TINY, "cpu", batch_size=2, threads=1),
             Cell("cost", TINY.replace(upsample="exploding"), "cpu", batch_size=2, threads=1)]
    [group] = timing_cells(costs, budget_bytes=10**12)
    rows: list = []
    budget = RoundsBudget(warmup=1, block_seconds=0.001, min_rounds=2, max_seconds=0.0, processes=1)
    time_in_rounds(group, budget, rows)
    failed = [r for r in rows if r.status == "error"]
    assert len(failed) == 1 and failed[0].member == 2 and "injected failure" in failed[0].message
    assert {r.member for r in rows if r.metric == "seconds_per_iter"} == {0, 1}


def test_rounds_spread_over_fresh_processes_and_a_member_that_fails_drops_out_of_the_later_ones(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "plugins"))  # spawned processes inherit sys.path
    import faulty_variants  # noqa: F401  registers the 'exploding' upsampler, here and (by name) in each process

    costs = [Cell("cost", spec, "cpu", batch_size=2, threads=1)
             for spec in (TINY, TINY.replace(upsample="conv_transpose"), TINY.replace(upsample="exploding"))]

    [group] = timing_cells(costs, budget_bytes=10**12)
    budget = RoundsBudget(warmup=1, block_seconds=0.001, min_rounds=6, max_seconds=0.0, seed=3, processes=3)
    rows: list = []
    time_in_rounds(group, budget, rows, plugins=("faulty_variants",))
    exploding = next(i for i, m in enumerate(group.members) if m.spec.upsample == "exploding")
    [failed] = [r for r in rows if r.status == "error"]
    assert (failed.member, failed.process) == (exploding, 0) and "injected failure" in failed.message
    timed = [r for r in rows if r.metric == "seconds_per_iter" and r.phase == "train_step"]
    live = [i for i in range(len(group.members)) if i != exploding]
    # 6 rounds, 2 in each process, every live member once per round in that round's order
    assert sorted({(r.process, r.repeat) for r in timed}) == [(p, r) for p in range(3) for r in (2 * p, 2 * p + 1)]
    for round_index in range(6):
        order = [r.member for r in sorted((r for r in timed if r.repeat == round_index), key=lambda r: r.position)]
        assert order == [i for i in round_order(len(group.members), 3, round_index) if i in live]
    # the first process counts, records kernels and memory; the others reuse its counts
    assert {r.process for r in rows if r.phase == "group" and not r.metric.startswith("time_precision")} == {0}
    assert {r.process for r in rows if r.metric == "sdpa_calls"} == {0}
    flops = {r.process for r in rows if r.metric == "achieved_flop_per_s" and r.value > 0}
    assert flops == {0, 1, 2}


def test_a_later_process_times_blocks_of_its_first_process_length_and_reuses_its_counts():
    costs = [Cell("cost", spec, "cpu", batch_size=2, threads=1) for spec in (TINY, TINY.replace(time_injection="film"))]
    [group] = timing_cells(costs, budget_bytes=10**12)
    budget = RoundsBudget(warmup=1, block_seconds=0.05, min_rounds=2, max_seconds=0.0)
    members = list(range(len(group.members)))
    first = RoundTimer(group, budget, members, None, 0)
    counted = first.counted
    assert all(c.calls_per_block["inference"] > 1 and c.flops["train_step"] > 0 for c in counted.values())
    # told blocks ten times as long, a later process still times the first one's calls per block
    later = RoundTimer(group, dataclasses.replace(budget, block_seconds=0.5), members, counted, 1)
    assert later.counted == counted
    assert not any(r.phase == "group" or r.metric == "sdpa_calls" for r in later.setup_rows)
    # a spawned process gets them as plain data: unpickling its arguments must not import torch before it has
    # asked to die with its parent
    assert b"bench.measure" not in pickle.dumps(plain_counts(counted))


def test_the_set_up_probe_times_each_step_of_a_first_and_a_later_process():
    """scripts/timing_setup.py (docs/timing.md's set-up table) on the smoke preset's timing cell."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "timing_setup.py"), "--preset", "smoke",
                             "--base", "digits8", "--threads", "1", "--calls", "5"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    first, later = result.stdout.split("later process")[:2]
    for step in ("spawn and imports", "build", "count FLOPs", "attention kernels", "warm-up", "block sizing",
                 "set-up, in all", "one round"):
        assert step in first
    # a later process reuses the first's counts and kernels
    assert "count FLOPs" not in later and "attention kernels" not in later and "warm-up" in later
    assert "train_step: call k" in result.stdout and "call 5:" in result.stdout
