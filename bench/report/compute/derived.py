"""One step from a run's tidy table to every frame the report reads: ``Derived``.

Each frame is computed once, on first use (a report that draws no peers never computes peer ratios, the printed
summary never fits the timing model), and every section and the printed summary read the same objects.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from bench.plan.bracket import edges
from bench.plan.tuning import choices
from bench.report.compute import frames, robustness
from bench.report.compute.completeness import Completeness, completeness
from bench.report.compute.disturbance import disturbance
from bench.report.compute.effects import effect_table, quality_bases
from bench.report.compute.load import Run
from bench.report.compute.peer_ratios import peer_comparisons, peer_rounds
from bench.report.compute.quality_model import quality_effects
from bench.report.compute.recipes import SHARED, main_recipe, with_recipes
from bench.schema import ALONG_TRAINING, Kind, references
from bench.statistics.rounds_model import timing_effects
from variants import AXES


class Derived:
    """The derived frames of one run (``Run``: its table, env.json and sample grids)."""

    def __init__(self, run: Run) -> None:
        self.run = run

    @classmethod
    def of_table(cls, table: pd.DataFrame, name: str = "table", tune: dict[str, list[Any]] | None = None) -> Derived:
        """The derived frames of a table alone (normalised: compute/load.py), without a run folder; ``tune``: the
        tuning grid asked for, as run.json holds it."""
        return cls(Run(name=name, root=Path(name), table=table, tune=tune))

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def table(self) -> pd.DataFrame:
        return self.run.table

    @property
    def env(self) -> dict[str, Any]:
        return self.run.env

    @property
    def samples(self) -> list[Path]:
        return self.run.samples

    @cached_property
    def completeness(self) -> Completeness:
        """Which planned cells the table holds; what the missing and failed ones leave out."""
        return completeness(self.table, self.run.planned)

    # --- costs -----------------------------------------------------------------------------------
    @cached_property
    def cost_rows(self) -> pd.DataFrame:
        """Successful cost observations of the variants, one row per repeat or round."""
        return frames.cost_rows(self.table)

    @cached_property
    def cost_cells(self) -> pd.DataFrame:
        """Median, quartiles and repeat count per cell and measurement (every block)."""
        return frames.cost_cells(self.cost_rows)

    @cached_property
    def cost_medians(self) -> pd.DataFrame:
        """The block totals of ``cost_cells``, labelled."""
        return frames.cost_medians(self.cost_cells)

    # --- time ------------------------------------------------------------------------------------
    @cached_property
    def timing_fits(self) -> pd.DataFrame:
        """The blocked factorial model of the timing rounds: every axis's effect and the A/A control per base
        config, setting, phase and timed metric, with the noise by level (``block_sd``, ``round_sd``)."""
        return timing_effects(self.table, tuple(AXES), references())

    @cached_property
    def disturbance(self) -> pd.DataFrame:
        """Per base config and CPU setting: whether its timing rounds ran on a busy machine, and why."""
        return disturbance(self.table, self.env.get("cpu_count"))

    @cached_property
    def noise_levels(self) -> pd.DataFrame:
        """Per setting, phase and timed metric: rounds, processes, and the SD at each level (log scale:
        bench/statistics/rounds_model.py)."""
        if self.timing_fits.empty:
            return pd.DataFrame()
        levels = ["n", "processes", "block_sd", "round_sd", "process_speed_sd", "process_sd"]
        return self.timing_fits.groupby(["setting", "phase", "metric"])[levels].first().reset_index()

    # --- quality ---------------------------------------------------------------------------------
    @cached_property
    def all_quality_values(self) -> pd.DataFrame:
        """One value per variant, recipe (compute/recipes.py), seed, quality metric and checkpoint."""
        return with_recipes(frames.scored_values(self.table, Kind.QUALITY), self.table)

    @cached_property
    def main_recipe(self) -> str:
        """The recipe reading the per-variant figures and tables show (``shared`` unless none is)."""
        return main_recipe(self.all_quality_values["recipe"]) if not self.all_quality_values.empty else SHARED

    @cached_property
    def quality_values(self) -> pd.DataFrame:
        """One value per variant, seed and quality metric at the end of training, at the main recipe."""
        values = self.all_quality_values
        if values.empty:
            return values
        return values[(values["recipe"] == self.main_recipe) & (values["phase"] != ALONG_TRAINING)]

    @cached_property
    def tuning(self) -> pd.DataFrame:
        """Per tuned variant: the recipe its tuning cells chose, the criterion there and the grid (plan/tuning.py)."""
        return choices(self.table)

    @cached_property
    def tuning_edges(self) -> pd.DataFrame:
        """Per tuned variant and axis whose choice still sits at an edge of its grid: which, and why it was not
        extended further (plan/bracket.py)."""
        return edges(self.table, self.run.tune)

    @cached_property
    def floor_values(self) -> pd.DataFrame:
        """One value per seed and metric of the real-versus-real floor."""
        return frames.scored_values(self.table, Kind.FLOOR)

    @cached_property
    def quality_fits(self) -> pd.DataFrame:
        """The seed-blocked model of every quality measurement, recipe reading and checkpoint: every axis's main
        effect (quality_model.py)."""
        return quality_effects(self.all_quality_values, tuple(AXES), references())

    @cached_property
    def quality(self) -> pd.DataFrame:
        """Per variant and metric: mean and 95% t-interval over seeds."""
        return frames.per_variant_quality(self.quality_values)

    @cached_property
    def floor(self) -> pd.DataFrame:
        """Per metric: the real-versus-real floor's mean and 95% t-interval over seeds."""
        return frames.per_variant_quality(self.floor_values)

    # --- effects and peers -----------------------------------------------------------------------
    @cached_property
    def effects(self) -> pd.DataFrame:
        """effects.csv: every effect of the run (compute/effects.py)."""
        return effect_table(self.timing_fits, frames.cost_pairs(self.cost_cells), self.quality_fits,
                            self.disturbance, rungs=list(self.rungs))

    @cached_property
    def trends(self) -> pd.DataFrame:
        """Per switch, network, recipe and headline quality metric: its effect along training (robustness.py)."""
        return robustness.trends(self.effects, self.all_quality_values, tuple(AXES), references())

    @cached_property
    def across_scales(self) -> pd.DataFrame:
        """Per switch and recipe: does the primary quality effect hold on every network trained, and how much does it
        differ between them (robustness.py)."""
        bases = quality_bases(self.effects)
        return robustness.across_scales(self.effects, self.quality_fits, robustness.network_sizes(self.table, bases))

    @cached_property
    def across_recipes(self) -> pd.DataFrame:
        """Per switch and network: the shared-recipe reading against the tuned one, and their difference
        (robustness.py)."""
        return robustness.across_recipes(self.effects, self.all_quality_values, tuple(AXES), references())

    @cached_property
    def rungs(self) -> dict[str, str]:
        """A ladder's rungs, first rung first: name -> what it sets on top of the rung before (empty outside a
        ladder)."""
        return frames.rung_changes(self.table)

    @cached_property
    def peer_rounds(self) -> pd.DataFrame:
        return peer_rounds(self.table)

    @cached_property
    def peer_comparisons(self) -> pd.DataFrame:
        return peer_comparisons(self.cost_rows, self.peer_rounds)
