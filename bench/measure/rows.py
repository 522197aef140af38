"""A cell's measurements as rows of the tidy table: each with the cell's identity columns (bench.schema.columns)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from bench.plan.cells import Cell
from bench.schema import Measurement, columns, typed

if TYPE_CHECKING:  # imported where a table is made, so `import bench.cli` needs no pandas
    import pandas as pd


def rows_frame(run_id: str, cell: Cell, measurements: Iterable[Measurement], **worker: str) -> pd.DataFrame:
    """The cell's rows with its identity columns (a timing cell's rows: their member's); ``worker`` gives
    device_name and host."""
    import pandas as pd

    common = {"run_id": run_id} | worker
    identity: dict[int | None, dict] = {}  # per member: a timing cell's id hashes every member, so compute it once
    records = [(identity.get(m.member) or identity.setdefault(m.member, cell.identity_columns(m.member)))
               | common | m.as_dict() for m in measurements]
    return typed(pd.DataFrame.from_records(records, columns=list(columns())))
