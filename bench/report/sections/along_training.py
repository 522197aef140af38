"""Section: each switch's quality effect at every checkpoint of training, and whether it is stable."""
from __future__ import annotations

from pathlib import Path

from bench.report.compute.derived import Derived
from bench.report.compute.effects import quality_base
from bench.report.compute.headline import HEADLINE_QUALITY
from bench.report.compute.robustness import trajectories
from bench.report.render.document import Section, Text, save_figure
from bench.report.render.plots import effect_trajectories
from bench.report.render.wording import signed

NOTE = ("Every quality run is sampled and scored at each checkpoint, and each switch's effect is fitted at each "
        "checkpoint with the same model as the final one (the last checkpoint's effect is the final effect). "
        "Stable: the change from the first checkpoint to the last is within noise; growing or shrinking: both ends "
        "have the same sign and the change is resolved, away from or towards zero; changes sign: both ends are "
        "resolved, with opposite signs; not settled: the change is resolved and crosses zero, but an end is within "
        "noise, so the direction the effect is heading to is open. Still moving: the effect changed over the last "
        "stretch (the last two checkpoints). A change is the same model fitted to each run's difference between the "
        "two checkpoints; 95% intervals, exploratory (no correction over switches).")


def along_training_section(derived: Derived, figures_dir: Path) -> Section | None:
    trends = derived.trends
    if trends.empty:
        return None  # no run was scored at two checkpoints or more
    section = Section("Effects along training", NOTE)
    points = trajectories(derived.effects)
    base = quality_base(derived.effects)
    rungs = derived.rungs
    for number, (name, _, metric) in enumerate(HEADLINE_QUALITY):
        shown = points[(points["metric"] == metric) & (points["base_config"] == base)]
        if shown.empty:
            continue
        shown = shown.assign(switch=[_name(r, rungs) for _, r in shown.iterrows()])
        title = f"{name} effect of each {'rung' if rungs else 'switch'} along training ({base})"
        lines = _lines(trends[(trends["metric"] == metric) & (trends["base_config"] == base)], rungs)
        figure = save_figure(effect_trajectories(shown, title, f"{name} difference"), figures_dir,
                             f"along_training_{metric}", title, " | ".join(lines), detail=number > 0)
        section.items += [figure, Text(lines, detail=number > 0)]
    return section


def _name(row, rungs: dict[str, str]) -> str:
    return f"{row['to_level']} after {row['from_level']}" if row["axis"] in rungs else \
        f"{row['axis']}: {row['from_level']} → {row['to_level']}"


def _lines(trends, rungs: dict[str, str]) -> list[str]:
    out = []
    for _, row in trends.iterrows():
        path = ", ".join(f"{signed(e)} at step {s:,}" for s, e in zip(row["steps"], row["estimates"]))
        stretch = row["steps"][-1] - row["steps"][-2]
        settled = "" if row["settled"] else f"; still moving over the last {stretch:,} steps"
        out.append(f"{_name(row, rungs)} ({row['recipe']} recipe): {row['trend']} ({path}){settled}")
    return out
