"""Section: our U-Net against reference implementations at the closest configuration ("peers").

A peer is matched with our U-Net at the spec it approximates: the same axis values, setting (device and
execution options), batch size, base configuration and threads. Speed is our throughput over the peer's
(above 1: ours is faster), two ways. Per round: both are timed in every round of the same timing cell, in
random order, so machine drift cancels from each round's ratio; median over rounds with a 95% bootstrap
interval. Medians: the ratio of the two models' medians over rounds, with a 95% bootstrap interval
resampling each one's rounds separately (it ignores the pairing by round, so it is wider).
Intervals: scipy.stats.bootstrap, percentile method.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.report.render.document import Section, Table, save_figure
from bench.report.render.plots import peer_bars, speedup_plot
from bench.report.compute.stats import AXES, cost_rows
from bench.report.compute.rounds_model import peer_rounds

SETTING = ["setting", "batch_size", "base_config", "threads"]
SPEED = (("train_step", "training step"), ("inference", "inference"))


def peers_section(table: pd.DataFrame, figures_dir: Path) -> Section:
    section = Section("Against the peers", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    rows = cost_rows(table)
    rows = rows[rows["block"] == "total"]
    peers = rows[rows["peer"] != ""]
    if peers.empty:
        section.note = ("No peer was measured in this run: `python -m bench run --peers smalldiffusion,diffusers,"
                        "lucidrains` measures them beside our variants.")
        return section
    ours = rows[rows["peer"] == ""]
    comparisons = []
    match_on = [*AXES, *SETTING]  # here, not at import: a plugin may add an axis
    for key, peer_rows in peers.groupby([*match_on, "peer"], dropna=False, sort=True):
        match = dict(zip([*match_on, "peer"], key))
        mine = ours.loc[(ours[match_on] == pd.Series({k: match[k] for k in match_on})).all(axis=1)]
        if mine.empty:
            continue
        comparisons.append(_compare(match, mine, peer_rows, peer_rounds(table)))
    if not comparisons:
        section.note = "Peers were measured, but none has a matching cell of our U-Net (same spec and setting)."
        return section
    result = pd.DataFrame(comparisons)
    rounds = peer_rounds(table)
    if not rounds.empty:
        title = "Rounds: our throughput over each peer's, timed in the same rounds"
        rounds = rounds.assign(phase=rounds["phase"].map(dict(SPEED)), value=rounds["ratio"])
        section.items.append(save_figure(speedup_plot(rounds, title), figures_dir, "peers_interleaved", title,
                                         _reading(result)))
    title = "Throughput: our U-Net against the peers at the same configuration"
    section.items.append(save_figure(peer_bars(_throughput(rows, result), title), figures_dir, "peers", title,
                                     _cells_reading(result)))
    section.items.append(Table("Our U-Net against each peer (throughput ratio: ours / peer, above 1 = ours faster)",
                               _table(result)))
    return section


def _values(rows: pd.DataFrame, phase: str, metric: str) -> np.ndarray:
    return rows.loc[(rows["phase"] == phase) & (rows["metric"] == metric), "value"].to_numpy(dtype=float)


def ratio_of_medians(ours: np.ndarray, peer: np.ndarray) -> tuple[float, float, float]:
    """median(ours) / median(peer) and its 95% bootstrap interval (NaN bounds with fewer than 2 repeats)."""
    ratio = float(np.median(ours) / np.median(peer))
    if len(ours) < 2 or len(peer) < 2:
        return ratio, float("nan"), float("nan")
    interval = stats.bootstrap((ours, peer), lambda a, b, axis=-1: np.median(a, axis=axis) / np.median(b, axis=axis),
                               n_resamples=2000, method="percentile", random_state=0, vectorized=True).confidence_interval
    return ratio, float(interval.low), float(interval.high)


def _compare(match: dict, mine: pd.DataFrame, peer: pd.DataFrame, rounds: pd.DataFrame) -> dict:
    params_ours, params_peer = _values(mine, "model", "params"), _values(peer, "model", "params")
    out = {"setting": match["setting"], "peer": match["peer"], "variant": mine["variant"].iloc[0],
           "batch_size": match["batch_size"], "base_config": match["base_config"],
           "params_ours": params_ours[0] if len(params_ours) else np.nan,
           "params_peer": params_peer[0] if len(params_peer) else np.nan}
    for phase, _ in SPEED:
        a, b = _values(mine, phase, "images_per_s"), _values(peer, phase, "images_per_s")
        if len(a) and len(b):
            out[f"{phase}_ours"], out[f"{phase}_peer"] = float(np.median(a)), float(np.median(b))
            out[f"{phase}_cells"] = ratio_of_medians(a, b)
        ratios = rounds.loc[(rounds["peer"] == match["peer"]) & (rounds["setting"] == match["setting"])
                            & (rounds["phase"] == phase), "ratio"].to_numpy(dtype=float) if len(rounds) else []
        if len(ratios):
            out[f"{phase}_interleaved"] = median_with_interval(ratios)
    return out


def median_with_interval(values: np.ndarray) -> tuple[float, float, float]:
    """The median and its 95% bootstrap interval (NaN bounds with fewer than 2 values)."""
    median = float(np.median(values))
    if len(values) < 2:
        return median, float("nan"), float("nan")
    interval = stats.bootstrap((values,), np.median, n_resamples=2000, method="percentile",
                               random_state=0).confidence_interval
    return median, float(interval.low), float(interval.high)


def _throughput(rows: pd.DataFrame, result: pd.DataFrame) -> pd.DataFrame:
    """Repeat rows of images/s of the compared cells, ours and the peers', labelled by model and phase."""
    compared = {*zip(result["setting"], result["variant"]), *zip(result["setting"], "peer:" + result["peer"])}
    speed = rows[(rows["metric"] == "images_per_s") & rows["phase"].isin([p for p, _ in SPEED])]
    speed = speed[[pair in compared for pair in zip(speed["setting"], speed["variant"])]]
    model = speed["variant"].where(speed["peer"] != "", "ours: " + speed["variant"])
    return speed.assign(model=model, phase=speed["phase"].map(dict(SPEED)))


def _ratio_text(row: pd.Series, key: str) -> str:
    value = row.get(key)
    if not isinstance(value, tuple):
        return "n/a"
    ratio, low, high = value
    return f"{ratio:.3f}x" if pd.isna(low) else f"{ratio:.3f}x [{low:.3f}, {high:.3f}]"


def _reading(result: pd.DataFrame) -> str:
    parts = []
    for _, row in result.iterrows():
        speeds = []
        for phase, label in SPEED:
            how = "interleaved" if isinstance(row.get(f"{phase}_interleaved"), tuple) else "cells"
            speeds.append(f"{label} {_ratio_text(row, f'{phase}_{how}')} ({how})")
        parts.append(f"ours / {row['peer']} on {row['setting']}: {', '.join(speeds)}")
    return "Throughput of ours over the peer's, median of per-round ratios, with 95% bootstrap CIs: " + "; ".join(parts)


def _cells_reading(result: pd.DataFrame) -> str:
    parts = [f"ours / {row['peer']} on {row['setting']}: "
             + ", ".join(f"{label} {_ratio_text(row, f'{phase}_cells')}" for phase, label in SPEED)
             for _, row in result.iterrows()]
    return ("Ratio of the two models' medians over rounds (the pairing by round ignored, so its interval is "
            "wider than the per-round one above): " + "; ".join(parts))


def _table(result: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, row in result.iterrows():
        line = {"setting": row["setting"], "peer": row["peer"], "our variant": row["variant"],
                "base, batch": f"{row['base_config']}, {row['batch_size']}",
                "params: peer (ours)": f"{row['params_peer']:,.0f} ({row['params_ours']:,.0f})"}
        for phase, label in SPEED:
            if isinstance(row.get(f"{phase}_cells"), tuple):
                line[f"{label}: ours / peer images/s"] = f"{row[f'{phase}_ours']:.4g} / {row[f'{phase}_peer']:.4g}"
            line[f"{label}: ratio, per round [95% CI]"] = _ratio_text(row, f"{phase}_interleaved")
            line[f"{label}: ratio of medians [95% CI]"] = _ratio_text(row, f"{phase}_cells")
        rows.append(line)
    return pd.DataFrame(rows)
