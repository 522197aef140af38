"""How long a plan will take, from measured priors per kind of cell and network (priors.toml), before any work.

A cost cell's prior is scaled to its network by parameter count and to its batch; a timing cell is its rounds
budget plus each process's start and its members' set-up (more in the first process, which counts and calibrates;
the warm-up scaled to the budget's calls); every cell but a timing or compiled cost cell runs ``jobs`` at a time. A
cell no prior covers (a CUDA cell, a quality preset never timed here) is counted apart, never guessed.

``pace`` is this machine's time for the same work over the priors' machine's (bench/measure/machine_pace.py): it
scales every prior but a timing cell's rounds, which stop at their budget's clock on any machine.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.models.sizes import parameter_count
from bench.plan.cells import Cell
from bench.plan.sweep import RoundsBudget
from bench.schema import Kind
from variants import BASES

PRIORS = tomllib.loads((Path(__file__).parent / "priors.toml").read_text())
# A run whose estimate exceeds this says so, with its cell count, before its first cell.
LONG_RUN_SECONDS = 600
# A plan estimated longer than this at the priors' pace probes the machine's pace first: the probe's five seconds
# are then a small part of the run.
PROBE_ABOVE_SECONDS = 60


@dataclass
class Estimate:
    seconds: float = 0.0                                     # of the cells with a prior
    by_kind: dict[str, float] = field(default_factory=dict)  # seconds per kind of cell
    unknown: list[Cell] = field(default_factory=list)        # cells no prior covers
    pace: float | None = None                                # measured, or None for the priors' machine

    def describe(self) -> str:
        known = ", ".join(f"{kind} {clock(s)}" for kind, s in self.by_kind.items())
        where = "on the priors' 2-core CPU" if self.pace is None else \
            f"on this machine, whose probe ran at {self.pace:.2f}x the priors' time"
        text = f"about {clock(self.seconds)} {where} ({known})"
        if self.unknown:
            kinds = sorted({f"{c.kind} on {c.device}" for c in self.unknown})
            text += f", plus {len(self.unknown)} cell(s) with no measured prior ({', '.join(kinds)})"
        return text


def estimate(cells: list[Cell], rounds: RoundsBudget, jobs: int, pace: float | None = None) -> Estimate:
    """The time ``cells`` take one after another, the untimed kinds ``jobs`` at a time, at ``pace``."""
    out = Estimate(pace=pace)
    for cell in cells:
        seconds = cell_seconds(cell, rounds, pace)
        if seconds is None:
            out.unknown.append(cell)
            continue
        share = wall_seconds(cell, seconds, jobs)
        out.seconds += share
        out.by_kind[cell.kind] = out.by_kind.get(cell.kind, 0.0) + share
    return out


def wall_seconds(cell: Cell, seconds: float, jobs: int) -> float:
    """The wall time a cell of ``seconds`` adds to a run: a cell that times runs alone, the others ``jobs`` at a
    time (bench/run/backends.py), so each takes a ``jobs``-th of the machine's time."""
    return seconds / (1 if cell.runs_alone else jobs)


def cell_seconds(cell: Cell, rounds: RoundsBudget, pace: float | None = None) -> float | None:
    """One cell's prior in seconds at ``pace`` (None: the priors' own), or None when none covers it."""
    if cell.device != "cpu":
        return None
    scale = 1.0 if pace is None else pace
    if cell.kind == Kind.TIMING:
        priors = PRIORS[Kind.TIMING]
        first, later = (sum(_scaled(priors[which], m) or 0.0 for m in cell.members) for which in ("first", "later"))
        # a later process's set-up is its warm-up calls; the first makes one more call per warm-up call the budget
        # adds or removes against the priors' own count
        warmup_call = later / priors["warmup"]
        first, later = first + warmup_call * (rounds.warmup - priors["warmup"]), warmup_call * rounds.warmup
        # a round times every member's two phases for at least a block each; rounds go on for max_seconds
        rounds_seconds = max(rounds.max_seconds, rounds.min_rounds * len(cell.members) * 2 * rounds.block_seconds)
        # every timing process starts, builds and warms up each member anew; the first also counts and calibrates
        set_up = rounds.processes * priors["start"] + first + (rounds.processes - 1) * later
        return scale * set_up + rounds_seconds
    if cell.kind == Kind.COST:
        prior = _scaled(PRIORS[Kind.COST], cell)
        return None if prior is None else scale * prior
    # a tuning cell trains and scores as a quality cell does
    prior = PRIORS.get(Kind.QUALITY if cell.kind == Kind.TUNE else cell.kind, {}).get(cell.quality)
    if prior is not None and len(cell.seeds) > 1:  # seeds trained together in one cell
        prior *= len(cell.seeds) * PRIORS["packed"]["seed_share"]
    return None if prior is None else scale * prior


def _scaled(priors: dict, cell: Cell) -> float | None:
    """The prior of the cell's network, or of the base its network was made from (``fmnist28[ch=32]``) scaled by
    parameters and batch; None when no such base has a prior."""
    base = re.sub(r"\[.*\]$", "", cell.base_config)
    if base not in priors:
        return None
    prior = priors[base]
    seconds, batch = (prior["seconds"], prior["batch"]) if isinstance(prior, dict) else (prior, cell.batch_size)
    if cell.spec is None or base not in BASES:
        return seconds
    size = parameter_count(cell.spec) / parameter_count(BASES[base])
    return seconds * max(1.0, size * max(cell.batch_size, 1) / max(batch, 1))


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on: every duration the plan and the runner print."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
