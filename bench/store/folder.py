"""A run folder: one Parquet part per finished cell, consolidated into metrics.csv / metrics.parquet.

Every write is a write-to-temporary then ``os.replace``, so a crash, Ctrl-C or SIGKILL at any moment
leaves either the old file or the new one, never half of one. A cell is finished when its part exists;
``--resume`` skips those (cells with any ``error`` row are retried). A part damaged anyway (a full disk, a
copy cut short, a hand edit) is moved aside to ``damaged/`` with a warning and its cell runs again; the
consolidated tables are always rebuilt from the parts.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.atomic import atomic_write, atomic_write_text
from bench.plan.cells import Cell
from bench.schema import columns, typed

if TYPE_CHECKING:  # imported where a table is made or read, so `import bench.cli` needs no pandas
    import pandas as pd

# 2: peer, memory_format, compile columns; 3: timing cells, replica and position columns; 4: a column per
# declared axis, quality_preset beside the real dataset; 5: EDM2's axes (residual_join replaces skip_rescale), rung,
# rung_index and cuda_graphs columns; 6: recipe axes (lr, lr_schedule, weight_decay, ema_decay), tune cells;
# 7: the process column (a timing cell's rounds spread over worker processes); 8: a cell's id hashes every field
# (earlier ones left fields added later out at their defaults), so an older folder's parts are not this code's cells
SCHEMA_VERSION = 8


def read_json(path: Path, what_to_do: str) -> dict[str, Any]:
    """The JSON object in ``path``; ValueError naming the file, what is wrong and ``what_to_do`` if it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is damaged ({err}); {what_to_do}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} is damaged (it holds a JSON {type(data).__name__}; valid: an object); {what_to_do}")
    return data


def read_part(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet table; ValueError naming the file if it cannot be read (truncated, not Parquet)."""
    import pandas as pd

    try:
        return pd.read_parquet(path, columns=columns)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(f"{path} is damaged ({' '.join(str(err).split())[:300]})") from err


RUN_FILE_KEYS = ("run_id", "schema_version", "columns", "config")


def same_schema(run_file: dict[str, Any]) -> bool:
    """Whether a run.json's table has this code's schema (version and columns)."""
    return run_file.get("schema_version") == SCHEMA_VERSION and run_file.get("columns") == list(columns())


def config_differences(a: dict[str, Any], b: dict[str, Any], ignore: tuple[str, ...] = ()
                       ) -> list[tuple[str, Any, Any]]:
    """The options two runs' configs disagree on, as (key, a's value, b's value); none when they are one sweep.
    Keys in ``ignore`` may differ (a shard's slice)."""
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if k not in ignore and a.get(k) != b.get(k)]


class RunStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cells_dir = self.root / "cells"
        self.scratch = self.root / ".scratch"

    @property
    def run_file(self) -> Path:
        return self.root / "run.json"

    def exists(self) -> bool:
        return self.run_file.exists()

    @property
    def damaged_dir(self) -> Path:
        return self.root / "damaged"

    def read_run_file(self) -> dict[str, Any]:
        """run.json, checked: ValueError naming it and what to do if it is damaged."""
        what_to_do = f"restore it from a copy, or choose another --out (the parts in {self.cells_dir} are intact)"
        stored = read_json(self.run_file, what_to_do)
        if not all(k in stored for k in RUN_FILE_KEYS):
            raise ValueError(f"{self.run_file} is damaged (it lacks key(s) of {', '.join(RUN_FILE_KEYS)}); "
                             f"{what_to_do}")
        return stored

    def open(self, config: dict[str, Any], resume: bool, run_id: str, planned: list[dict[str, str]]) -> str:
        """Create the folder, or check that it holds a compatible run. Returns the run id. ``planned`` (each cell's
        id, kind and label) is kept in run.json, so a report can say which cells are missing."""
        if self.exists():
            stored = self.read_run_file()
            if not resume:
                raise ValueError(f"--out {self.root} already holds a run ({stored.get('run_id')}); "
                                 "pass --resume to finish it, or choose another --out")
            if not same_schema(stored):
                raise ValueError(f"--out {self.root} holds a table of another schema "
                                 f"(version {stored.get('schema_version')}); choose another --out")
            differ = config_differences(stored["config"], config)
            if differ:
                detail = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, a, b in differ)
                raise ValueError(f"--resume: {self.root} was started with other options ({detail}); "
                                 "rerun with the stored options or choose another --out")
            self._remove_interrupted_writes()
            if stored.get("planned_cells") != planned:  # a folder started before cells were recorded
                atomic_write_text(self.run_file, json.dumps(stored | {"planned_cells": planned}, indent=2,
                                                            sort_keys=True))
            return stored["run_id"]
        if (self.root / "metrics.csv").exists() or (self.root / "metrics.parquet").exists():
            raise ValueError(f"--out {self.root} holds a metrics table without run.json: not a run of this tool; "
                             "choose another --out")
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_file, json.dumps(
            {"run_id": run_id, "schema_version": SCHEMA_VERSION, "columns": list(columns()), "config": config,
             "planned_cells": planned}, indent=2, sort_keys=True))
        return run_id

    def _remove_interrupted_writes(self) -> None:
        """A SIGKILL between ``mkstemp`` and ``os.replace`` leaves a temporary that nothing will rename."""
        for folder in (self.root, self.cells_dir):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def part(self, cell: Cell) -> Path:
        return self.cells_dir / f"{cell.id}.parquet"

    def is_finished(self, cell: Cell) -> bool:
        """Finished unless missing, damaged or with an error row: a failed cell or a failed measurement is
        worth retrying (the whole cell runs again); ``oom`` is an answer."""
        part = self.part(cell)
        if not part.exists():
            return False
        rows = self._read_or_set_aside(part)  # every column: a damaged one must not pass for finished
        return rows is not None and not (rows["status"] == "error").any()

    def _read_or_set_aside(self, part: Path) -> pd.DataFrame | None:
        """The part's rows, or None after moving an unreadable part to ``damaged/`` (its cell then runs again)."""
        try:
            return read_part(part)
        except ValueError as err:
            self.damaged_dir.mkdir(exist_ok=True)
            os.replace(part, self.damaged_dir / part.name)
            print(f"warning: {err}; moved it to {self.damaged_dir / part.name}, and its cell will be measured again",
                  file=sys.stderr)
            return None

    def write_cell(self, frame: pd.DataFrame, cell: Cell) -> None:
        atomic_write(self.part(cell), lambda tmp: frame.to_parquet(tmp, index=False))

    def table(self) -> pd.DataFrame:
        import pandas as pd

        frames = [frame for frame in map(self._read_or_set_aside, sorted(self.cells_dir.glob("*.parquet")))
                  if frame is not None]
        if not frames:
            return typed(pd.DataFrame(columns=list(columns())))
        return pd.concat(frames, ignore_index=True)

    def consolidate(self) -> pd.DataFrame:
        table = self.table()
        atomic_write(self.root / "metrics.parquet", lambda tmp: table.to_parquet(tmp, index=False))
        atomic_write(self.root / "metrics.csv", lambda tmp: table.to_csv(tmp, index=False))
        return table

