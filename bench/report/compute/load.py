"""Reading a run folder: the tidy table, env.json and the sample grids, nothing else."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.schema import COST_KINDS, DEFAULT_EXECUTION, columns, dtypes
from bench.store.folder import read_json, read_part
from variants import AXES

# Columns the report derives (add_setting); a table saved after normalise has them already.
DERIVED = ("execution", "setting")


@dataclass
class Run:
    name: str                    # the folder's own name: no machine paths reach the report
    root: Path
    table: pd.DataFrame
    env: dict[str, Any] = field(default_factory=dict)
    samples: list[Path] = field(default_factory=list)
    planned: list[dict[str, str]] | None = None  # run.json's planned cells (id, kind, label); None: not recorded
    tune: dict[str, list[Any]] | None = None  # run.json's tuning grid as asked, before any extension; None: unknown


def load_run(root: Path) -> Run:
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"run folder {root.name!r} does not exist; valid: a folder written by `python -m bench run`")
    return Run(name=root.resolve().name, root=root, table=read_table(root), env=read_env(root),
               samples=sorted((root / "samples").glob("*.png")), planned=read_planned(root), tune=read_tune(root))


def read_table(root: Path) -> pd.DataFrame:
    parquet, csv = root / "metrics.parquet", root / "metrics.csv"
    if parquet.exists():
        try:
            table = read_part(parquet)
        except ValueError as err:
            raise ValueError(f"{err}; run `python -m bench run --resume --out {root}` with its options to rebuild "
                             "it from the cell parts") from err
    elif csv.exists():
        table = pd.read_csv(csv, keep_default_na=False, na_values={"value": ["", "nan"]})
    else:
        raise ValueError(f"run folder {root.name!r} has no metrics.parquet or metrics.csv; "
                         "valid: a folder written by `python -m bench run`")
    # an axis a plugin adds may be missing: a run without the plugin
    missing = [c for c in columns() if c not in table.columns and not (c in AXES and AXES[c].added)]
    if missing:
        raise ValueError(f"metrics table of {root.name!r} lacks column(s) {missing}; valid: every column of "
                         "bench.schema.columns(), as `python -m bench run` writes them")
    unknown = sorted(set(table.columns) - set(columns()) - set(DERIVED))
    if unknown:  # an axis a plugin added: without it its levels would be pooled into every effect
        raise ValueError(f"metrics table of {root.name!r} has column(s) {unknown} that no declared axis names; "
                         "valid: pass --import with the module that added them (the run's plugins: run.json)")
    return normalise(table)


def normalise(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    for name, axis in AXES.items():  # a run without the plugin that adds an axis built every variant at its default
        if axis.added and name not in table.columns:
            table[name] = axis.cell(axis.default)
    typed = dtypes()
    for column, dtype in typed.items():  # as written, or as CSV read them back
        if dtype == "bool":
            table[column] = table[column].map(_as_bool)
        else:
            table[column] = pd.to_numeric(table[column], errors="coerce").astype(dtype)
    table["replica"] = table["replica"].fillna(0)  # unrecorded: the model itself, not a second instance
    # Text by the schema, not by the dtype it was read with: pandas 3 reads text as ``str``, not ``object``, and
    # keeps a missing value as NaN in it; missing text is empty text.
    for column in table.columns.difference(list(typed)):
        table[column] = table[column].fillna("").astype(str)
    return add_setting(table)


def add_setting(table: pd.DataFrame) -> pd.DataFrame:
    """``execution``: the non-default execution options of a row (dtype, memory format, compilation, CUDA graphs),
    empty for fp32 eager contiguous; ``setting``: its device plus those, e.g. ``cpu`` or ``cuda · bfloat16 · compiled``,
    led by the base config when the run measured costs at more than one (``digits8 · cpu``).
    Cells of different settings are never averaged together or paired with each other."""
    table = table.copy()
    # text even when the table has no rows (a list of none would be a float column, which text cannot be added to)
    table["execution"] = pd.Series([_execution(*options) for options in zip(
        table["dtype"], table["memory_format"], table["compile"], table["cuda_graphs"])], index=table.index, dtype=str)
    device = table["device"].astype(str)
    setting = device.where(table["execution"] == "", device + " · " + table["execution"])
    costs = table["kind"].isin(COST_KINDS)
    if table.loc[costs, "base_config"].nunique() > 1:
        setting = table["base_config"].astype(str) + " · " + setting
    table["setting"] = setting
    return table


def _execution(dtype: str, memory_format: str, compiled: object, cuda_graphs: object) -> str:
    # at the default execution, or unrecorded, an option goes unnamed
    parts = (dtype if dtype not in ("", DEFAULT_EXECUTION["dtype"]) else "",
             memory_format if memory_format not in ("", DEFAULT_EXECUTION["memory_format"]) else "",
             "compiled" if _as_bool(compiled) else "", "CUDA graphs" if _as_bool(cuda_graphs) else "")
    return " · ".join(part for part in parts if part)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "on")
    return bool(value) if not pd.isna(value) else False


def read_env(root: Path) -> dict[str, Any]:
    path = root / "env.json"
    if not path.exists():
        return {}
    return read_json(path, "restore it from a copy, or delete it (the report then omits the environment)")


def read_planned(root: Path) -> list[dict[str, str]] | None:
    """The cells run.json says the run planned, or None when it does not say (a run of an older version)."""
    path = root / "run.json"
    if not path.exists():
        return None
    planned = read_json(path, "restore it from a copy").get("planned_cells")
    return planned if isinstance(planned, list) else None


def read_tune(root: Path) -> dict[str, list[Any]] | None:
    """The tuning grid run.json says the run asked for ({} when it tuned nothing), or None without run.json."""
    path = root / "run.json"
    if not path.exists():
        return None
    tune = read_json(path, "restore it from a copy").get("config", {}).get("tune", {})
    return tune if isinstance(tune, dict) else None
