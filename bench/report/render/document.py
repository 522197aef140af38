"""The report as data: sections of figures, tables, images and notes, rendered to Markdown and HTML."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Figure:
    path: Path          # the PNG under figures/
    title: str
    reading: str        # one line computed from the data
    detail: bool = False  # collapsed under the section's details (HTML <details>)


@dataclass
class Table:
    title: str
    frame: pd.DataFrame
    note: str = ""
    detail: bool = False


@dataclass
class Text:
    lines: list[str]    # sentences, shown as a list
    detail: bool = False


@dataclass
class Image:
    path: Path          # an existing PNG of the run (a sample grid)
    caption: str


@dataclass
class Section:
    title: str
    note: str = ""      # method, or the reason a section is empty
    items: list[Figure | Table | Image | Text] = field(default_factory=list)


def save_figure(fig, figures_dir: Path, name: str, title: str, reading: str, detail: bool = False) -> Figure:
    """Write ``fig`` as figures/NAME.png and close it (matplotlib keeps every open figure alive)."""
    import matplotlib.pyplot as plt

    figures_dir.mkdir(parents=True, exist_ok=True)
    path = figures_dir / f"{name}.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Figure(path=path, title=title, reading=reading, detail=detail)
