"""How often the quality effects' 95% intervals cover the truth, measured on the code that prints them.

Each replicate is a synthetic run table shaped like the quick preset's quality cells (bench.measure.rows.rows_frame
of real quality and tuning cells): the 8 functional variants (the full factorial of upsample, time injection and
attention heads) on two networks (the quick and quick_ch32 presets), 3 or 4 seeds, FD at the three checkpoints
(500, 1000 and 1500 steps), and a tuning grid (the preset's lr and ``TUNE_LR``) whose tuning cells choose each
variant's recipe. The report's own code reads it (``Derived``: frames.scored_values, recipes.with_recipes,
quality_model.quality_effects, effects.effect_table, robustness.trends, across_scales and across_recipes), and
every interval it prints on FD is scored against the truth.

The truth. A variant's population FD at a checkpoint and recipe is its value averaged over seeds AND reference
sets (``Truth.population``): a baseline, the axes' main effects (``TRUTH``: effects that shrink or grow along
training, one known null, and a switch whose effect differs between the networks), small interactions between
axes (centred, so a main effect is its own term; drawn per replicate) and, at ``TUNE_LR``, each variant's change
in FD (``LR_CHANGE``). Every interval targets a contrast of those population values: a switch's effect is the mean
over the variants at its level minus the mean at its reference level (what the half-against-half contrast of a
main-effects model estimates in a full factorial). Along training, the change of the effect between two
checkpoints; across scales, the larger network's effect minus the smaller's; tuned, each variant at the lr the
real ``choices`` picked from the tuning cells; tuned minus shared, the difference of those two effects.

What a run's value adds to its population value (``Noise``; the issue's probe on digits8_ch16 measured mean
squares of 1.10 for the seed, 0.016 for the reference set and 0.018 for the residual):

- the seed's own effect, shared by every variant it trains (the model's block takes it out);
- the run's own noise (seed x variant), partly kept across its checkpoints;
- the reference set: every run is scored against the same 250 held-out images (measure/quality/cells.py,
  ``scoring_reference``), so its own effect is shared by every run, and a reference x variant interaction (one
  draw per variant, network, recipe and checkpoint; ``Case.reference_interaction`` times the run noise's SD) is
  shared by every seed of that variant. Seeds cannot average the interaction away: the real model's intervals are
  for the effect on this reference set, and against the population truth they cover less as the interaction grows.
  The tuning cells score on their own reference (validation) images, with their own draws.

``python -m bench.calibration.quality`` writes the table that docs/statistics.md commits.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from bench.calibration.replicates import command_line, scored_cases
from bench.calibration.timing import QUICK_AXES
from bench.measure.rows import rows_frame
from bench.plan.cells import Cell
from bench.plan.designs.grid import grid
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.tuning import choices, tuning_seeds
from bench.report.compute.derived import Derived
from bench.report.compute.load import normalise
from bench.report.compute.recipes import TUNED
from bench.report.compute.robustness import difference_fit
from bench.report.render.wording import plus_minus
from bench.schema import ALONG_TRAINING, PRIMARY_QUALITY, Kind, Measurement, references
from variants import BASES

# The quick preset's functional variants: checkpointing changes no value, only the time a step takes.
AXES = {axis: levels for axis, levels in QUICK_AXES.items() if axis != "checkpoint"}
NETWORKS = ("quick", "quick_ch32")  # quality presets, smaller network first
PHASE, METRIC = PRIMARY_QUALITY
# FD of the baseline and each axis's true main effect (FD units) at each checkpoint, per network.
TRUTH = {
    "quick": {"baseline": (14.0, 9.0, 6.0), "upsample": (0.0, 0.0, 0.0), "time_injection": (-2.0, -1.4, -1.0),
              "attn_heads": (-0.2, -0.3, -0.4)},
    "quick_ch32": {"baseline": (12.0, 7.0, 5.0), "upsample": (0.0, 0.0, 0.0), "time_injection": (-1.5, -0.9, -0.5),
                   "attn_heads": (-0.3, -0.5, -0.6)},
}
TUNE_LR = 1e-2  # the tuning grid's other point (the quick presets train at 4e-3)
LR_CHANGE = {"additive": 0.3, "film": -0.6}  # a variant's true change in FD at TUNE_LR, by its time injection
TUNING_SEEDS = 2  # the planner's default --tune-seeds


@dataclasses.dataclass(frozen=True)
class Noise:
    """Every level of variation, as SDs in FD units."""

    seed: float = 1.0           # a seed's own effect, shared by every variant it trains
    run: float = 0.15           # a run's own noise (seed x variant): the model's residual
    run_kept: float = 0.5       # the share of a run's noise variance it keeps across its checkpoints
    reference: float = 0.1      # the reference set's own effect, shared by every run scored against it
    interaction: float = 0.05   # the axes' interactions (fixed per replicate)


@dataclasses.dataclass(frozen=True)
class Case:
    seeds: int
    reference_interaction: float  # SD of reference x variant, as a multiple of Noise.run


def steps(network: str) -> tuple[int, ...]:
    """The checkpoints a preset scores at: every ``eval_every`` steps, the last at the end of training."""
    config = QUALITY_PRESETS[network]
    return tuple(range(config.eval_every, config.train_steps + 1, config.eval_every))


@functools.cache
def variants(network: str) -> list:
    return grid(QUALITY_PRESETS[network].base, **AXES)


class Truth:
    """One replicate's population FD (over seeds and reference sets) of every variant, network, lr and checkpoint."""

    def __init__(self, noise: Noise, rng: np.random.Generator) -> None:
        self.interactions = {network: rng.normal(0, noise.interaction, 3) for network in NETWORKS}

    def population(self, network: str, spec, lr_index: int, step_index: int) -> float:
        truth = TRUTH[network]
        on = np.array([getattr(spec, axis) != levels[0] for axis, levels in AXES.items()], dtype=float)
        mains = sum(truth[axis][step_index] * o for axis, o in zip(AXES, on))
        centred = on - 0.5  # each interaction averages to zero over the other axes
        pairs = centred[[0, 0, 1]] * centred[[1, 2, 2]]
        change = LR_CHANGE[spec.time_injection] if lr_index else 0.0
        return truth["baseline"][step_index] + mains + float(self.interactions[network] @ pairs) + change


@functools.cache
def cells_table(seeds: int) -> pd.DataFrame:
    """Every cell a run of ``seeds`` seeds can hold, written as the real cells write their rows (``rows_frame``),
    values to be drawn: the quality cells at both points of the tuning grid (those at ``TUNE_LR`` are kept only for
    the variants whose tuning picks it) at every checkpoint, and the tuning cells at the last, on their own seeds.
    With ``lr_index`` (0: the preset's lr) and ``checkpoint_index`` (the index of ``step``) to draw by."""
    frames, lr_indices, checkpoint_indices = [], [], []
    for network in NETWORKS:
        config = QUALITY_PRESETS[network]
        base = next(name for name, spec in BASES.items() if spec == config.base)
        checkpoints = steps(network)
        for spec, lr_index in itertools.product(variants(network), (0, 1)):
            for kind, seed in [*((Kind.QUALITY, s) for s in range(seeds)),
                               *((Kind.TUNE, s) for s in tuning_seeds(TUNING_SEEDS))]:
                cell = Cell(kind, spec, "cpu", seed=seed, quality=network, dataset=config.dataset, base_config=base,
                            recipe=(("lr", TUNE_LR),) if lr_index else ())
                scored = checkpoints if kind == Kind.QUALITY else checkpoints[-1:]  # tuning: the last alone
                rows = [Measurement(PHASE if step == checkpoints[-1] else ALONG_TRAINING, METRIC, float("nan"),
                                    "squared_feature", "simulated FD", seed=seed, step=step, n=config.eval_n)
                        for step in scored]
                frames.append(rows_frame("simulated", cell, rows, device_name="simulated", host="simulated"))
                lr_indices += [lr_index] * len(rows)
                checkpoint_indices += [checkpoints.index(step) for step in scored]
    # added after normalise, which reads every column it does not know as text
    table = normalise(pd.concat(frames, ignore_index=True))
    return table.assign(lr_index=lr_indices, checkpoint_index=checkpoint_indices)


class SimulatedRun:
    """One replicate's run: its truth and its table, each value the truth plus every level of ``Noise``."""

    def __init__(self, case: Case, noise: Noise, rng: np.random.Generator) -> None:
        self.truth = Truth(noise, rng)
        cells = cells_table(case.seeds)
        self.population = {(network, spec.name, lr_index, checkpoint): self.truth.population(network, spec, lr_index,
                                                                                              checkpoint)
                           for network in NETWORKS for spec in variants(network) for lr_index in (0, 1)
                           for checkpoint in range(len(steps(network)))}
        keys = ["quality_preset", "variant", "lr_index", "checkpoint_index"]
        value = np.array([self.population[key] for key in cells[keys].itertuples(index=False, name=None)])
        # the reference set (the tuning cells': the validation images) at each checkpoint, and its interaction
        # with each variant at each lr and checkpoint, the same for every seed
        scoring = cells[keys].assign(tuning=cells["kind"] == Kind.TUNE)
        value += _draw(rng, scoring[["quality_preset", "tuning", "checkpoint_index"]], noise.reference)
        value += _draw(rng, scoring, case.reference_interaction * noise.run)
        value += _draw(rng, cells[["quality_preset", "seed"]], noise.seed)
        value += _draw(rng, cells[["cell_id"]], noise.run * np.sqrt(noise.run_kept))
        value += rng.normal(0, noise.run * np.sqrt(1 - noise.run_kept), len(cells))
        cells = cells.assign(value=value)
        picked = choices(cells)
        picked = set(zip(picked["quality_preset"], picked["variant"], picked["lr"] == TUNE_LR))
        kept = [(row.kind == Kind.TUNE or not row.lr_index or (row.quality_preset, row.variant, True) in picked)
                for row in cells.itertuples()]
        self.table = cells[kept].drop(columns=["lr_index", "checkpoint_index"])


def _draw(rng: np.random.Generator, levels: pd.DataFrame, sd: float) -> np.ndarray:
    """One normal draw per distinct row of ``levels``, given to every row that has it."""
    codes = levels.groupby(list(levels.columns), sort=False).ngroup().to_numpy()
    return rng.normal(0, sd, codes.max() + 1)[codes]


KINDS = ("final", "along training", "change over the last stretch", "change, first to last", "across scales",
         "tuned", "tuned minus shared")


def one_replicate(case: Case, noise: Noise, seed: int) -> pd.DataFrame:
    """One simulated run read by the report's code: every interval it prints on FD (``kind``, one of ``KINDS``),
    with its network, recipe reading, switch and checkpoint, against the truth."""
    run = SimulatedRun(case, noise, np.random.default_rng(seed))
    derived = Derived.of_table(run.table)
    network_of = {base: network for network in NETWORKS for base in
                  derived.table.loc[derived.table["quality_preset"] == network, "base_config"].unique()}
    tuned_lr = {(row.quality_preset, row.variant): int(row.lr == TUNE_LR) for row in derived.tuning.itertuples()}

    def effect(base: str, recipe: str, step: int, switch) -> float:
        """The true effect of ``switch`` (axis, from_level, to_level) on ``base`` at ``recipe`` and ``step``."""
        network = network_of[base]
        axis, from_level, to_level = switch
        k = steps(network).index(int(step))
        values = {}
        for spec in variants(network):
            lr_index = tuned_lr[network, spec.name] if recipe == TUNED else 0
            values.setdefault(str(getattr(spec, axis)), []).append(run.population[network, spec.name, lr_index, k])
        return float(np.mean(values[to_level]) - np.mean(values[from_level]))

    scored = []

    def score(kind: str, base: str, recipe: str, step, switch, true: float, interval) -> None:
        scored.append({"kind": kind, "base_config": base, "recipe": recipe, "step": step, "axis": switch[0],
                       "true": true, "low": interval["ci_low"], "high": interval["ci_high"]})

    effects = derived.effects[derived.effects["metric"] == METRIC]
    for row in effects.itertuples():
        switch = (row.axis, row.from_level, row.to_level)
        kind = ("along training" if row.phase == ALONG_TRAINING else "tuned" if row.recipe == TUNED else "final")
        score(kind, row.base_config, row.recipe, row.step, switch,
              effect(row.base_config, row.recipe, row.step, switch), row._asdict())
    for row in derived.trends[derived.trends["metric"] == METRIC].itertuples():
        switch, (before, last) = (row.axis, row.from_level, row.to_level), row.steps[-2:]
        if row.last_change is not None:
            score("change over the last stretch", row.base_config, row.recipe, last, switch,
                  effect(row.base_config, row.recipe, last, switch)
                  - effect(row.base_config, row.recipe, before, switch), row.last_change)
    values = derived.all_quality_values
    values = values[values["metric"] == METRIC]
    for (base, recipe), runs in values.groupby(["base_config", "recipe"]):
        first, last = runs["step"].min(), runs["step"].max()
        fit = difference_fit(runs[runs["step"] == last], runs[runs["step"] == first], tuple(AXES), references())
        for term in fit.itertuples():
            switch = (term.factor, str(term.reference), str(term.level))
            score("change, first to last", base, recipe, last, switch,
                  effect(base, recipe, last, switch) - effect(base, recipe, first, switch), term._asdict())
    for _, row in derived.across_scales.iterrows():  # a column per network: no tuple names
        switch, step = (row["axis"], row["from_level"], row["to_level"]), row[row["larger"]]["step"]
        if row["difference"] is not None:
            score("across scales", row["larger"], row["recipe"], step, switch,
                  effect(row["larger"], row["recipe"], step, switch)
                  - effect(row["smaller"], row["recipe"], step, switch), row["difference"])
    for row in derived.across_recipes.itertuples():
        switch, step = (row.axis, row.from_level, row.to_level), row.shared["step"]
        if row.difference is not None:
            score("tuned minus shared", row.base_config, TUNED, step, switch,
                  effect(row.base_config, TUNED, step, switch) - effect(row.base_config, row.shared["recipe"], step,
                                                                          switch), row.difference)
    return pd.DataFrame(scored)


def replicates_of(case: Case, replicates: range, noise: Noise = Noise()) -> pd.DataFrame:
    """``case``'s scored intervals over ``replicates`` (their seeds), each replicate's rows marked with its seed."""
    return pd.concat([one_replicate(case, noise, seed).assign(replicate=seed) for seed in replicates],
                     ignore_index=True)


def covered(scored: pd.DataFrame) -> pd.Series:
    return (scored["low"] <= scored["true"]) & (scored["true"] <= scored["high"])


def coverage(cases: Sequence[Case], replicates: int, noise: Noise = Noise(), workers: int = 1) -> Iterator[dict]:
    """Per case, as each is done: intervals scored and their coverage (with its binomial standard error), over
    every kind and of each kind (``KINDS``), and the median half-width of the final effects. ``workers``:
    processes sharing the replicates."""
    for case, scored in scored_cases(replicates_of, cases, replicates, noise, workers, CHUNK):
        yield _summary(case, scored)


CHUNK = 10  # replicates per task


def _summary(case: Case, scored: pd.DataFrame) -> dict:
    hit = covered(scored)
    final = scored[scored["kind"] == "final"]
    return {"seeds": case.seeds, "reference_interaction": case.reference_interaction, "intervals": len(scored),
            "coverage_%": 100 * hit.mean(), "se_%": 100 * np.sqrt(hit.mean() * (1 - hit.mean()) / len(scored)),
            **{f"{kind}_%": 100 * hit[scored["kind"] == kind].mean() for kind in KINDS},
            "smallest_kind": int(scored["kind"].value_counts().min()),
            "median_half_width_final": float(((final["high"] - final["low"]) / 2).median())}


# The committed table's cases: the quick preset's 4 seeds and 3, each with no reference x variant interaction, a
# small one (0.1 of the run noise: the probe could not tell the reference's mean square from the
# residual's) and one as large as the run noise.
CASES = tuple(Case(seeds, interaction) for seeds in (4, 3) for interaction in (0.0, 0.1, 1.0))


def main(argv: list[str] | None = None) -> None:
    command_line(__doc__.split("\n\n")[0], "simulated runs per case (72 intervals each)", coverage, CASES,
                 table_for_docs, argv)


def table_for_docs(summary: pd.DataFrame) -> pd.DataFrame:
    """The coverage summary as docs/statistics.md shows it: one row per case, figures rounded."""
    return pd.DataFrame({
        "seeds": summary["seeds"],
        "reference × variant": summary["reference_interaction"].map(lambda r: f"{r:g} × run noise"),
        "intervals": summary["intervals"].map("{:,}".format),
        "coverage [%]": [plus_minus(c, se, ".1f", ".1f") for c, se in zip(summary["coverage_%"], summary["se_%"])],
        **{f"{kind} [%]": summary[f"{kind}_%"].map("{:.1f}".format) for kind in KINDS},
        "final half-width [FD]": summary["median_half_width_final"].map("{:.3f}".format)})


if __name__ == "__main__":
    main()
