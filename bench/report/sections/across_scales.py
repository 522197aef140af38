"""Section: each switch's primary quality effect on every network the quality cells trained, and whether its
direction holds."""
from __future__ import annotations

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.compute.effects import quality_bases
from bench.report.compute.frames import parameter_count
from bench.report.render.document import Section, Table, Text
from bench.report.render.wording import describe_effect, effect_interval, scale_reading

NOTE = ("The same switches trained with the same recipe on networks of different size. The direction: holds when the "
        "effect is resolved in the same direction on every network; reverses: resolved in opposite directions; "
        "resolved at one scale only: resolved on one network and within noise on the other. Each network's effect is "
        "a primary one (Holm over the primary family). The size: the difference between the largest network's effect "
        "and the smallest's, with its 95% interval (independent runs: the two standard errors combined, "
        "Welch-Satterthwaite degrees of freedom), exploratory; an effect resolved at one scale only need not differ "
        "between the scales, and one that holds may still shrink or grow.")


def across_scales_section(derived: Derived) -> Section | None:
    scales = derived.across_scales
    if scales.empty:
        return None  # quality on one network only
    section = Section("Across scales", NOTE)
    bases = [b for b in quality_bases(derived.effects) if b in scales.columns]
    params = {b: parameter_count(derived.table, b) for b in bases}
    rows = []
    for _, row in scales.iterrows():
        line = {"switch": f"{row['axis']}: {row['from_level']} → {row['to_level']}", "recipe": row["recipe"]}
        for base in bases:
            effect = row[base]
            line[f"{base} (up to {params[base]:,.0f} parameters)" if params[base] else base] = describe_effect(effect) + (
                " resolved" if bool(effect["resolved"]) else "") if isinstance(effect, pd.Series) else "—"
        difference = row["difference"]
        line[f"{row['larger']} − {row['smaller']}"] = effect_interval(difference) + (
            " resolved" if bool(difference["resolved"]) else "") if isinstance(difference, pd.Series) else "—"
        rows.append(line | {"reading": scale_reading(row, with_difference=False)})
    frame = pd.DataFrame(rows)
    section.items.append(Table("Primary quality effect on each network, and the difference between them", frame))
    counts = scales["reading"].map(lambda r: r.split(" (")[0]).value_counts()
    section.items.append(Text([f"{reading.capitalize()}: {count} of {len(frame)}." for reading, count in
                               counts.items()]))
    return section

