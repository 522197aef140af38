"""Which of a run's planned cells its table holds, and what the missing and failed ones leave out of the report."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from bench.schema import FAILED_STATUSES, Kind

# What a report lacks without the cells of a kind.
LEFT_OUT = {
    Kind.COST: "no counts or memory of those variants",
    Kind.TIMING: "no time effects",
    Kind.QUALITY: "fewer seeds, or no quality, for those variants",
    Kind.FLOOR: "no real-versus-real floor",
    Kind.CHECK: "checkpointing's equivalence unchecked",
}


@dataclass(frozen=True)
class Completeness:
    planned: int | None     # cells the run planned; None when run.json does not say (an older run)
    finished: int           # cells the table holds
    missing: Counter        # kind -> planned cells the table lacks
    failed: Counter         # kind -> cells whose whole cell failed (a `cell` row with status error or oom)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.failed

    def sentence(self) -> str:
        """``Incomplete run: 11 of 17 planned cells; missing: 1 timing cell (no time effects)``, or "" for a complete
        run; ``Every cell failed: ...`` when no cell the table holds finished cleanly."""
        if self.complete:
            return ""
        parts = [f"{self.finished} of {self.planned} planned cells" if self.planned is not None
                 else f"{self.finished} cells"]
        for what, counts in (("missing", self.missing), ("failed", self.failed)):
            if counts:
                kinds = ", ".join(f"{n} {kind} cell{'s' if n > 1 else ''} ({LEFT_OUT.get(kind, kind)})"
                                  for kind, n in counts.items())
                parts.append(f"{what}: {kinds}")
        every_cell_failed = self.finished > 0 and sum(self.failed.values()) == self.finished
        return ("Every cell failed: " if every_cell_failed else "Incomplete run: ") + "; ".join(parts) + "."


def completeness(table: pd.DataFrame, planned: list[dict[str, str]] | None) -> Completeness:
    held = set(table["cell_id"]) - {""}
    failed_ids = set(table.loc[(table["phase"] == "cell") & table["status"].isin(FAILED_STATUSES), "cell_id"]) - {""}
    kinds = dict(zip(table["cell_id"], table["kind"]))
    failed = Counter(kinds[i] for i in sorted(failed_ids))  # sorted: the same sentence every time
    if planned is None:
        return Completeness(None, len(held), Counter(), failed)
    missing = Counter(cell["kind"] for cell in planned if cell["id"] not in held)
    return Completeness(len(planned), len(held & {cell["id"] for cell in planned}), missing, failed)
