"""Whether a timing cell's rounds ran on a busy machine, from what it recorded beside its timings.

On a CPU, a block that has the cores to itself keeps all its threads busy: its CPU time is about ``threads`` times
its wall time. A neighbour that takes cores lowers that ratio, and raises the load average above the core count.
A setting's time effects are disturbed when, over its rounds, the median CPU/wall ratio falls below
``MIN_BUSY_SHARE`` of the threads that could run, or the median 1-minute load exceeds the cores by
``MAX_EXCESS_LOAD``. Its rounds' model still removes drift, but a neighbour that comes and goes within a round
does not cancel, so the report does not interpret such effects. CUDA settings are not judged by this.
"""
from __future__ import annotations

import pandas as pd

MIN_BUSY_SHARE = 0.8
MAX_EXCESS_LOAD = 0.5
from bench.schema import CPU_SECONDS_PER_ITER, SECONDS_PER_ITER, Kind


def disturbance(table: pd.DataFrame, cores: int | None) -> pd.DataFrame:
    """Per base config and setting of the CPU timing cells: rounds, median load, CPU/wall ratio, threads, and
    ``disturbed`` with ``why`` (e.g. ``load 3.9 on 2 cores``)."""
    timing = table[(table["kind"] == Kind.TIMING) & (table["status"] == "ok") & (table["device"] == "cpu")]
    if timing.empty:
        return pd.DataFrame(columns=["base_config", "setting", "rounds", "load", "cpu_per_wall", "threads",
                                     "disturbed", "why"])
    keys = ["cell_id", "repeat", "position", "phase", "variant", "replica"]
    wall = timing[timing["metric"] == SECONDS_PER_ITER].set_index(keys)["value"]
    cpu = timing[timing["metric"] == CPU_SECONDS_PER_ITER].set_index(keys)["value"]
    blocks = timing[timing["metric"] == SECONDS_PER_ITER].set_index(keys)[["base_config", "setting", "threads"]]
    blocks = blocks.assign(ratio=(cpu / wall).reindex(blocks.index)).reset_index()
    load = timing[timing["metric"] == "loadavg_1min"]
    out = []
    for (base, setting), group in blocks.groupby(["base_config", "setting"], sort=True):
        threads = int(group["threads"].max())
        loads = load[load["cell_id"].isin(group["cell_id"])]["value"]
        rounds = group[["cell_id", "repeat"]].drop_duplicates().shape[0]
        row = {"base_config": base, "setting": setting, "rounds": rounds,
               "load": loads.median() if len(loads) else float("nan"), "cpu_per_wall": group["ratio"].median(),
               "threads": threads}
        reasons = []
        usable = min(threads, cores) if cores else threads
        if row["cpu_per_wall"] < MIN_BUSY_SHARE * usable:
            reasons.append(f"CPU/wall {row['cpu_per_wall']:.2f} of {usable} threads")
        if cores and pd.notna(row["load"]) and row["load"] > cores + MAX_EXCESS_LOAD:
            reasons.append(f"load {row['load']:.1f} on {cores} cores")
        out.append(row | {"disturbed": bool(reasons), "why": ", ".join(reasons)})
    return pd.DataFrame(out)
