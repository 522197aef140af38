"""Section: our U-Net against reference implementations at the closest configuration ("peers")."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.compute.headline import TIMED_PHASE_NAMES
from bench.report.render.document import Section, Table, save_figure
from bench.report.render.plots import peer_bars, speedup_plot
from bench.report.render.wording import bounds
from bench.schema import IMAGES_PER_S

NOTE = ("A peer is matched with our U-Net at the spec it approximates: the same axis values, setting (device and "
        "execution options), batch size, base configuration and threads. Speed is our throughput over the peer's "
        "(above 1: ours is faster), two ways. Per round: both are timed in every round of the same timing cell, in "
        "random order, so machine drift cancels from each round's ratio; median over rounds with a 95% bootstrap "
        "interval. Medians: the ratio of the two models' medians over rounds, with a 95% bootstrap interval "
        "resampling each one's rounds separately (it ignores the pairing by round, so it is wider). "
        "Intervals: scipy.stats.bootstrap, percentile method.")


def peers_section(derived: Derived, figures_dir: Path) -> Section | None:
    section = Section("Against the peers", NOTE)
    rows = derived.cost_rows
    rows = rows[rows["block"] == "total"]
    if (rows["peer"] == "").all():
        return None  # no peer measured (`--peers smalldiffusion,diffusers,lucidrains` measures them)
    result = derived.peer_comparisons
    if result.empty:
        section.note = "Peers were measured, but none has a matching cell of our U-Net (same spec and setting)."
        return section
    rounds = derived.peer_rounds
    if not rounds.empty:
        title = "Rounds: our throughput over each peer's, timed in the same rounds"
        section.items.append(save_figure(speedup_plot(rounds, result, title), figures_dir, "peers_interleaved",
                                         title, _reading(result)))
    title = "Throughput: our U-Net against the peers at the same configuration"
    section.items.append(save_figure(peer_bars(_throughput(rows, result), title), figures_dir, "peers", title,
                                     _cells_reading(result)))
    section.items.append(Table("Our U-Net against each peer (throughput ratio: ours / peer, above 1 = ours faster)",
                               _table(result)))
    return section


def _throughput(rows: pd.DataFrame, result: pd.DataFrame) -> pd.DataFrame:
    """Repeat rows of images/s of the compared cells, ours and the peers', labelled by model and phase."""
    compared = {*zip(result["setting"], result["variant"]), *zip(result["setting"], "peer:" + result["peer"])}
    speed = rows[(rows["metric"] == IMAGES_PER_S) & rows["phase"].isin([p for p, _ in TIMED_PHASE_NAMES])]
    speed = speed[[pair in compared for pair in zip(speed["setting"], speed["variant"])]]
    model = speed["variant"].where(speed["peer"] != "", "ours: " + speed["variant"])
    return speed.assign(model=model, phase=speed["phase"].map(dict(TIMED_PHASE_NAMES)))


def _ratio_text(row: pd.Series, key: str) -> str:
    value = row.get(key)
    if not isinstance(value, tuple):
        return "n/a"
    ratio, low, high = value
    return f"{ratio:.3f}x" if pd.isna(low) else f"{ratio:.3f}x {bounds(low, high, '.3f')}"


def _reading(result: pd.DataFrame) -> str:
    parts = []
    for _, row in result.iterrows():
        speeds = []
        for phase, label in TIMED_PHASE_NAMES:
            how = "interleaved" if isinstance(row.get(f"{phase}_interleaved"), tuple) else "cells"
            speeds.append(f"{label} {_ratio_text(row, f'{phase}_{how}')} ({how})")
        parts.append(f"ours / {row['peer']} on {row['setting']}: {', '.join(speeds)}")
    return "Throughput of ours over the peer's, median of per-round ratios, with 95% bootstrap CIs: " + "; ".join(parts)


def _cells_reading(result: pd.DataFrame) -> str:
    parts = [f"ours / {row['peer']} on {row['setting']}: "
             + ", ".join(f"{label} {_ratio_text(row, f'{phase}_cells')}" for phase, label in TIMED_PHASE_NAMES)
             for _, row in result.iterrows()]
    return ("Ratio of the two models' medians over rounds (the pairing by round ignored, so its interval is "
            "wider than the per-round one above): " + "; ".join(parts))


def _table(result: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, row in result.iterrows():
        line = {"setting": row["setting"], "peer": row["peer"], "our variant": row["variant"],
                "base, batch": f"{row['base_config']}, {row['batch_size']}",
                "params: peer (ours)": f"{row['params_peer']:,.0f} ({row['params_ours']:,.0f})"}
        for phase, label in TIMED_PHASE_NAMES:
            if isinstance(row.get(f"{phase}_cells"), tuple):
                line[f"{label}: ours / peer images/s"] = f"{row[f'{phase}_ours']:.4g} / {row[f'{phase}_peer']:.4g}"
            line[f"{label}: ratio, per round [95% CI]"] = _ratio_text(row, f"{phase}_interleaved")
            line[f"{label}: ratio of medians [95% CI]"] = _ratio_text(row, f"{phase}_cells")
        rows.append(line)
    return pd.DataFrame(rows)
