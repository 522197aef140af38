"""The tidy table -> the frames effects, figures and tables are drawn from: cost cells' medians, per-seed
quality values, matched pairs of cost cells, per-variant quality with intervals."""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from bench.report.compute.headline import HEADLINE_QUALITY
from bench.schema import (ALONG_TRAINING, COST_KINDS, FINAL_STEP, MACHINE_PHASES, PARAMS, RECIPE_COLUMNS, TRAIN,
                          Kind, references)
from bench.statistics.stats import summarise
from variants import AXES  # every declared axis, plugins' included once imported

# Besides the other axes, what must be equal for two cells to form a pair.
# ``setting`` (device plus execution options, see load.add_setting) keeps dtypes, memory formats and compiled
# runs apart; ``peer`` keeps reference models apart from our U-Net at the same axis values.
COST_CONTEXT = ("device", "setting", "execution", "dtype", "batch_size", "base_config", "threads", "peer")
QUALITY_CONTEXT = ("device", "setting", "dtype", "dataset", "base_config", "seed")
MEASURE = ("phase", "block", "metric", "unit", "method")
# A ladder's rung (design "ladder"; empty text and NA elsewhere): its cells are compared with the rung before.
RUNG = ("rung", "rung_index")
# Read at every checkpoint, for effects along training: the verdict's quality measurements.
ALONG_TRAINING_METRICS = tuple(metric for _, _, metric in HEADLINE_QUALITY)


def add_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """A ``label`` per measurement: ``phase/metric``, plus unit and method where that alone is ambiguous."""
    frame = frame.copy()
    base = frame["phase"].astype(str) + "/" + frame["metric"].astype(str)
    if "block" in frame.columns:
        base = base.where(frame["block"].isin(["total", ""]), base + " · " + frame["block"].astype(str))
    variants = pd.DataFrame({"base": base, "unit": frame["unit"], "method": frame["method"]}).drop_duplicates()
    ambiguous = set(variants["base"][variants["base"].duplicated()])
    detail = " [" + frame["unit"].astype(str) + ", " + frame["method"].astype(str) + "]"
    frame["label"] = base.where(~base.isin(ambiguous), base + detail)
    return frame


def cost_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Successful cost observations of the variants (per-block rows included), one per repeat or round; the
    A/A control's second instance is left out (it is the baseline again)."""
    rows = table[table["kind"].isin(COST_KINDS) & (table["status"] == "ok") & ~table["phase"].isin(MACHINE_PHASES)
                 & (table["replica"] == 0)]
    return rows[rows["value"].notna()]


def cost_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """Median, quartiles and repeat count per cell and measurement, from ``cost_rows``."""
    keys = ["kind", "variant", *AXES, *RUNG, *COST_CONTEXT, *MEASURE]
    grouped = rows.groupby(keys, dropna=False, sort=True)["value"]
    return pd.DataFrame({"value": grouped.median(), "q1": grouped.quantile(0.25), "q3": grouped.quantile(0.75),
                         "repeats": grouped.count()}).reset_index()


def cost_medians(cells: pd.DataFrame) -> pd.DataFrame:
    """Labelled block totals of ``cost_cells``, for tables and comparisons."""
    return add_labels(cells[cells["block"] == "total"]) if not cells.empty else cells


def by_variant(cells: pd.DataFrame, values: Iterable[Any]) -> pd.Series:
    """One column of a per-variant cost table: ``values`` (one per cell of ``cells``, a single measurement's
    medians from ``cost_medians``) indexed by variant and setting."""
    return pd.Series(list(values), index=pd.MultiIndex.from_frame(cells[["variant", "setting"]]))


def scored_values(table: pd.DataFrame, kind: Kind = Kind.QUALITY) -> pd.DataFrame:
    """One value per variant, recipe, seed and metric: sample metrics as recorded (the last checkpoint's as phase
    "sample"), training curves at their last step (``FINAL_STEP``), and the headline quality metrics at the earlier
    checkpoints (``ALONG_TRAINING``, at their ``step``)."""
    rows = table[(table["kind"] == kind) & (table["status"] == "ok") & table["value"].notna()]
    along = rows[(rows["phase"] == ALONG_TRAINING) & rows["metric"].isin(ALONG_TRAINING_METRICS)]
    curves = rows[rows["phase"] == TRAIN]
    if not curves.empty:
        order = curves.sort_values("step", na_position="first")
        runs = ["variant", *RECIPE_COLUMNS, "quality_preset", "base_config", "seed", "metric"]
        last = order.groupby(runs, dropna=False, sort=False).tail(1)
        earlier = curves.drop(last.index)
        earlier = earlier[earlier["step"].isin(set(along["step"].dropna())) & earlier["metric"].isin(
            ALONG_TRAINING_METRICS)]
        curves = pd.concat([last.assign(phase=FINAL_STEP), earlier.assign(phase=ALONG_TRAINING)])
    rows = pd.concat([rows[~rows["phase"].isin((TRAIN, ALONG_TRAINING))], along, curves])
    keys = ["variant", *AXES, *RUNG, *RECIPE_COLUMNS, "quality_preset", *QUALITY_CONTEXT, *MEASURE, "step", "n"]
    values = rows.groupby(keys, dropna=False, sort=True)["value"].mean().reset_index()
    return values.rename(columns={"n": "sample_size"})  # "n" is reserved for the count behind an interval


def per_variant_quality(values: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% t-interval over seeds per variant and metric, from ``scored_values``."""
    return summarise(values, ["variant", "base_config", "dataset", *MEASURE, "sample_size"], "value")


def levels(frame: pd.DataFrame, axis: str) -> list:
    return sorted(frame[axis].dropna().unique().tolist(), key=str)


def reference_level(frame: pd.DataFrame, axis: str):
    present = levels(frame, axis)
    reference = references()[axis]
    return reference if reference in present else present[0]


def paired_differences(frame: pd.DataFrame, axis: str, match_on: tuple[str, ...]) -> pd.DataFrame:
    """One row per matched pair: the reference level of ``axis`` against each other level, all of
    ``match_on`` (and every other axis) equal. ``difference`` is alt - ref in the metric's unit,
    ``percent`` is 100 * difference / ref (NaN where ref is 0)."""
    present = levels(frame, axis)
    if len(present) < 2:
        return pd.DataFrame()
    ref_level = reference_level(frame, axis)
    keys = [c for c in (*AXES, *match_on) if c != axis]
    per_level = frame.groupby([*keys, axis], dropna=False)["value"].mean().reset_index()
    ref = per_level[per_level[axis] == ref_level].drop(columns=axis)
    pairs = []
    for level in present:
        if level == ref_level:
            continue
        alt = per_level[per_level[axis] == level].drop(columns=axis)
        merged = ref.merge(alt, on=keys, suffixes=("_ref", "_alt"))
        merged.insert(0, "comparison", f"{ref_level} → {level}")
        pairs.append(merged)
    out = pd.concat(pairs, ignore_index=True)
    out.insert(0, "axis", axis)
    out["difference"] = out["value_alt"] - out["value_ref"]
    out["percent"] = 100 * out["difference"] / out["value_ref"].where(out["value_ref"] != 0)
    return out


def rung_pairs(frame: pd.DataFrame, match_on: tuple[str, ...]) -> pd.DataFrame:
    """A ladder's steps, as ``paired_differences`` writes an axis's: one row per matched pair of rung k and rung
    k - 1 (all of ``match_on`` equal, whatever the axes), ``axis`` the rung's name and ``comparison``
    ``previous → this``."""
    frame = frame[frame["rung"] != ""]
    per_rung = frame.groupby([*match_on, *RUNG], dropna=False)["value"].mean().reset_index()
    order = rung_order(frame)
    pairs = []
    for (index, name), (_, previous) in zip(order[1:], order[:-1]):
        ref = per_rung[per_rung["rung_index"] == index - 1].drop(columns=list(RUNG))
        alt = per_rung[per_rung["rung_index"] == index].drop(columns=list(RUNG))
        merged = ref.merge(alt, on=list(match_on), suffixes=("_ref", "_alt"))
        merged.insert(0, "comparison", f"{previous} → {name}")
        merged.insert(0, "axis", name)
        pairs.append(merged)
    if not pairs:
        return pd.DataFrame()
    out = pd.concat(pairs, ignore_index=True)
    out["difference"] = out["value_alt"] - out["value_ref"]
    out["percent"] = 100 * out["difference"] / out["value_ref"].where(out["value_ref"] != 0)
    return out


def rung_order(frame: pd.DataFrame) -> list[tuple[int, str]]:
    """(index, name) of every rung in ``frame``, first rung first (empty outside a ladder)."""
    rungs = frame.loc[frame["rung"] != "", ["rung_index", "rung"]].drop_duplicates()
    return [(int(i), str(n)) for i, n in rungs.sort_values("rung_index").itertuples(index=False)]


def _steps_and_axes(frame: pd.DataFrame, match_on: tuple[str, ...]) -> pd.DataFrame:
    """Per axis, pairs of the cells outside a ladder; per rung, pairs of a ladder's consecutive rungs."""
    ladder = frame["rung"] != ""
    parts = [paired_differences(frame[~ladder], axis, match_on) for axis in AXES] if (~ladder).any() else []
    return pd.concat([*parts, rung_pairs(frame[ladder], match_on)], ignore_index=True)


def cost_pairs(cells: pd.DataFrame) -> pd.DataFrame:
    """Per axis (or per rung of a ladder), % change of every cost cell's measurement (block totals: counts and
    memory) over matched pairs, per setting, from ``cost_cells``. Time is not paired cell by cell: it comes from
    the timing rounds' model (bench/statistics/rounds_model.py). Peers have no axes to switch: they are left out."""
    cells = cells[(cells["kind"] == Kind.COST) & (cells["block"] == "total") & (cells["peer"] == "")]
    return _steps_and_axes(cells.drop(columns="kind"), (*COST_CONTEXT, *MEASURE))


def rung_changes(table: pd.DataFrame) -> dict[str, str]:
    """What each rung of a ladder sets on top of the rung before, as ``--axis`` writes it (``layers=mp, ...``),
    read from the cells' axis columns; the first rung: its levels off their reference."""
    rows = table[(table["rung"] != "") & (table["kind"].isin((Kind.COST, Kind.QUALITY)))]
    if rows.empty:
        return {}
    first = rows[rows["base_config"] == rows["base_config"].iloc[0]]
    levels = first.drop_duplicates("rung_index").set_index("rung_index")
    reference = pd.Series(references())
    changes = {}
    for index, name in rung_order(first):
        now = levels.loc[index, list(AXES)]
        before = levels.loc[index - 1, list(AXES)] if index > 0 else reference
        changed = [f"{axis}={AXES[axis].text(now[axis])}" for axis in AXES if str(now[axis]) != str(before[axis])]
        changes[name] = ", ".join(changed) or "the base"
    return changes


def parameter_count(table: pd.DataFrame, base: str) -> float:
    """The largest parameter count of our models at ``base`` (0 if none was counted)."""
    rows = table[(table["base_config"] == base) & (table["metric"] == PARAMS) & (table["peer"] == "")]
    return float(rows["value"].max()) if len(rows) else 0.0


FAILED_COLUMNS = ["kind", "variant", "device", "seed", "phase", "metric", "status", "message"]


def failed_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Every distinct row whose status is not ok, in ``FAILED_COLUMNS``."""
    failed = table[table["status"] != "ok"]
    return failed[FAILED_COLUMNS].drop_duplicates().reset_index(drop=True)


def env_frame(env: dict[str, Any], prefix: str = "") -> pd.DataFrame:
    """env.json as ``field``/``value`` rows, nested keys dotted."""
    rows = []
    for key, value in env.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += env_frame(value, f"{name}.").to_dict("records")
        else:
            rows.append({"field": name, "value": "" if value is None else str(value)})
    return pd.DataFrame(rows, columns=["field", "value"])
