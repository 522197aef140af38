"""Combine run folders (shards, or runs on several machines) into one, keeping each cell once."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from bench.atomic import atomic_write_text
from bench.store.folder import SCHEMA_VERSION, RunStore, config_differences, read_json, read_part, same_schema

# Options that may differ between the folders of one sweep.
PER_FOLDER = ("shard",)


def merge_runs(dirs: list[Path], out: Path) -> pd.DataFrame:
    """Refuses folders whose schema or sweep options disagree; a cell present in several folders is
    kept once, preferring a finished (non-error) copy."""
    if len(dirs) < 1:
        raise ValueError("merge: give at least one run folder")
    runs = []
    for folder in dirs:
        store = RunStore(folder)
        if not store.exists():
            raise ValueError(f"merge: {folder} is not a run folder (no run.json)")
        runs.append((store, store.read_run_file()))
    first_store, first = runs[0]
    for store, stored in runs:
        if not same_schema(stored):
            raise ValueError(f"merge: {store.root} has table schema {stored['schema_version']}, not this code's "
                             f"{SCHEMA_VERSION}; merge runs of one schema, written by this version")
    for store, stored in runs[1:]:
        differ = config_differences(first["config"], stored["config"], ignore=PER_FOLDER)
        if differ:
            detail = "; ".join(f"{k}: {a!r} vs {b!r}" for k, a, b in differ)
            raise ValueError(f"merge: {store.root} and {first_store.root} are different sweeps ({detail})")

    target = RunStore(out)
    if target.exists() or (out / "metrics.parquet").exists():
        raise ValueError(f"merge: --out {out} already holds a run; choose an empty folder")
    chosen: dict[str, Path] = {}
    for store, _ in runs:
        for part in sorted(store.cells_dir.glob("*.parquet")):
            if part.name not in chosen or _has_error(chosen[part.name]) and not _has_error(part):
                chosen[part.name] = part
    for part in chosen.values():  # refuse a damaged part now: merge only reads, `run --resume` repairs
        _read_input_part(part)
    target.cells_dir.mkdir(parents=True, exist_ok=True)
    for name, part in chosen.items():
        shutil.copy2(part, target.cells_dir / name)
    for store, _ in runs:  # sample grids, if any, travel with their cells
        if (store.root / "samples").is_dir():
            shutil.copytree(store.root / "samples", out / "samples", dirs_exist_ok=True)
    planned = {cell["id"]: cell for _, stored in runs for cell in stored.get("planned_cells", [])}
    merged = dict(first, config=first["config"] | {"shard": None}, merged_from=[str(d) for d in dirs],
                  planned_cells=list(planned.values()))
    atomic_write_text(target.run_file, json.dumps(merged, indent=2, sort_keys=True))
    envs = [read_json(s.root / "env.json", "restore it from a copy, or delete it") for s, _ in runs
            if (s.root / "env.json").exists()]
    atomic_write_text(out / "env.json", json.dumps(envs[0] | {"merged_runs": envs}, indent=2, sort_keys=True))
    return target.consolidate()


def _has_error(part: Path) -> bool:
    return bool((_read_input_part(part)["status"] == "error").any())


def _read_input_part(part: Path) -> pd.DataFrame:
    """A part of an input folder; ValueError naming it, and how to repair it, if it is damaged."""
    try:
        return read_part(part)
    except ValueError as err:
        raise ValueError(f"merge: {err}; run `python -m bench run --resume --out {part.parent.parent}` with its "
                         "options to set it aside and measure its cell again") from err
