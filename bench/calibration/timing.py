"""How often the time effects' 95% intervals cover the truth, measured on the code that prints them.

The real timing path (bench/measure/timing_cell.time_in_rounds: its processes, its shares of the cap, its stopping
rule, and the report's rounds model) runs on a quick-preset timing cell whose processes are simulated: each
process's timer returns blocks drawn from a known truth instead of timing models, and a simulated clock advances by
each round's seconds. The truth has every source of variance the real rounds have (docs/timing.md measures them):

- the axes' main effects on each phase (some true effects, and two known nulls: an axis with no effect on the
  training step, and checkpointing on inference) and small interactions between axes;
- block noise within a round, each round's own speed, slow drift within a process (a random walk over its blocks,
  so a model's place in its round's order matters);
- each process's own speed, and each model's own speed in a process (``process_sd``: 0%, 1% or 4%);
- a build-order effect: the k-th model a process builds runs slower in proportion to k (where its memory lands).

Each replicate is one timing cell run to its end; every primary interval (each axis on each phase's wall time) and
the A/A control's are scored against the truth. ``python -m bench.calibration.timing`` writes the table that
docs/statistics.md commits.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from bench.calibration.replicates import command_line, scored_cases
from bench.measure.rounds import build_order, round_order
from bench.measure.rows import rows_frame
from bench.measure.timing_cell import time_in_rounds
from bench.plan.cells import Cell
from bench.plan.designs.grid import grid
from bench.plan.groups import timing_cells
from bench.plan.sweep import RoundsBudget
from bench.report.render.wording import plus_minus
from bench.schema import INFERENCE, SECONDS_PER_ITER, TRAIN_STEP, Measurement, references
from bench.statistics.rounds_model import CONTROL, timing_effects
from variants import AXES, BASES

# The quick preset's grid and its axes' true main effects in %, per phase (two are known nulls).
QUICK_AXES = {"upsample": ("nearest_conv", "conv_transpose"), "time_injection": ("additive", "film"),
              "attn_heads": (1, 4), "checkpoint": (False, True)}
TRUE_PERCENT = {TRAIN_STEP: {"upsample": 0.0, "time_injection": 4.0, "attn_heads": 3.0, "checkpoint": 50.0},
                INFERENCE: {"upsample": 1.0, "time_injection": 7.0, "attn_heads": 5.0, "checkpoint": 0.0}}
PHASE_SECONDS = {TRAIN_STEP: 0.1, INFERENCE: 0.03}


@dataclasses.dataclass(frozen=True)
class Noise:
    """Every level of variation, as SDs on the log scale (the quick reference run's levels: docs/timing.md)."""

    block: float = 0.06          # one block within its round
    round: float = 0.04          # a round's own speed
    drift: float = 0.004         # slow drift: the random walk's step per block
    process_speed: float = 0.03  # a process's own speed
    process: float = 0.0         # a model's own speed in a process
    build_order: float = 0.02    # the last-built model's slowdown against the first-built
    interaction: float = 0.01    # SD of the interactions between axes (fixed per replicate)


@dataclasses.dataclass(frozen=True)
class Case:
    processes: int
    process_sd: float            # Noise.process
    stop: str                    # "fixed": a cap no precision reaches; "precision": the rule can stop first
    randomized_build: bool = True

    @property
    def budget(self) -> RoundsBudget:
        # the quick preset's cap; a simulated round takes ROUND_SECONDS, so the cap buys about 34 rounds
        return RoundsBudget(warmup=0, block_seconds=0.1, min_rounds=10, max_seconds=270.0,
                            precision=1e-9 if self.stop == "fixed" else PRECISION_TARGET, processes=self.processes)


ROUND_SECONDS = 8.0
PRECISION_TARGET = 3.0  # %: reached by some settings of these cases and not others, so the rule decides


class Truth:
    """One replicate's true log time of each member and phase (the interactions drawn once per replicate)."""

    def __init__(self, cell: Cell, noise: Noise, rng: np.random.Generator) -> None:
        self.log_time = {}
        levels = np.array([[getattr(m.spec, axis) != QUICK_AXES[axis][0] for axis in QUICK_AXES]
                           for m in cell.members], dtype=float)
        for phase, effects in TRUE_PERCENT.items():
            mains = levels @ np.log1p(np.array([effects[a] for a in QUICK_AXES]) / 100)
            pairs = list(itertools.combinations(range(len(QUICK_AXES)), 2))
            interaction = rng.normal(0, noise.interaction, len(pairs))
            # centred products: each interaction averages to zero over the other axes, so a main effect's truth is
            # its own term
            centred = levels - 0.5
            mains = mains + sum(w * centred[:, i] * centred[:, j] for w, (i, j) in zip(interaction, pairs))
            self.log_time[phase] = np.log(PHASE_SECONDS[phase]) + mains


class SimulatedProcess:
    """A timing process whose blocks come from the truth: the interface of bench.measure.rounds.RoundTimer."""

    def __init__(self, cell: Cell, budget: RoundsBudget, members: list[int], truth: Truth, noise: Noise,
                 rng: np.random.Generator, process: int, clock: list[float], randomized_build: bool) -> None:
        self.cell, self.budget, self.truth, self.noise, self.rng, self.process = cell, budget, truth, noise, rng, process
        self.clock = clock
        self.members = sorted(members)
        order = build_order(cell, members, budget.seed, process, first=process == 0) if randomized_build else members
        built = np.empty(len(cell.members))
        built[order] = np.arange(len(order)) / max(1, len(order) - 1)
        self.offset = {phase: (rng.normal(0, noise.process_speed) + rng.normal(0, noise.process, len(cell.members))
                               + noise.build_order * built) for phase in TRUE_PERCENT}
        self.drift = 0.0
        self.setup_rows: list[Measurement] = []
        self.counted = {}

    def round(self, round_index: int) -> list[Measurement]:
        speed = self.rng.normal(0, self.noise.round)
        rows = []
        order = [i for i in round_order(len(self.cell.members), self.budget.seed, round_index) if i in self.members]
        for position, index in enumerate(order):
            for phase in TRUE_PERCENT:
                self.drift += self.rng.normal(0, self.noise.drift)
                log_time = (self.truth.log_time[phase][index] + self.offset[phase][index] + speed + self.drift
                            + self.rng.normal(0, self.noise.block))
                rows.append(Measurement(phase, SECONDS_PER_ITER, float(np.exp(log_time)), "s", "simulated",
                                        repeat=round_index, position=position, member=index, process=self.process))
        self.clock[0] += ROUND_SECONDS
        return rows

    def close(self) -> None:
        pass


def quick_cell() -> Cell:
    """The quick preset's fmnist28 timing cell: its variants (the default grid) and the baseline's A/A copy."""
    costs = [Cell("cost", spec, "cpu", batch_size=16, threads=2) for spec in grid(BASES["fmnist28"], **QUICK_AXES)]
    [cell] = timing_cells(costs, budget_bytes=10**13)
    return cell


def one_replicate(cell: Cell, case: Case, noise: Noise, seed: int) -> pd.DataFrame:
    """One timing cell run to its end on simulated processes: its primary and control intervals against the truth."""
    rng = np.random.default_rng(seed)
    truth, clock = Truth(cell, noise, rng), [0.0]
    budget = dataclasses.replace(case.budget, seed=seed)

    def start(cell, budget, members, counted, process, plugins):
        return SimulatedProcess(cell, budget, members, truth, noise, rng, process, clock, case.randomized_build)

    rows: list[Measurement] = []
    time_in_rounds(cell, budget, rows, start_timer=start, clock=lambda: clock[0])
    timed = [r for r in rows if r.metric == SECONDS_PER_ITER]
    table = rows_frame("", cell, timed).assign(setting="cpu")
    effects = timing_effects(table, tuple(AXES), references())
    effects = effects[effects["metric"] == SECONDS_PER_ITER]
    true = [0.0 if f == CONTROL else TRUE_PERCENT[phase][f] for f, phase in zip(effects["factor"], effects["phase"])]
    stop = next(r for r in rows if r.metric == "time_precision_target")
    return pd.DataFrame({"factor": effects["factor"].to_numpy(), "phase": effects["phase"].to_numpy(),
                         "true": true, "low": effects["ci_low"].to_numpy(), "high": effects["ci_high"].to_numpy(),
                         "rounds": stop.n, "unit": effects["unit"].to_numpy()})


def replicates_of(case: Case, replicates: range, noise: Noise) -> pd.DataFrame:
    """``case``'s scored intervals over ``replicates`` (their seeds), each replicate's rows marked with its seed."""
    cell, noisy = quick_cell(), dataclasses.replace(noise, process=case.process_sd)
    return pd.concat([one_replicate(cell, case, noisy, seed).assign(replicate=seed) for seed in replicates],
                     ignore_index=True)


def coverage(cases: Sequence[Case], replicates: int, noise: Noise = Noise(), workers: int = 1) -> Iterator[dict]:
    """Per case, as each is done: intervals scored, coverage of all (with its binomial standard error), of the true
    effects and of the nulls (known nulls and the A/A control), the mean rounds and the median half-width.
    ``workers``: processes sharing the replicates."""
    for case, scored in scored_cases(replicates_of, cases, replicates, noise, workers, CHUNK):
        yield _summary(case, scored)


CHUNK = 25  # replicates per task


def _summary(case: Case, scored: pd.DataFrame) -> dict:
    covered = (scored["low"] <= scored["true"]) & (scored["true"] <= scored["high"])
    null = scored["true"] == 0
    return {"processes": case.processes, "process_sd_%": 100 * case.process_sd, "stop": case.stop,
            "build_order": "random per process" if case.randomized_build else "the same in every process",
            "interval_unit": scored["unit"].iloc[0], "intervals": len(scored),
            "coverage_%": 100 * covered.mean(),
            "se_%": 100 * np.sqrt(covered.mean() * (1 - covered.mean()) / len(scored)),
            "coverage_effects_%": 100 * covered[~null].mean(), "coverage_nulls_%": 100 * covered[null].mean(),
            "mean_rounds": scored.groupby("replicate")["rounds"].first().mean(),
            "median_half_width_%": float(((scored["high"] - scored["low"]) / 2).median())}


# The committed table's cases: 3, 6 and 10 processes at each process level, at a fixed count and with the rule;
# and what a build order shared by every process does.
CASES = tuple(Case(p, sd, stop) for stop in ("fixed", "precision") for p in (3, 6, 10) for sd in (0.0, 0.01, 0.04)) + (
    Case(3, 0.0, "fixed", randomized_build=False), Case(1, 0.0, "fixed"), Case(1, 0.01, "fixed"))


def main(argv: list[str] | None = None) -> None:
    command_line(__doc__.split("\n\n")[0], "timing cells per case (10 intervals each)", coverage, CASES,
                 table_for_docs, argv)


def table_for_docs(summary: pd.DataFrame) -> pd.DataFrame:
    """The coverage summary as docs/statistics.md shows it: one row per case, figures rounded."""
    return pd.DataFrame({
        "processes": summary["processes"], "model in process": summary["process_sd_%"].map("{:g}%".format),
        "rounds stop": summary["stop"].map({"fixed": "at the cap", "precision": "at ±3% or the cap"}),
        "build order": summary["build_order"], "unit": summary["interval_unit"],
        "coverage [%]": [plus_minus(c, se, ".1f", ".1f") for c, se in zip(summary["coverage_%"], summary["se_%"])],
        "effects [%]": summary["coverage_effects_%"].map("{:.1f}".format),
        "nulls [%]": summary["coverage_nulls_%"].map("{:.1f}".format),
        "mean rounds": summary["mean_rounds"].map("{:.1f}".format),
        "median half-width [%]": summary["median_half_width_%"].map("{:.2f}".format)})

if __name__ == "__main__":
    main()
