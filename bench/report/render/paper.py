"""What the sections that set a paper beside this run share (ADM: sections/against_paper.py, EDM2:
sections/against_edm2.py): the paper's published numbers, read from data, and the section itself: the table
beside ours, its source, and one line per reading naming the rows that hold it."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from bench.report.compute.robustness import PAPER_READINGS
from bench.report.render.document import Section, Table, Text

DATA = Path(__file__).parent.parent / "data"


def paper_table(paper: str, **dtype: type) -> pd.DataFrame:
    """A paper's published FIDs (bench/report/data/<paper>_fid.csv), each row with its source; ``dtype`` names the
    columns that read as text though they look like numbers."""
    return pd.read_csv(DATA / f"{paper}_fid.csv", dtype=dtype or None, keep_default_na=False)


def paper_section(title: str, note: str, caption: str, frame: pd.DataFrame, source: str,
                  names: Callable[[pd.DataFrame], list[str]], separator: str) -> Section:
    """The section: ``frame`` (one row per paper row, a ``reading`` column per recipe it is read at) under
    ``caption`` with the paper's ``source``, then per reading the rows that hold it, as ``names`` writes them,
    joined by ``separator``."""
    section = Section(title, note)
    section.items.append(Table(caption, frame, f"Source: {source}."))
    section.items.append(Text(_summary(frame, names, separator)))
    return section


def _summary(frame: pd.DataFrame, names: Callable[[pd.DataFrame], list[str]], separator: str) -> list[str]:
    lines = []
    for column in (c for c in frame.columns if c.startswith("reading")):
        recipe = column.removeprefix("reading").removeprefix(" (").removesuffix(")")  # one recipe: "reading"
        where = f"at this scale, {recipe}" if recipe else "at this scale"
        for word in PAPER_READINGS:
            hits = names(frame[frame[column].str.startswith(word)])
            lines.append(f"{word.capitalize()} {where}: {separator.join(hits) if hits else 'none'}.")
    return lines
