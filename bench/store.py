"""A run folder: one Parquet part per finished cell, consolidated into metrics.csv / metrics.parquet.

Every write is a write-to-temporary then ``os.replace``, so a crash, Ctrl-C or SIGKILL at any moment
leaves either the old file or the new one, never half of one. A cell is finished when its part exists;
``--resume`` skips those (cells that ended in ``error`` are retried).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .cells import Cell
from .schema import COLUMNS, Measurement

SCHEMA_VERSION = 3  # 2: peer, memory_format, compile columns; 3: timing cells, replica and position columns


def atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename over ``path``; the temporary lives beside it (same filesystem)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be read and shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def rows_frame(run_id: str, cell: Cell, measurements: Iterable[Measurement], **worker: str) -> pd.DataFrame:
    """The cell's rows with its identity columns (a timing cell's rows: their member's); ``worker`` gives
    device_name and host."""
    common = {"run_id": run_id} | worker
    records = [cell.identity_columns(m.member) | common | m.as_dict() for m in measurements]
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    # Nullable integers keep "no seed" distinct from seed 0 through CSV and Parquet round trips.
    for col in ("seed", "step", "n", "repeat", "position", "attn_heads", "threads", "batch_size", "replica"):
        frame[col] = frame[col].astype("Int64")
    frame["value"] = frame["value"].astype("float64")
    frame["checkpoint"] = frame["checkpoint"].astype("bool")
    frame["compile"] = frame["compile"].astype("bool")
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].fillna("").astype(str)
    return frame


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

    def open(self, config: dict[str, Any], resume: bool, run_id: str) -> str:
        """Create the folder, or check that it holds a compatible run. Returns the run id."""
        if self.exists():
            stored = json.loads(self.run_file.read_text())
            if not resume:
                raise ValueError(f"--out {self.root} already holds a run ({stored.get('run_id')}); "
                                 "pass --resume to finish it, or choose another --out")
            if stored.get("schema_version") != SCHEMA_VERSION or stored.get("columns") != list(COLUMNS):
                raise ValueError(f"--out {self.root} holds a table of another schema "
                                 f"(version {stored.get('schema_version')}); choose another --out")
            differ = {k: (stored["config"].get(k), v) for k, v in config.items() if stored["config"].get(k) != v}
            if differ:
                detail = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in differ.items())
                raise ValueError(f"--resume: {self.root} was started with other options ({detail}); "
                                 "rerun with the stored options or choose another --out")
            self._remove_interrupted_writes()
            return stored["run_id"]
        if (self.root / "metrics.csv").exists() or (self.root / "metrics.parquet").exists():
            raise ValueError(f"--out {self.root} holds a metrics table without run.json: not a run of this tool; "
                             "choose another --out")
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_file, json.dumps(
            {"run_id": run_id, "schema_version": SCHEMA_VERSION, "columns": list(COLUMNS), "config": config},
            indent=2, sort_keys=True))
        return run_id

    def _remove_interrupted_writes(self) -> None:
        """A SIGKILL between ``mkstemp`` and ``os.replace`` leaves a temporary that nothing will rename."""
        for folder in (self.root, self.cells_dir):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def part(self, cell: Cell) -> Path:
        return self.cells_dir / f"{cell.id}.parquet"

    def is_finished(self, cell: Cell) -> bool:
        """Finished unless missing or ended in error (errors are worth retrying; ``oom`` is an answer)."""
        part = self.part(cell)
        if not part.exists():
            return False
        return not (pd.read_parquet(part, columns=["status"])["status"] == "error").any()

    def write_cell(self, frame: pd.DataFrame, cell: Cell) -> None:
        atomic_write(self.part(cell), lambda tmp: frame.to_parquet(tmp, index=False))

    def table(self) -> pd.DataFrame:
        parts = sorted(self.cells_dir.glob("*.parquet"))
        if not parts:
            return _typed(pd.DataFrame(columns=list(COLUMNS)))
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

    def consolidate(self) -> pd.DataFrame:
        table = self.table()
        atomic_write(self.root / "metrics.parquet", lambda tmp: table.to_parquet(tmp, index=False))
        atomic_write(self.root / "metrics.csv", lambda tmp: table.to_csv(tmp, index=False))
        return table

