"""Section: EDM2's Table 1 (Karras et al. 2024) beside this run's ladder: each rung's published FID change against
our rung effect, at the shared recipe and at each rung's tuned recipe. The paper's numbers are data
(bench/report/data/edm2_fid.csv, each row with its source), not prose."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.compute.robustness import PAPER_READINGS, paper_reading, primary_quality
from bench.report.render.document import Section, Table, Text
from bench.report.render.wording import effect_interval, signed

PAPER = Path(__file__).parent.parent / "data" / "edm2_fid.csv"
NOTE = ("EDM2 builds its network in cumulative configurations A to G on ImageNet-512 and reports each one's FID "
        "(lower is better); our ladder's rungs carry the same names and each is compared with the rung before it "
        "(FD on the classifier features of the run's data set, lower is better). A rung whose predecessor in our "
        "ladder is not its predecessor in the paper (C follows A here: B changes the training recipe and attention "
        "placement) is compared with the paper's change over the same span. The scales differ by orders of "
        "magnitude and EDM2 trains with its own recipe (Adam, lr 0.010-0.012, inverse-square-root decay, no weight "
        "decay), so only directions compare: reproduced = the same sign and resolved, contradicted = the opposite "
        "sign and resolved, else not resolved, with the largest difference the run allows.")


def paper_table() -> pd.DataFrame:
    return pd.read_csv(PAPER, keep_default_na=False)


def edm2_section(derived: Derived) -> Section | None:
    paper = paper_table().set_index("config")
    ours = primary_quality(derived.effects)
    ours = ours[ours["axis"].isin(derived.rungs) & ours["to_level"].isin(paper.index)
                & ours["from_level"].isin(paper.index)]
    if ours.empty:
        return None  # not EDM2's ladder
    rows = []
    for (from_level, to_level), group in ours.groupby(["from_level", "to_level"], sort=False):
        change = paper.loc[to_level, "fid"] - paper.loc[from_level, "fid"]
        line = {"rung": f"{to_level} after {from_level}: {paper.loc[to_level, 'name']}",
                "EDM2 FID": f"{paper.loc[from_level, 'fid']:.2f} → {paper.loc[to_level, 'fid']:.2f} "
                            f"({signed(change)})"}
        for _, mine in group.iterrows():
            line[f"our FD effect ({mine['recipe']} recipe)"] = (
                effect_interval(mine))
            line[f"reading ({mine['recipe']} recipe)"] = paper_reading(change, mine)
        rows.append(line)
    frame = pd.DataFrame(rows)
    section = Section("Against the paper (EDM2)", NOTE)
    section.items.append(Table("EDM2's Table 1 beside our rung effects", frame,
                               f"Source: {paper['source'].iloc[0]}."))
    section.items.append(Text(_summary(frame)))
    return section


def _summary(frame: pd.DataFrame) -> list[str]:
    lines = []
    for column in (c for c in frame.columns if c.startswith("reading")):
        recipe = column.removeprefix("reading (").removesuffix(")")
        for word in PAPER_READINGS:
            hits = frame.loc[frame[column].str.startswith(word), "rung"].str.split(":").str[0]
            lines.append(f"{word.capitalize()} at the {recipe}: {', '.join(hits) if len(hits) else 'none'}.")
    return lines
