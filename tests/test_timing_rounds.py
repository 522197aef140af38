"""Timing in randomized rounds and the blocked factorial model behind its effects: mechanics only, no timing
is asserted."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.measure.timing_cell import round_order, time_in_rounds
from bench.models.sizes import planned_state_bytes
from bench.plan.cells import Cell
from bench.plan.designs import grid
from bench.plan.groups import timing_cells
from bench.plan.sweep import RoundsBudget
from bench.report.compute.rounds_model import blocked_factorial, percent, timing_effects
from variants import default_grid

from conftest import SMALL_SPECS

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
                     drift: float = 0.3) -> pd.DataFrame:
    """A 2^3 design plus an A/A copy of the baseline, timed in rounds: each round has its own speed (drift up to
    +-30%), a trend within the round, and log-normal block noise. ``effects`` are true log effects."""
    rows = []
    members = [dict(zip(AXES, levels), replica=0) for levels in itertools.product((0, 1), repeat=3)]
    members.insert(1, dict(a=0, b=0, c=0, replica=1))
    for r in range(rounds):
        level = rng.uniform(-drift, drift)
        order = rng.permutation(len(members))
        for position, index in enumerate(order):
            m = members[index]
            log_t = level + 0.02 * position + sum(effects[k] * m[k] for k in AXES) + rng.normal(0, noise)
            rows.append(m | {"block": r, "value": np.exp(log_t)})
    return pd.DataFrame(rows)


def test_the_model_recovers_known_effects_through_round_drift():
    truth = {"a": 0.10, "b": -0.05, "c": 0.0}
    fit = blocked_factorial(synthetic_rounds(truth, 30, np.random.default_rng(0)), [*AXES, "replica"],
                            dict.fromkeys([*AXES, "replica"], 0), n_resamples=999)
    got = dict(zip(fit["factor"], fit["beta"]))
    for axis, beta in truth.items():
        assert got[axis] == pytest.approx(beta, abs=0.02)
    assert got["replica"] == pytest.approx(0.0, abs=0.03)
    assert (fit["n"] == 30).all()
    assert fit["round_sd"].iloc[0] > 2 * fit["block_sd"].iloc[0]  # drift is large; the model sees through it


def test_intervals_cover_the_truth_at_about_the_nominal_rate():
    truth = {"a": 0.10, "b": -0.05, "c": 0.0}
    rng = np.random.default_rng(1)
    covered = []
    for run in range(150):
        fit = blocked_factorial(synthetic_rounds(truth, 20, rng), [*AXES, "replica"],
                                dict.fromkeys([*AXES, "replica"], 0), n_resamples=499, seed=run)
        for factor, low, high in zip(fit["factor"], fit["low"], fit["high"]):
            covered.append(low <= truth.get(factor, 0.0) <= high)
    rate = np.mean(covered)
    assert 0.90 <= rate <= 0.99, rate  # 95% nominal; a percentile bootstrap over 20 clusters runs a bit short


def test_the_control_reads_the_baseline_s_two_instances_not_the_main_effects_fit_that_interactions_bend():
    # a 2^2 design whose interaction the main-effects model leaves out: it misses every cell by 0.3 / 4 in log time
    rng = np.random.default_rng(2)
    members = [dict(a=a, b=b, replica=0) for a in (0, 1) for b in (0, 1)] + [dict(a=0, b=0, replica=1)]
    rows = []
    for r in range(30):
        level = rng.uniform(-0.3, 0.3)
        for m in members:
            log_t = level + 0.2 * m["a"] + 0.2 * m["b"] + 0.3 * m["a"] * m["b"] + rng.normal(0, 0.01)
            rows.append(m | dict(variant=f"a{m['a']}b{m['b']}", cell_id="t", repeat=r, value=np.exp(log_t)))
    table = pd.DataFrame(rows).assign(kind="timing", status="ok", metric="seconds_per_iter", peer="", rung="",
                                      base_config="x", setting="cpu", phase="train_step")
    fits = timing_effects(table, ("a", "b"), {"a": 0, "b": 0}, n_resamples=999)
    control = fits[fits["factor"] == "control"].iloc[0]
    assert abs(control["estimate"]) < 1.0 and control["ci_low"] < 0 < control["ci_high"], control
    assert "two instances" in control["method"]
    # read against the main-effects fit, the same two instances would show the misfit as a +7.8% "bias"
    full = blocked_factorial(table.assign(block=table["repeat"]), ["a", "b", "replica"],
                             {"a": 0, "b": 0, "replica": 0}, n_resamples=99)
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
    budget = RoundsBudget(warmup=1, block_seconds=0.001, min_rounds=3, max_seconds=0.0, seed=7)
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
    budget = RoundsBudget(warmup=1, block_seconds=0.001, min_rounds=10, max_seconds=max_seconds, precision=precision)
    rows: list = []
    time_in_rounds(group, budget, rows)
    assert {r.repeat for r in rows if r.metric == "seconds_per_iter"} == set(range(10))
    [stop] = [r for r in rows if r.metric == "time_precision"]
    [asked] = [r for r in rows if r.metric == "time_precision_target"]
    assert (stop.status, stop.message, stop.n, stop.unit) == ("ok", why, 10, "%")
    assert (stop.value <= precision) == (why == "precision") and stop.value > 0
    assert (asked.value, asked.n) == (precision, 10)


def test_a_member_that_fails_leaves_a_row_and_the_others_are_still_timed(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    import faulty_variants  # noqa: F401  registers the 'exploding' upsampler

    costs = [Cell("cost", TINY, "cpu", batch_size=2, threads=1),
             Cell("cost", TINY.replace(upsample="exploding"), "cpu", batch_size=2, threads=1)]
    [group] = timing_cells(costs, budget_bytes=10**12)
    rows: list = []
    time_in_rounds(group, RoundsBudget(warmup=1, block_seconds=0.001, min_rounds=2, max_seconds=0.0), rows)
    failed = [r for r in rows if r.status == "error"]
    assert len(failed) == 1 and failed[0].member == 2 and "injected failure" in failed[0].message
    assert {r.member for r in rows if r.metric == "seconds_per_iter"} == {0, 1}
