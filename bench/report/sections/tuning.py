"""Section: the recipe tuning chose for each variant, and the grid it chose from."""
from __future__ import annotations

import pandas as pd

from bench.plan.bracket import MAX_EXTENSIONS
from bench.plan.recipe import recipe_text
from bench.plan.tuning import CRITERION
from bench.report.compute.derived import Derived
from bench.report.render.document import Section, Table, Text
from bench.report.render.wording import edge_sentences
from bench.schema import SAMPLE, Kind


def tuning_section(derived: Derived) -> Section | None:
    chosen = derived.tuning
    if chosen.empty:
        return None  # the run tuned nothing
    tune = derived.table[derived.table["kind"] == Kind.TUNE]
    seeds = ", ".join(str(s) for s in sorted(tune["seed"].dropna().unique()))
    note = (f"Each variant trained at every point of the grid with tuning seeds ({seeds}) that no final score uses, "
            f"and was scored against validation images of the held-out split that the final scores never see "
            f"({_validation(tune)}). The chosen point is the lowest {CRITERION}; a tie goes to the quality preset's "
            "own recipe. The variant was then trained again at its choice with the usual seeds and scored as every "
            "quality cell is: the verdict's tuned reading. Choosing on the final seeds or images would favour the "
            "luckiest point. A choice at the lowest or highest value of a numeric axis extends the grid by its own "
            f"ratio at that edge, for that variant alone, until the choice is interior or {MAX_EXTENSIONS} points "
            "were added on that side; every choice still at an edge is named below.")
    section = Section("Tuning", note)
    axes = [a for a in chosen["tuned_axes"].iloc[0].split(",") if a]
    frame = pd.DataFrame({
        "variant": [f"{r} ({v})" if r else v for r, v in zip(chosen["rung"], chosen["variant"])],
        "network": chosen["base_config"],
        "chosen": [recipe_text((a, row[a]) for a in axes) for _, row in chosen.iterrows()],
        "criterion there": chosen["criterion"].map(lambda v: f"{v:.4g}"),
        "grid (criterion per point)": chosen["grid"],
    })
    section.items.append(Table("The recipe each variant trained at in the tuned reading", frame))
    interior = "No choice sits at an edge of a numeric axis of its grid."
    section.items.append(Text(edge_sentences(derived.tuning_edges) or [interior]))
    return section


def _validation(tune: pd.DataFrame) -> str:
    messages = tune.loc[tune["phase"] == SAMPLE, "message"].dropna()
    found = [m for m in messages.unique() if str(m).startswith("validation")]
    return found[0] if found else "validation images"
