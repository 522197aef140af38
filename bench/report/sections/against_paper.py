"""Section: ADM's published FID changes (Dhariwal & Nichol 2021, Tables 1 to 3) beside this run's effects of the same
switches, and which directions this scale reproduces, contradicts or cannot resolve. The paper's numbers are data
(bench/report/data/adm_fid.csv, each row with its source), not prose."""
from __future__ import annotations

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.compute.effects import quality_base
from bench.report.compute.robustness import bound_level, paper_reading, primary_quality
from bench.report.render.document import Section
from bench.report.render.paper import paper_section, paper_table
from bench.report.render.wording import effect_interval, signed
from bench.schema import PRIMARY_QUALITY

NOTE = ("ADM's ablations changed one choice of a 128x128 ImageNet U-Net and reported the change in FID (negative: "
        "better); our effect is the primary quality effect of the same switch (FD on the classifier features of the "
        "run's data set, negative: better). The scales differ by orders of magnitude, so only directions compare, and "
        "each reading holds at this scale only: reproduced = the same sign and resolved (Holm over the primary "
        "family), contradicted = the opposite sign and resolved, else not resolved at this scale, with the largest "
        "difference the run allows: its interval at Holm's family level, named beside it, wider than the 95% "
        "interval of our effect.")


def adm_table() -> pd.DataFrame:
    """ADM's published FID changes, each row with the switch of ours it is read against (``our_to_level``)."""
    return paper_table("adm", our_to_level=str)


def adm_section(derived: Derived) -> Section | None:
    table = adm_table()
    ours = primary_quality(derived.effects)
    ours = ours[(ours["recipe"] == derived.main_recipe) & (ours["base_config"] == quality_base(derived.effects))]
    rows = []
    for _, paper in table.iterrows():
        match = ours[(ours["axis"] == paper["axis"])
                     & ((ours["to_level"] == paper["our_to_level"]) if paper["our_to_level"] else True)]
        if match.empty:
            continue
        mine = match.iloc[0]
        rows.append({"ADM table": f"Table {paper['table']}: {paper['row']}",
                     "ADM switch": f"{paper['paper_from']} → {paper['paper_to']}",
                     "ADM FID change": f"{signed(paper['fid_change'])} (of {paper['baseline_fid']:g}"
                                       + (f", at {int(paper['iterations']) // 1000}K steps)" if paper["iterations"]
                                          else ")"),
                     "our switch": f"{mine['axis']}: {mine['from_level']} → {mine['to_level']}",
                     f"our {PRIMARY_QUALITY[1].upper()} effect [95%]": effect_interval(mine),
                     "reading": paper_reading(paper["fid_change"], mine, bound_level(derived.effects, mine))})
    if not rows:
        return None  # the run switched none of the axes ADM's tables ablate, or measured no quality
    return paper_section("Against the paper (ADM)", NOTE, "ADM's published FID changes beside ours", pd.DataFrame(rows),
                         table["source"].iloc[0].split(", Table")[0],
                         lambda hits: sorted(set(hits["ADM table"])), "; ")
