"""Seaborn figures (matplotlib Agg backend); each function takes tidy frames and returns a figure."""
from __future__ import annotations

import textwrap
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .readings import scale_for  # noqa: E402
from .stats import pareto_front, t_interval  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)


def _facet_keys(frame: pd.DataFrame, row: str | None, col: str | None):
    keys = [k for k in (row, col) if k]
    for key, subset in frame.groupby(keys, sort=False) if keys else [((), frame)]:
        key = key if isinstance(key, tuple) else (key,)
        yield (key if len(key) > 1 else key[0]) if keys else None, subset


def effect_plot(pairs: pd.DataFrame, x: str, y: str, row: str | None, col: str | None, title: str,
                xlabel: str) -> plt.Figure:
    """Every matched pair as a dot, their mean and 95% t-interval as a black diamond with bars.

    The x range follows the pairs (and means), not the intervals: with two or three pairs a t-interval can be
    wider than every observation, and would squash them; bars that leave the axis end without a cap."""
    order = sorted(pairs[y].unique(), key=str)
    n_cols = pairs[col].nunique() if col else 1
    wrap = 4 if (col and not row and n_cols > 4) else None
    height = max(2.2, 0.38 * len(order) + 1.2)
    width = min(9.0, 15.0 / min(n_cols, wrap or n_cols))
    grid = sns.catplot(data=pairs, kind="strip", x=x, y=y, row=row, col=col, order=order, sharex=False,
                       height=height, aspect=width / height, alpha=0.6, jitter=0.15, color="tab:blue", col_wrap=wrap)
    for key, subset in _facet_keys(pairs, row, col):
        ax = grid.axes_dict[key] if key is not None else grid.ax
        ax.axvline(0, color="grey", lw=0.8)
        low_end, high_end = min(0.0, subset[x].min()), max(0.0, subset[x].max())
        margin = 0.15 * (high_end - low_end) or 1.0
        for label, values in subset.groupby(y)[x]:
            low, high = t_interval(values)
            position, mean = order.index(label), values.mean()
            xerr = None if np.isnan(low) else [[mean - low], [high - mean]]
            ax.errorbar(mean, position, xerr=xerr, fmt="D", color="black", ms=5, capsize=3, zorder=5)
        ax.set_xlim(low_end - margin, high_end + margin)
    grid.set_axis_labels(xlabel, "")
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.figure.suptitle(title, y=1.02)
    grid.tight_layout()
    return grid.figure


def cost_bars(rows: pd.DataFrame, hue: str, title: str) -> plt.Figure:
    """Median over repeats with the interquartile range as error bars; one panel per measurement."""
    rows = rows.copy()
    units = {}
    for label, subset in rows.groupby("label"):
        factor, unit = scale_for(subset["unit"].iloc[0], subset["value"])
        rows.loc[subset.index, "value"] = subset["value"] / factor
        units[label] = unit
    labels = sorted(units)
    n_variants = rows["variant"].nunique()
    grid = sns.catplot(data=rows, kind="bar", x="value", y="variant", hue=hue, col="label", col_order=labels,
                       col_wrap=min(3, len(labels)), sharex=False, estimator="median", errorbar=("pi", 50),
                       height=max(2.4, 0.3 * n_variants * max(1, rows[hue].nunique()) ** 0.5 + 1.0), aspect=1.3,
                       order=sorted(rows["variant"].unique()))
    for label in labels:
        grid.axes_dict[label].set_xlabel(f"median [{units[label]}]" if units[label] else "median")
        grid.axes_dict[label].set_title(textwrap.fill(label, 30))
    grid.set_ylabels("")
    grid.figure.suptitle(title, y=1.02)
    grid.tight_layout()
    return grid.figure


def peer_bars(speed: pd.DataFrame, title: str) -> plt.Figure:
    """Images/s of our U-Net and each peer: median over repeats with the interquartile range, per phase
    (columns) and setting (rows)."""
    grid = sns.catplot(data=speed, kind="bar", x="value", y="model", col="phase", row="setting", sharex=False,
                       estimator="median", errorbar=("pi", 50), order=sorted(speed["model"].unique()),
                       height=max(2.2, 0.45 * speed["model"].nunique() + 1.0), aspect=1.6, color="tab:blue")
    return _finish_phase_grid(grid, "images/s (median, IQR bars)", title)


def speedup_plot(rounds: pd.DataFrame, title: str) -> plt.Figure:
    """Interleaved rounds of our throughput over each peer's: every round a dot, the median a black diamond
    with its 95% bootstrap interval (seaborn), a line at 1 (parity), per phase (columns) and setting (rows)."""
    order = sorted(rounds["peer"].unique())
    grid = sns.catplot(data=rounds, kind="strip", x="value", y="peer", col="phase", row="setting", order=order,
                       sharex=False, alpha=0.5, color="tab:blue", jitter=0.15,
                       height=max(2.0, 0.45 * len(order) + 1.0), aspect=1.8)
    grid.map_dataframe(sns.pointplot, x="value", y="peer", order=order, estimator="median",
                       errorbar=("ci", 95), n_boot=2000, seed=0, color="black", markers="D", linestyles="none")
    for ax in grid.axes.flat:
        ax.axvline(1.0, color="grey", lw=0.8)
    return _finish_phase_grid(grid, "ours / peer throughput (above 1: ours faster)", title)


def _finish_phase_grid(grid: sns.FacetGrid, x_label: str, title: str) -> plt.Figure:
    """Labels of a phase (columns) by setting (rows) grid."""
    grid.set_axis_labels(x_label, "")
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.figure.suptitle(title, y=1.02)
    grid.tight_layout()
    return grid.figure


def tradeoff_scatter(points: pd.DataFrame, title: str) -> plt.Figure:
    """Memory change against time change per matched checkpointing pair."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    sns.scatterplot(data=points, x="time_percent", y="memory_percent", hue="memory metric", style="setting",
                    s=70, ax=ax)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("training-step time change [%] (checkpoint on vs off)")
    ax.set_ylabel("memory change [%] (checkpoint on vs off)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    return fig


def pareto_plot(points: pd.DataFrame, panels: list[tuple[str, str, str]], y_label: str,
                floor: pd.Series | None, title: str) -> plt.Figure:
    """Quality (mean and 95% CI over seeds) against a cost per variant; the front and the real-data floor."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    palette = dict(zip(sorted(points["variant"]), sns.color_palette("tab10", points["variant"].nunique())))
    for ax, (column, x_label, x_unit) in zip(axes[0], panels):
        data = points[points[column].notna()]
        factor, unit = scale_for(x_unit, data[column])
        data = data.assign(x=data[column] / factor)
        for _, row in data.iterrows():
            yerr = None if np.isnan(row["low"]) else [[row["mean"] - row["low"]], [row["high"] - row["mean"]]]
            ax.errorbar(row["x"], row["mean"], yerr=yerr, fmt="none", ecolor=palette[row["variant"]], capsize=3)
        sns.scatterplot(data=data, x="x", y="mean", hue="variant", palette=palette, s=70, ax=ax, legend=ax is axes[0][0])
        front = pareto_front(data, "x", "mean")
        ax.plot(front["x"], front["mean"], ls="--", color="black", lw=1, label="Pareto front")
        if floor is not None:
            ax.axhline(floor["mean"], color="tab:red", lw=1.2, label="real vs real floor")
            if not np.isnan(floor["low"]):
                ax.axhspan(floor["low"], floor["high"], color="tab:red", alpha=0.12)
        ax.set_xlabel(f"{x_label} [{unit}]")
        ax.set_ylabel(y_label)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    first_handles, first_labels = axes[0][0].get_legend_handles_labels()
    if axes[0][0].get_legend():
        axes[0][0].get_legend().remove()
    extra = [(h, lab) for h, lab in zip(handles, labels) if lab not in first_labels]
    fig.legend([*first_handles, *(h for h, _ in extra)], [*first_labels, *(lab for _, lab in extra)],
               loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(curves: pd.DataFrame, metric_label: str, has_wall_time: bool, title: str) -> plt.Figure:
    """Mean over seeds with a 95% t-interval band, against step and (if recorded) mean wall time."""
    panels = [("step", "training step")] + ([("wall_time", "training wall time [s] (mean over seeds)")]
                                              if has_wall_time else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (x, x_label) in zip(axes[0], panels):
        sns.lineplot(data=curves, x=x, y="value", hue="variant", errorbar=t_interval, ax=ax,
                     legend=ax is axes[0][-1], estimator="mean")
        ax.set_xlabel(x_label)
        ax.set_ylabel(metric_label)
    if axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def ratio_heatmap(ratios: pd.DataFrame, title: str, a: str, b: str) -> plt.Figure:
    """Ratio B / A per variant (rows) and measurement (columns); colour on a log2 scale centred on 1."""
    table = ratios.pivot_table(index="variant", columns="label", values="ratio", aggfunc="first")
    fig, ax = plt.subplots(figsize=(max(5, 0.75 * table.shape[1] + 3), max(2.5, 0.4 * table.shape[0] + 1.8)))
    with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib 3.11 marks as pending removal
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(np.log2(table.astype(float)), annot=table, fmt=".2f", center=0, cmap="vlag", ax=ax,
                    cbar_kws={"label": f"log2({b} / {a})"}, annot_kws={"fontsize": 7})
    ax.set_xlabel("measurement")
    ax.set_ylabel("variant")
    ax.set_title(title)
    return fig
