"""The short wide table `make bench` prints at the end: one row per variant and setting (device plus any
non-default execution option), then our U-Net's speed against each peer. The numbers are the report's:
a few columns of its per-cell medians and quartiles, and its intervals over seeds."""
from __future__ import annotations

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.compute.frames import by_variant, per_variant_quality
from bench.report.compute.headline import HEADLINE_COSTS
from bench.report.compute.recipes import confirmatory_recipes
from bench.schema import ALONG_TRAINING, FD, IMAGES_PER_S, SAMPLE


def printed_costs(derived: Derived) -> pd.DataFrame:
    """Medians over repeats or timing rounds; throughput columns also carry the IQR as a percentage of the
    median (machine drift between rounds included: the report's model takes it out of the effects)."""
    cells = derived.cost_medians
    if cells.empty:
        return pd.DataFrame()
    out = {}
    for cost in (cost for cost in HEADLINE_COSTS if cost.printed):
        rows = cells[(cells["phase"] == cost.phase) & (cells["metric"] == cost.metric)]
        if cost.method:
            rows = rows[rows["method"] == cost.method]
        if rows.empty:
            continue
        median = by_variant(rows, rows["value"] * cost.scale)
        out[cost.printed] = median.round(3 if cost.scale != 1.0 or median.max() < 10 else 1)
        if cost.metric == IMAGES_PER_S:
            iqr = by_variant(rows, 100 * (rows["q3"] - rows["q1"]) / rows["value"])
            out[cost.printed.replace("[img/s]", "IQR%")] = iqr.round(1)
    return pd.DataFrame(out)


def printed_peers(derived: Derived) -> pd.DataFrame:
    """Median over timing rounds of our throughput over each peer's (above 1: ours is faster)."""
    rounds = derived.peer_rounds
    if rounds.empty:
        return pd.DataFrame()
    speed = rounds.groupby(["peer", "setting", "phase"])["ratio"].agg(["median", "count"])
    return speed.rename(columns={"median": "ours / peer", "count": "rounds"}).round(3)


def printed_quality(derived: Derived, metric: str = FD, recipe: str | None = None) -> pd.DataFrame:
    """Mean and 95% t-interval half-width over seeds, and the real-vs-real floor, of one quality metric at the end
    of training, at ``recipe`` (default: the main reading, compute/recipes.py)."""
    if recipe is None or recipe == derived.main_recipe:
        quality = derived.quality
    else:
        values = derived.all_quality_values
        quality = per_variant_quality(values[(values["recipe"] == recipe) & (values["phase"] != ALONG_TRAINING)])
    # an empty frame left out: pandas 2.2 warns that it will stop ignoring one when it chooses the result's dtypes
    frames = [frame for frame in (quality, derived.floor) if not frame.empty]
    if not frames:
        return pd.DataFrame()
    ci = pd.concat(frames, ignore_index=True)
    ci = ci[(ci["phase"] == SAMPLE) & (ci["metric"] == metric)]
    if ci.empty:
        return pd.DataFrame()
    several = ci["base_config"].nunique() > 1  # the same variant on two networks (the scale preset)
    ci = ci.set_index(ci["variant"] + (" @ " + ci["base_config"] if several else ""))
    return pd.DataFrame({f"{metric} mean": ci["mean"].round(3), "95% CI ±": (ci["high"] - ci["mean"]).round(3),
                         "seeds": ci["n"]})


def print_summary(derived: Derived) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        cost = printed_costs(derived)
        if not cost.empty:
            print("\nCost per variant (medians over repeats; IQR% = IQR / median):")
            print(cost.to_string())
        peers = printed_peers(derived)
        if not peers.empty:
            print("\nOur U-Net against the peers (throughput ratio, median over timing rounds; above 1 = ours faster):")
            print(peers.to_string())
        recipes = confirmatory_recipes(derived.all_quality_values["recipe"]) if len(derived.all_quality_values) \
            else []
        for recipe in recipes:
            quality = printed_quality(derived, recipe=recipe)
            if not quality.empty:
                at = f" at the {recipe} recipe" if len(recipes) > 1 else ""
                print(f"\nSample quality{at} (Frechet distance in digit-classifier features; 'real' is the floor):")
                print(quality.to_string())
