"""Labels and one-line readings: how numbers from the table are put into words."""
from __future__ import annotations

import math

import pandas as pd

PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
# Units that read better with an SI prefix (a ratio or a percentage does not).
SCALABLE = {"bytes", "FLOP", "MAC", "count", "FLOP/s", "images/s"}


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


def scale_for(unit: str, values) -> tuple[float, str]:
    """A divisor and the prefixed unit that make the largest value read as 1-999."""
    top = pd.Series(values, dtype=float).abs().max()
    if unit in SCALABLE and not pd.isna(top):
        for factor, prefix in PREFIXES:
            if top >= factor:
                shown = {"count": " (count)", "bytes": "B"}.get(unit, unit)
                return factor, f"{prefix}{shown}"
    return 1.0, unit


def number(value: float, unit: str = "") -> str:
    if value is None or pd.isna(value):
        return "n/a"
    factor, shown = scale_for(unit, [value])
    text = f"{value / factor:.3g}"
    return f"{text} {shown}".strip() if shown else text


def interval(row: pd.Series, unit: str = "", signed: bool = False) -> str:
    """``mean [low, high]`` with the pair/seed count; says so when the interval cannot be computed."""
    digits = _digits_to_separate(row["low"], row["high"])
    spec = ("+" if signed else "") + ("#" if digits > 3 else "") + f".{digits}g"  # '#': keep -4.340's zero
    fmt = lambda v: format(v, spec)
    suffix = "%" if unit == "%" else (f" {unit}" if unit else "")
    n = int(row["n"])
    if n < 2 or math.isnan(row["low"]):
        return f"{fmt(row['mean'])}{suffix} (n={n}: no interval)"
    if row["low"] == row["high"]:
        return f"{fmt(row['mean'])}{suffix} (identical in all n={n})"
    return f"{fmt(row['mean'])}{suffix} [95% CI {fmt(row['low'])}, {fmt(row['high'])}] (n={n})"


def _digits_to_separate(low: float, high: float) -> int:
    """Significant digits (3 to 6) that show a narrow interval's ends apart: counted costs' % changes
    vary only in the fourth digit across pairs, and '[-4.34, -4.34]' would read as a zero-width interval."""
    for digits in range(3, 7):
        if math.isnan(low) or low == high or f"{low:.{digits}g}" != f"{high:.{digits}g}":
            return digits
    return 6


def effect(row: pd.Series, unit: str) -> str:
    """One effect in words, honest about resolution: an interval straddling zero is called unresolved."""
    text = f"{row['label']} {interval(row, unit, signed=True)}"
    if int(row["n"]) < 2:
        return text + ", not resolved: a single pair"
    if not row["resolved"] and row["low"] != row["high"]:
        return text + ", not resolved at this N (CI straddles zero)"
    return text


def effects_sentence(summary: pd.DataFrame, unit: str, top: int = 4) -> str:
    """The largest resolved effects first, then how many are unresolved (named, if few)."""
    if summary.empty:
        return "no matched pairs"
    summary = summary.assign(size=summary["mean"].abs()).sort_values("size", ascending=False)
    resolved = summary[summary["resolved"] | ((summary["low"] == summary["high"]) & (summary["n"] >= 2))]
    resolved = resolved[resolved["mean"] != 0]
    parts = [effect(row, unit) for _, row in resolved.head(top).iterrows()]
    if len(resolved) > top:
        parts.append(f"{len(resolved) - top} more resolved")
    unchanged = summary[(summary["mean"] == 0) & (summary["low"] == summary["high"])]
    if len(unchanged):
        parts.append("unchanged: " + ", ".join(unchanged["label"].head(top)) + ("..." if len(unchanged) > top else ""))
    unresolved = summary.drop(resolved.index).drop(unchanged.index)
    if len(unresolved):
        names = ", ".join(unresolved["label"].head(top)) + ("..." if len(unresolved) > top else "")
        parts.append(f"not resolved at this N: {names}")
    return "; ".join(parts)
