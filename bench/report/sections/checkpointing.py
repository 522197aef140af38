"""Section: checkpointing's trade-off, the memory it saves against the time it adds, from effects.csv."""
from __future__ import annotations

from pathlib import Path

from bench.report.compute.derived import Derived
from bench.report.render.document import Section, save_figure
from bench.report.render.plots import effect_forest
from bench.report.render.wording import add_effect_labels, effects_reading
from bench.schema import FLOPS, PEAK_ALLOCATED_BYTES, PEAK_RSS_BYTES, SAVED_TENSOR_BYTES, SECONDS_PER_ITER, TRAIN_STEP


def checkpoint_section(derived: Derived, figures_dir: Path) -> Section | None:
    effects = derived.effects
    section = Section("Checkpointing trade-off", "Checkpointing on vs off in the training step: the memory it "
                      "saves (exact saved-tensor bytes; measured peaks) against the time it adds (timing rounds' "
                      "model), from effects.csv.")
    rows = effects[(effects["axis"] == "checkpoint") & (effects["phase"] == TRAIN_STEP)
                   & effects["metric"].isin((SAVED_TENSOR_BYTES, PEAK_RSS_BYTES, PEAK_ALLOCATED_BYTES,
                                             "peak_reserved_bytes", SECONDS_PER_ITER, FLOPS))]
    if rows.empty:
        return None  # checkpointing was not varied in this run's cost cells
    rows = add_effect_labels(rows)
    title = "Checkpointing: memory saved against time added"
    section.items.append(save_figure(effect_forest(rows, title), figures_dir, "checkpoint_tradeoff", title,
                                     effects_reading(rows, top=len(rows))))
    return section
