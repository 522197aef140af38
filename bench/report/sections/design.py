"""Section: the design the run measured (read back from its table) and what its estimates are confounded with."""
from __future__ import annotations

from bench.report.compute.derived import Derived
from bench.report.compute.design import summarise_design
from bench.report.render.document import Section, Text
from bench.schema import Kind

ROMAN = {3: "III", 4: "IV", 5: "V", 6: "VI"}


def design_section(derived: Derived) -> Section | None:
    if derived.rungs:
        return None  # a ladder compares each rung with the one before it: no factorial design to alias
    section = Section("Design and aliasing", "Every effect is estimated from the whole design: quality from a model "
                      "over every (variant, seed) run with the seed as a block, time from the timing rounds' model "
                      "with the round as a block. Main effects only: what an effect may be confounded with follows.")
    values, costs = derived.quality_values, derived.cost_medians
    # the timed variants, not every cost variant: a fractional design adds cost cells outside its runs for pairing
    timed = costs[costs["kind"] == Kind.TIMING] if not costs.empty else costs
    if not values.empty:
        source, rows = "quality runs", values
    elif not timed.empty:
        source, rows = "timed variants", timed
    else:
        source, rows = "cost variants", costs
    design = summarise_design(rows.drop_duplicates(subset="variant")) if not rows.empty else None
    if design is None:
        return None  # no variant measured, or no axis with two levels
    seeds = f", {values['seed'].nunique()} seeds each" if source == "quality runs" else ""
    axes = ", ".join(design.axes)
    lines = [f"The {source}: {design.runs} variants{seeds}, over {axes}."]
    if design.kind == "fractional":
        level = ROMAN.get(design.resolution, str(design.resolution))
        lines.append(f"A two-level fractional factorial of resolution {level}: every main effect compares half the "
                     f"runs with the other half. Aliased (terms of up to three axes; × = interaction):")
        lines += design.aliases or ["nothing up to three-axis interactions"]
        if design.resolution is not None and design.resolution >= 4:
            lines.append("No main effect is aliased with a two-axis interaction; a main effect may carry "
                         "three-axis interactions, and two-axis interactions carry each other.")
    elif design.kind == "factorial":
        lines.append("A full factorial: no effect is aliased with another. Interactions are not in the model; they "
                     "add to its residual, so they widen the intervals rather than bias the main effects.")
    elif design.kind == "one at a time":
        lines.append("One axis at a time around the baseline: each switch is estimated against the baseline's runs "
                     "alone, and says nothing of how the axes interact.")
    else:
        lines.append("Neither a full factorial nor a regular two-level fraction: main effects may be confounded with "
                     "one another's interactions in ways this report does not work out.")
    section.items.append(Text(lines))
    return section
