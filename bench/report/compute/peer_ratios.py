"""Our U-Net against each peer at the spec the peer approximates: throughput ratios, per round and of medians.

A peer is matched with our U-Net at the same axis values, setting (device and execution options), batch size,
base configuration and threads. Per round: both are timed in every round of the same timing cell, in random
order, so machine drift cancels from each round's ratio; median over rounds with a 95% bootstrap interval.
Medians: the ratio of the two models' medians over rounds, with a 95% bootstrap interval resampling each one's
rounds separately (it ignores the pairing by round, so it is wider).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.report.compute.headline import TIMED_PHASE_NAMES
from bench.schema import IMAGES_PER_S, MODEL, PARAMS, SECONDS_PER_ITER, Kind
from bench.statistics.stats import bootstrap_interval
from variants import AXES

SETTING = ["setting", "batch_size", "base_config", "threads"]


def peer_rounds(table: pd.DataFrame) -> pd.DataFrame:
    """Per peer, phase and round: our throughput over the peer's (peer seconds / ours), ours being our U-Net at
    the spec the peer approximates, timed in the same round. Above 1, ours is faster."""
    rows = table[(table["kind"] == Kind.TIMING) & (table["status"] == "ok") & (table["metric"] == SECONDS_PER_ITER)
                 & (table["replica"] == 0)]
    peers = rows[rows["peer"] != ""]
    if peers.empty:
        return pd.DataFrame()
    keys = ["cell_id", "repeat", "phase", "spec_hash"]
    ours = rows[rows["peer"] == ""][keys + ["value", "variant"]].rename(columns={"value": "ours",
                                                                                "variant": "our_variant"})
    merged = peers.merge(ours, on=keys)
    return merged.assign(ratio=merged["value"] / merged["ours"])


def ratio_of_medians(ours: np.ndarray, peer: np.ndarray) -> tuple[float, float, float]:
    """median(ours) / median(peer) and its 95% bootstrap interval (NaN bounds with fewer than 2 repeats)."""
    ratio = float(np.median(ours) / np.median(peer))
    low, high = bootstrap_interval(
        (ours, peer), lambda a, b, axis=-1: np.median(a, axis=axis) / np.median(b, axis=axis))
    return ratio, low, high


def median_with_interval(values: np.ndarray) -> tuple[float, float, float]:
    """The median and its 95% bootstrap interval (NaN bounds with fewer than 2 values)."""
    return (float(np.median(values)), *bootstrap_interval((values,), np.median))


def peer_comparisons(cost_rows: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """One row per peer and matching cell of our U-Net: parameters, median images/s of both, and the throughput
    ratios (``<phase>_interleaved``: per round; ``<phase>_cells``: of medians), each (ratio, low, high)."""
    rows = cost_rows[cost_rows["block"] == "total"]
    peers, ours = rows[rows["peer"] != ""], rows[rows["peer"] == ""]
    comparisons = []
    match_on = [*AXES, *SETTING]  # here, not at import: a plugin may add an axis
    for key, peer_rows in peers.groupby([*match_on, "peer"], dropna=False, sort=True):
        match = dict(zip([*match_on, "peer"], key))
        mine = ours.loc[(ours[match_on] == pd.Series({k: match[k] for k in match_on})).all(axis=1)]
        if not mine.empty:
            comparisons.append(_compare(match, mine, peer_rows, rounds))
    return pd.DataFrame(comparisons)


def _values(rows: pd.DataFrame, phase: str, metric: str) -> np.ndarray:
    return rows.loc[(rows["phase"] == phase) & (rows["metric"] == metric), "value"].to_numpy(dtype=float)


def _compare(match: dict, mine: pd.DataFrame, peer: pd.DataFrame, rounds: pd.DataFrame) -> dict:
    params_ours, params_peer = _values(mine, MODEL, PARAMS), _values(peer, MODEL, PARAMS)
    out = {"setting": match["setting"], "peer": match["peer"], "variant": mine["variant"].iloc[0],
           "batch_size": match["batch_size"], "base_config": match["base_config"],
           "params_ours": params_ours[0] if len(params_ours) else np.nan,
           "params_peer": params_peer[0] if len(params_peer) else np.nan}
    for phase, _ in TIMED_PHASE_NAMES:
        a, b = _values(mine, phase, IMAGES_PER_S), _values(peer, phase, IMAGES_PER_S)
        if len(a) and len(b):
            out[f"{phase}_ours"], out[f"{phase}_peer"] = float(np.median(a)), float(np.median(b))
            out[f"{phase}_cells"] = ratio_of_medians(a, b)
        ratios = rounds.loc[(rounds["peer"] == match["peer"]) & (rounds["setting"] == match["setting"])
                            & (rounds["phase"] == phase), "ratio"].to_numpy(dtype=float) if len(rounds) else []
        if len(ratios):
            out[f"{phase}_interleaved"] = median_with_interval(ratios)
    return out
