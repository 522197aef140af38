"""Section: EDM2's Table 1 (Karras et al. 2024) beside this run's ladder: each rung's published FID change against
our rung effect, at the shared recipe and at each rung's tuned recipe. The paper's numbers are data
(bench/report/data/edm2_fid.csv, each row with its source and whether its step from the configuration before it
changes the architecture only), not prose."""
from __future__ import annotations

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.compute.robustness import bound_level, paper_reading, primary_quality
from bench.report.render.document import Section
from bench.report.render.paper import paper_section, paper_table
from bench.report.render.wording import effect_interval, signed

NOTE = ("EDM2 builds its network in cumulative configurations A to G on ImageNet-512 and reports each one's FID "
        "(lower is better); our ladder's rungs carry the same names and each is compared with the rung before it "
        "(FD on the classifier features of the run's data set, lower is better). A rung whose predecessor in our "
        "ladder is not its predecessor in the paper (C follows A here) is read against the paper's architecture-only "
        "steps within the span (B → C), not the whole span: B changes the training recipe, the attention placement "
        "and the loss weighting, which our rung does not. The scales differ by orders of magnitude and EDM2 trains "
        "with its own recipe (Adam, lr 0.010-0.012, inverse-square-root decay, no weight decay), so only directions "
        "compare, and each reading holds at this scale only: reproduced = the same sign and resolved (Holm over the "
        "primary family), contradicted = the opposite sign and resolved, else not resolved at this scale, with the "
        "largest difference the run allows: its interval at Holm's family level, named beside it, wider than the 95% "
        "interval of our effect.")


def paper_step(paper: pd.DataFrame, from_level: str, to_level: str) -> tuple[float, str]:
    """(change, text): EDM2's FID change that our rung ``from_level`` → ``to_level`` is read against, and how the
    table shows it. Over consecutive configurations, the change between them; over a span, the sum of its steps that
    change the architecture only (``architecture_only``), beside the whole span's change and what it includes."""
    paper = paper.set_index("config")
    order = list(paper.index)
    start, end = order.index(from_level), order.index(to_level)
    fid = paper["fid"]
    span = f"{fid[from_level]:.2f} → {fid[to_level]:.2f} ({signed(fid[to_level] - fid[from_level])})"
    if end == start + 1:
        return fid[to_level] - fid[from_level], span
    steps = list(zip(order[start:end], order[start + 1:end + 1]))
    architecture = [(a, b) for a, b in steps if _yes(paper.loc[b, "architecture_only"])]
    others = [b for a, b in steps if (a, b) not in architecture]
    if not architecture or not others:
        return fid[to_level] - fid[from_level], f"{from_level} → {to_level} {span}"
    change = sum(fid[b] - fid[a] for a, b in architecture)
    shown = "; ".join(f"{a} → {b} {fid[a]:.2f} → {fid[b]:.2f}" for a, b in architecture)
    return change, (f"{shown} ({signed(change)}), the architecture only; {from_level} → {to_level} "
                    f"{signed(fid[to_level] - fid[from_level])} includes {', '.join(others)} "
                    f"({'; '.join(paper.loc[b, 'name'] for b in others)})")


def _yes(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def edm2_section(derived: Derived) -> Section | None:
    table = paper_table("edm2")
    paper = table.set_index("config")
    ours = primary_quality(derived.effects)
    ours = ours[ours["axis"].isin(derived.rungs) & ours["to_level"].isin(paper.index)
                & ours["from_level"].isin(paper.index)]
    if ours.empty:
        return None  # not EDM2's ladder
    rows = []
    for (from_level, to_level), group in ours.groupby(["from_level", "to_level"], sort=False):
        change, shown = paper_step(table, from_level, to_level)
        line = {"rung": f"{to_level} after {from_level}: {paper.loc[to_level, 'name']}", "EDM2 FID": shown}
        for _, mine in group.iterrows():
            line[f"our FD effect [95%] ({mine['recipe']} recipe)"] = effect_interval(mine)
            line[f"reading ({mine['recipe']} recipe)"] = paper_reading(change, mine,
                                                                       bound_level(derived.effects, mine))
        rows.append(line)
    return paper_section("Against the paper (EDM2)", NOTE, "EDM2's Table 1 beside our rung effects", pd.DataFrame(rows),
                         paper["source"].iloc[0], lambda hits: list(hits["rung"].str.split(":").str[0]), ", ")
