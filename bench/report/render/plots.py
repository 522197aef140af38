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

from bench.report.compute.headline import TIMED_PHASE_NAMES  # noqa: E402
from bench.report.render.wording import scale_for  # noqa: E402
from bench.schema import WALL_TIME  # noqa: E402
from bench.statistics.stats import pareto_front, t_interval  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
PAGE_WIDTH_INCHES = 11  # the widest a figure may be, legend aside: the HTML report's 1,200 px column at 90 dpi


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
    height = max(2.4, 0.3 * n_variants * max(1, rows[hue].nunique()) ** 0.5 + 1.0)
    columns = min(3, len(labels))
    # panels of a fixed width, so that the figure keeps to a page's width (~13 inches) however tall it grows
    grid = sns.catplot(data=rows, kind="bar", x="value", y="variant", hue=hue, col="label", col_order=labels,
                       col_wrap=columns, sharex=False, estimator="median", errorbar=("pi", 50),
                       height=height, aspect=PAGE_WIDTH_INCHES / columns / height,
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


def speedup_plot(rounds: pd.DataFrame, comparisons: pd.DataFrame, title: str) -> plt.Figure:
    """Interleaved rounds of our throughput over each peer's: every round a dot, the median a black diamond
    with its 95% bootstrap interval (``comparisons``' ``<phase>_interleaved``: median, low, high), a line at 1
    (parity), per phase (columns) and setting (rows)."""
    rounds = rounds.assign(phase=rounds["phase"].map(dict(TIMED_PHASE_NAMES)), value=rounds["ratio"])
    order = sorted(rounds["peer"].unique())
    phases = [label for _, label in TIMED_PHASE_NAMES if label in set(rounds["phase"])]

    def strip(data: pd.DataFrame, **_: object) -> None:  # FacetGrid's own colour and label arguments unused
        # seaborn jitters the dots with numpy's global generator, and catplot visits its facets in an order that
        # varies with Python's string hashing: one seeded strip plot per facet re-renders the same every time
        np.random.seed(0)
        sns.stripplot(data=data, x="value", y="peer", order=order, alpha=0.5, color="tab:blue", jitter=0.15,
                      ax=plt.gca())

    grid = sns.FacetGrid(rounds, col="phase", row="setting", col_order=phases, sharex=False,
                         height=max(2.0, 0.45 * len(order) + 1.0), aspect=1.8)
    grid.map_dataframe(strip)
    for (setting, phase), ax in grid.axes_dict.items():
        key = next(p for p, label in TIMED_PHASE_NAMES if label == phase) + "_interleaved"
        for _, row in comparisons[comparisons["setting"] == setting].iterrows():
            if not isinstance(row.get(key), tuple):
                continue
            median, low, high = row[key]
            xerr = None if np.isnan(low) else [[median - low], [high - median]]
            ax.errorbar(median, order.index(row["peer"]), xerr=xerr, fmt="D", color="black", capsize=3)
        ax.axvline(1.0, color="grey", lw=0.8)
    return _finish_phase_grid(grid, "ours / peer throughput (above 1: ours faster)", title)


def _finish_phase_grid(grid: sns.FacetGrid, x_label: str, title: str) -> plt.Figure:
    """Labels of a phase (columns) by setting (rows) grid."""
    grid.set_axis_labels(x_label, "")
    grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    grid.figure.suptitle(title, y=1.02)
    grid.tight_layout()
    return grid.figure


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
    panels = [("step", "training step")] + ([(WALL_TIME, "training wall time [s] (mean over seeds)")]
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
    """Ratio B / A per measurement (rows) and variant (columns); colour on a log2 scale centred on 1. Measurements
    grow the figure downwards, so it keeps to a page's width (at most 13 inches, ~1,200 px) however many there are."""
    table = ratios.pivot_table(index="label", columns="variant", values="ratio", aggfunc="first")
    table.index = [textwrap.shorten(label, 48) for label in table.index]
    table.columns = [textwrap.fill(variant, 16) for variant in table.columns]
    width = min(PAGE_WIDTH_INCHES, 0.9 * table.shape[1] + 5)
    fig, ax = plt.subplots(figsize=(width, max(2.5, 0.3 * table.shape[0] + 2)))
    with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib 3.11 marks as pending removal
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(np.log2(table.astype(float)), annot=table, fmt=".2f", center=0, cmap="vlag", ax=ax,
                    cbar_kws={"label": f"log2({b} / {a})"}, annot_kws={"fontsize": 7})
    ax.set_xlabel("variant")
    ax.set_ylabel("measurement")
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(title)
    return fig


def effect_forest(effects: pd.DataFrame, title: str) -> plt.Figure:
    """Effects from effects.csv, one panel per comparison and setting: each measurement's estimate with its
    interval (95% CI, or for exact counts the range over pairs); filled when resolved, hollow when not."""
    panels = list(effects.groupby(["comparison", "setting"], sort=True))
    height = max(2.0, 0.32 * effects.groupby(["comparison", "setting"]).size().max() + 1.2)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.5, height * len(panels)), squeeze=False)
    for ax, ((comparison, setting), rows) in zip(axes[:, 0], panels):
        rows = rows.sort_values("label", ascending=False).reset_index(drop=True)
        for position, row in rows.iterrows():
            has_interval = pd.notna(row["ci_low"])
            xerr = [[row["estimate"] - row["ci_low"]], [row["ci_high"] - row["estimate"]]] if has_interval else None
            ax.errorbar(row["estimate"], position, xerr=xerr, fmt="D", ms=5, capsize=3, color="black",
                        markerfacecolor="black" if row["resolved"] else "white")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(range(len(rows)), [textwrap.shorten(label, 60) for label in rows["label"]])
        unit = rows["unit"].iloc[0]
        ax.set_xlabel("change vs reference level [%]" if unit == "%" else "difference (metric's own unit)")
        ax.set_title(f"{comparison} · {setting}", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def effect_trajectories(points: pd.DataFrame, title: str, y_label: str) -> plt.Figure:
    """One small panel per switch: its effect (effects.csv rows, ``switch`` and ``recipe`` columns) at each
    checkpoint with its 95% interval; zero marked."""
    switches = list(dict.fromkeys(points["switch"]))
    columns = min(3, len(switches))
    rows = -(-len(switches) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False, sharex=True)
    recipes = list(dict.fromkeys(points["recipe"]))
    colours = dict(zip(recipes, sns.color_palette(n_colors=len(recipes))))
    for ax, switch in zip(axes.flat, switches):
        for offset, recipe in enumerate(recipes):
            path = points[(points["switch"] == switch) & (points["recipe"] == recipe)].sort_values("step")
            x = path["step"] + (offset - (len(recipes) - 1) / 2) * 0.02 * path["step"].max()  # side by side
            err = [path["estimate"] - path["ci_low"], path["ci_high"] - path["estimate"]]
            ax.errorbar(x, path["estimate"], yerr=err, fmt="o-", ms=4, capsize=3, color=colours[recipe],
                        label=recipe)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(textwrap.shorten(switch, 48), fontsize=8)
        ax.set_xlabel("training step")
        ax.set_ylabel(y_label, fontsize=8)
    for ax in list(axes.flat)[len(switches):]:
        ax.set_visible(False)
    if len(recipes) > 1:
        axes.flat[0].legend(title="recipe", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
