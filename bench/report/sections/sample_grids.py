"""Section: the sample grids the quality cells wrote, embedded as they are."""
from __future__ import annotations

from pathlib import Path

from bench.report.render.document import Image, Section


def samples_section(samples: list[Path]) -> Section | None:
    section = Section("Sample grids", "Images written by the quality cells (generated samples per variant and seed, "
                      "and a grid of real data), embedded as they are.")
    if not samples:
        return None  # the run wrote no sample grids
    for path in samples:
        section.items.append(Image(path=path, caption=path.stem))
    return section
