"""Section: the verdict. One row per axis switch: what it costs and what it buys, on the same network.

Every estimate is a row of effects.csv (compute/effects.py), so the verdict and the file cannot disagree; only
the context (training steps, data set, the real-versus-real floor, the checkpoint check) comes from the table,
and KID's interval at the level of FD's bound from the quality model's fit (compute/second_metric.py).
Costs are taken at the network the quality cells trained (same base config) when the run measured it; the
costs of the cost sweep's own base follow as "the same choice at a larger scale".
"""
from __future__ import annotations

import pandas as pd

from bench.plan.recipe import recipe_text
from bench.report.compute.derived import Derived
from bench.report.compute.frames import parameter_count
from bench.report.compute.effects import DISTURBED, aa_control, failed_controls, main_base, quality_base
from bench.report.compute.headline import HEADLINE_QUALITY, SECOND_QUALITY, TIMED_PHASE_NAMES, VERDICT_COSTS
from bench.report.compute.recipes import SHARED, confirmatory_recipes
from bench.report.compute.robustness import bound_level, confidence
from bench.report.compute.second_metric import agreement, at_level
from bench.report.compute.switches import checkpoint_checked, floor_means, pick, switch_effects
from bench.report.compute.switches import switches as run_switches
from bench.report.render.document import Section, Table, Text
from bench.report.render.wording import (EXPLORATORY, RESOLVED, bounds, describe_effect, edge_sentences,
                                         effect_cell, effect_interval, plain_cell, recipe_reading, scale_reading,
                                         signed)
from bench.schema import FD, PRIMARY_QUALITY, SECONDS_PER_ITER, TRAIN, TRAIN_STEP, Kind
from bench.statistics.rounds_model import CONTROL, MIN_PROCESSES, MIN_ROUNDS_TO_TEST, timing_stops

FIGURES = ("Costs: % change (counts are exact; time from the timing rounds' model, memory from matched cells), "
           "quality: difference (lower is better; from a model over every run of the design, the seed as a block), "
           "each with its 95% interval. "
           f"The confirmatory question per switch is the training step's time and {PRIMARY_QUALITY[1].upper()}: "
           f"{RESOLVED.strip()} = resolved after Holm's correction over those primary effects. Every other column is "
           f"exploratory: {EXPLORATORY.strip()} = its unadjusted interval excludes zero. An unresolved primary effect "
           "reads \"no difference beyond ±x (c interval)\": the largest effect its interval at Holm's family level "
           "allows (c = 1 - 0.05/m over the m primary tests), wider than the 95% interval printed beside it, which may "
           "exclude zero where Holm does not resolve the effect. KID (unbiased at small N, where FD is biased by N) is "
           "exploratory: its column gives its 95% interval, each line its interval at the level of FD's bound and "
           "whether KID agrees with FD (the same direction resolved, or neither resolved), disagrees in direction "
           "(one resolved, the other's estimate of opposite sign), does not resolve what FD resolves, or alone "
           "resolves it. FD's and KID's intervals cover the variation between training seeds, not between "
           "reference sets or feature networks. Every figure is a row of effects.csv but KID's interval at FD's "
           "level (from the same model).")
NOTE = "Each row switches one axis from its reference level, everything else equal. " + FIGURES
# The verdict's quality columns: KID beside FD.
VERDICT_QUALITY = (HEADLINE_QUALITY[0], (SECOND_QUALITY[1].upper(), *SECOND_QUALITY), *HEADLINE_QUALITY[1:])
LADDER_NOTE = ("Each row is one rung of the ladder against the rung before it: the step it adds (every rung keeps "
               "the steps before it). " + FIGURES)


def verdict_section(derived: Derived) -> Section:
    effects, table, rungs = derived.effects, derived.table, derived.rungs
    section = Section("Verdict", " ".join(filter(None, (derived.completeness.sentence(), _failed_control(effects),
                                                        LADDER_NOTE if rungs else NOTE))))
    switches = run_switches(effects)
    if switches.empty:
        section.note = "No axis has two levels in this run, so there is nothing to weigh."
        return section
    trained = quality_base(effects)
    cost_bases = sorted(set(effects.loc[effects["unit"] == "%", "base_config"]))
    main = main_base(effects)
    context = _quality_context(table, trained)
    checked = checkpoint_checked(table)
    floors = floor_means(derived.floor)
    recipes = confirmatory_recipes(effects.loc[effects["unit"] != "%", "recipe"]) if trained else []
    holds = _Robustness(derived, trained)
    section.items.append(Text([_sentence(effects, s, main, trained, context, checked, floors, rungs, recipes,
                                         derived.quality_fits)
                               + holds.sentences(s) for s in switches.itertuples()]))
    if trained and len(derived.tuning_edges):  # a tuned reading whose best may lie outside the grid it chose from
        section.items.append(Text(edge_sentences(derived.tuning_edges)))
    title = f"Cost and quality of each {'rung' if rungs else 'switch'}: costs on {main}" + (
        f", quality on {trained} ({context})" if trained else "")
    section.items.append(Table(title, verdict_frame(effects, switches, main, trained, rungs, recipes)))
    for base in (b for b in cost_bases if b != main):
        frame = verdict_frame(effects, switches, base, None, rungs)
        scale = "at a larger scale" if parameter_count(table, base) > parameter_count(table, main) else "on another network"
        section.items.append(Table(f"The same choice {scale}: costs on {base} (no quality measured there)", frame))
    section.items.append(Text([noise_floor(derived, main), *precision_sentences(derived.table),
                               *resolvable_sentences(effects, floors)]))
    return section


def precision_sentences(table: pd.DataFrame) -> list[str]:
    """How each timing cell's rounds stopped: at the precision asked for, or at the cap short of it."""
    out = []
    for stop in timing_stops(table).itertuples():
        # a run of several networks names the network in its setting already
        where = "Timing precision on " + (stop.setting if stop.setting.startswith(stop.base_config)
                                          else f"{stop.base_config} · {stop.setting}")
        if pd.isna(stop.reached):
            out.append(f"{where}: no interval after {stop.rounds:.0f} rounds (the model gives one from "
                       f"{MIN_PROCESSES} timing processes, or from {MIN_ROUNDS_TO_TEST} rounds in fewer), none of "
                       f"the ±{stop.target:g}% asked for.")
        elif stop.why == "precision":
            out.append(f"{where}: reached ±{stop.reached:.2g}% in {stop.rounds:.0f} rounds (asked ±{stop.target:g}%).")
        elif stop.why == "cap":
            out.append(f"{where}: stopped at the cap after {stop.rounds:.0f} rounds with ±{stop.reached:.2g}%: not "
                       f"the ±{stop.target:g}% asked for, which at this noise needs at least "
                       f"{stop.rounds_for_target:.0f} rounds.")
        else:
            out.append(f"{where}: ±{stop.reached:.2g}% after {stop.rounds:.0f} rounds, when {stop.why}: not the "
                       f"±{stop.target:g}% asked for.")
    return out


def verdict_frame(effects: pd.DataFrame, switches: pd.DataFrame, cost_base: str, quality_base: str | None,
                  rungs: dict[str, str] | None = None, recipes: list[str] = (SHARED,)) -> pd.DataFrame:
    """One row per switch: its costs on ``cost_base`` and its quality on ``quality_base`` at each of ``recipes``
    (no quality columns without a quality base)."""
    rows = []
    for switch in switches.itertuples():
        mine = switch_effects(effects, switch)
        row = {"switch": _switch_name(switch, rungs or {})}
        for column, (phase, metrics) in VERDICT_COSTS.items():
            row[column] = effect_cell(pick(mine, cost_base, phase, metrics, "%"))
        for recipe in recipes if quality_base else ():
            for column, phase, metric in VERDICT_QUALITY:
                name = column if len(recipes) == 1 else f"{column} ({recipe})"
                row[name] = effect_cell(pick(mine, quality_base, phase, (metric,), None, recipe))
        rows.append(row)
    return pd.DataFrame(rows)


def _switch_name(switch, rungs: dict[str, str]) -> str:
    """``axis: from → to``, or for a ladder's rung ``rung after previous: what it sets``."""
    if switch.axis in rungs:
        return f"{switch.to_level} after {switch.from_level}: {rungs[switch.axis]}"
    return f"{switch.axis}: {switch.from_level} → {switch.to_level}"


def _sentence(effects: pd.DataFrame, switch, cost_base: str, trained: str | None, context: str,
              checked: bool, floors: dict[str, float], rungs: dict[str, str], recipes: list[str],
              fits: pd.DataFrame) -> str:
    mine = switch_effects(effects, switch)
    parts = []
    params = pick(mine, cost_base, *VERDICT_COSTS["parameters"], "%")
    if params is not None:
        parts.append(f"{signed(params['estimate'], '%')} parameters" if params["estimate"] else "same parameters")
    parts += _time_readings(mine, cost_base, effects)
    saved = pick(mine, cost_base, *VERDICT_COSTS["saved activations"], "%")
    if saved is not None and abs(saved["estimate"]) >= 1:  # smaller changes are rounding of a few tensors
        parts.append(f"saved activations {signed(saved['estimate'], '%')}")
    peak = pick(mine, cost_base, *VERDICT_COSTS["peak memory"], "%")
    if peak is not None and bool(peak["resolved"]):
        parts.append(f"peak memory {plain_cell(peak)}")
    readings = [(recipe, pick(mine, trained, PRIMARY_QUALITY[0], (PRIMARY_QUALITY[1],), None, recipe))
                for recipe in recipes]
    readings = [(recipe, row) for recipe, row in readings if row is not None]
    if readings:
        judgements = []
        for recipe, quality in readings:
            level = bound_level(effects, quality)
            reading, judgement = _quality_reading(quality, context, floors, level)
            parts.append(reading if len(recipes) == 1 else f"{reading} at the {recipe} recipe")
            judgement = judgement if len(recipes) == 1 else f"{judgement} at the {recipe} recipe"
            second = pick(mine, trained, SECOND_QUALITY[0], (SECOND_QUALITY[1],), None, recipe)
            judgements.append(judgement + _second_reading(quality, second, fits, level))
        judgement = "; ".join(judgements)
    elif switch.axis == "checkpoint" and checked:
        judgement = "the same function, so the same quality (checked: same losses with it on and off)"
    else:
        judgement = "quality not measured"
    name = f"{switch.to_level} after {switch.from_level} ({rungs[switch.axis]})" if switch.axis in rungs else \
        f"{switch.axis} {switch.from_level} → {switch.to_level}"
    return f"{name}: {', '.join(parts)}: {judgement}."


class _Robustness:
    """What the verdict adds to a switch's line: the tuned recipes it compared, whether the primary quality effect
    still moved at the end of training, and whether it holds on the second network."""

    def __init__(self, derived: Derived, trained: str | None) -> None:
        self.derived, self.trained = derived, trained
        self.rungs = derived.rungs

    def sentences(self, switch) -> str:
        if self.trained is None:
            return ""
        return "".join(f" {text}." for text in (self._recipes(switch), self._training(switch), self._scales(switch))
                       if text)

    def _recipes(self, switch) -> str:
        rows = switch_effects(self.derived.across_recipes, switch)
        rows = rows[rows["base_config"] == self.trained] if len(rows) else rows
        if rows.empty:
            return ""
        chosen = self._chosen(switch)
        return f"Recipes: {recipe_reading(rows.iloc[0])}" + (f" (tuned: {chosen})" if chosen else "")

    def _chosen(self, switch) -> str:
        """The recipes tuning chose for the two sides of a ladder's rung (a factorial's are in the Tuning section)."""
        tuning = self.derived.tuning
        if switch.axis not in self.rungs or tuning.empty:
            return ""
        axes = [a for a in tuning["tuned_axes"].iloc[0].split(",") if a]
        parts = []
        for rung in (switch.from_level, switch.to_level):
            row = tuning[(tuning["rung"] == rung) & (tuning["base_config"] == self.trained)]
            if len(row):
                parts.append(f"{rung} at " + recipe_text((a, row.iloc[0][a]) for a in axes))
        return "; ".join(parts)

    def _training(self, switch) -> str:
        trends = switch_effects(self.derived.trends, switch)
        if trends.empty:
            return ""
        rows = trends[(trends["base_config"] == self.trained) & (trends["metric"] == PRIMARY_QUALITY[1])]
        out = []
        for row in rows.itertuples():
            where = f" at the {row.recipe} recipe" if rows["recipe"].nunique() > 1 else ""
            path = ", ".join(f"{signed(e)} at {s:,}" for s, e in zip(row.steps, row.estimates))
            text = f"along training{where} {row.trend} ({path})"
            if not row.settled:
                text += f"; still moving over the last {row.steps[-1] - row.steps[-2]:,} steps"
            out.append(text)
        return ("Along training: " + "; ".join(t.removeprefix("along training ") for t in out)) if out else ""

    def _scales(self, switch) -> str:
        rows = switch_effects(self.derived.across_scales, switch)
        if rows.empty:
            return ""
        return "Across scales: " + "; ".join(
            (f"{scale_reading(row)} at the {row['recipe']} recipe" if len(rows) > 1 else scale_reading(row))
            for _, row in rows.iterrows())


def _failed_control(effects: pd.DataFrame) -> str:
    """A control that came out resolved, first: the A/A control on wall time is the run's bias check, read on its
    own; a known null that comes out resolved says the same of the design."""
    failed = failed_controls(effects)
    if failed.empty:
        return ""
    biased = failed[(failed["axis"] == CONTROL) & (failed["metric"] == SECONDS_PER_ITER)]
    if len(biased):
        worst = biased.loc[biased["estimate"].abs().idxmax()]
        return (f"Warning: this run's timing is biased by {worst['estimate']:+.2g}% (the A/A control, the baseline "
                f"against a second instance of itself, on {worst['phase']} on {worst['setting']}: "
                f"{effect_interval(worst, '%')}, an interval that excludes zero): treat its time effects with care, "
                "and a time effect within that interval as not told apart from it.")
    worst = failed.loc[failed["estimate"].abs().idxmax()]
    return (f"Warning: a control whose true effect is zero came out resolved ({worst['phase']}/{worst['metric']} "
            f"{effect_interval(worst, '%')}): "
            "the timing has a bias this design did not remove, so a time effect within that interval is not told "
            "apart from it.")


def _time_readings(mine: pd.DataFrame, cost_base: str, effects: pd.DataFrame) -> list[str]:
    """The training step (the primary time question) and inference (exploratory): a resolved effect reads its size,
    an unresolved one the largest change its interval allows."""
    rows = [(name, pick(mine, cost_base, phase, (SECONDS_PER_ITER,), "%"))
            for phase, name in TIMED_PHASE_NAMES]
    rows = [(name, row) for name, row in rows if row is not None]
    if not rows:
        return ["time not measured (no timing cell)"]
    disturbed = [row for _, row in rows if DISTURBED in str(row["method"])]
    if disturbed:
        why = str(disturbed[0]["method"]).split(f"{DISTURBED}: ", 1)[1].removesuffix(", not interpreted")
        return [f"timing disturbed ({why}): not interpreted"]
    readings = []
    for name, row in rows:
        if pd.isna(row["ci_low"]):
            readings.append(f"{name} untested (too few rounds)")
        elif bool(row["resolved"]):
            readings.append(f"{name} {plain_cell(row)}" + (" (exploratory)" if row["family"] == "secondary" else ""))
        elif row["family"] == "primary":
            readings.append(f"{name}: no difference beyond ±{row['bound']:.3g}% "
                            f"({confidence(bound_level(effects, row))} interval)")
    return readings


def _quality_reading(row: pd.Series, context: str, floors: dict[str, float], level: float) -> tuple[str, str]:
    """(reading, judgement) of the primary quality effect: its size when resolved, else the largest difference its
    interval at the family's ``level`` allows (the level named), in the metric's unit and as a fraction of the
    real-versus-real floor."""
    name = row["metric"].upper() if len(row["metric"]) <= 3 else row["metric"]
    reading = f"{name} {plain_cell(row)} {context}"
    if bool(row["resolved"]):
        size = abs(row["estimate"])
        return reading, f"{'better' if row['estimate'] < 0 else 'worse'} by {size:.3g} {name}" \
            f"{_of_floor(size, row, floors)}"
    if pd.isna(row["bound"]):
        return reading, "quality untested (too few runs)"
    return reading, (f"no difference in quality beyond ±{row['bound']:.3g} {name} ({confidence(level)} interval"
                     f"{_of_floor(row['bound'], row, floors, '; ')})")


def _second_reading(primary: pd.Series, second: pd.Series | None, fits: pd.DataFrame, level: float) -> str:
    """``, KID agrees: -0.0701 [-0.0858, -0.0544] (99.29% interval)``: KID beside a tested FD reading, at the level
    of FD's bound (compute/second_metric.py); nothing without both."""
    if second is None or pd.isna(primary["bound"]):
        return ""
    second = at_level(second, fits, level)
    if pd.isna(second["ci_low"]):
        return ", KID untested (too few runs)"
    word = agreement(primary["estimate"], bool(primary["resolved"]), second["estimate"], bool(second["resolved"]))
    return f", {word}: {effect_interval(second)} ({confidence(level)} interval)"


def _of_floor(value: float, row: pd.Series, floors: dict[str, float], within: str = "") -> str:
    """`` (0.25 of the real-versus-real floor, 1.8)``, or with ``within`` that text inside a parenthesis already
    open."""
    floor = floors.get(row["metric"])
    text = f"{value / floor:.2g} of the real-versus-real floor, {floor:.3g}" if floor else ""
    return (within + text if within else f" ({text})") if text else ""


def resolvable_sentences(effects: pd.DataFrame, floors: dict[str, float]) -> list[str]:
    """Per primary metric, the smallest effect the run could have resolved (80% power, as the family's only real
    effect), over the switches."""
    primary = effects[(effects["family"] == "primary") & effects["resolvable"].notna()]
    if primary.empty:
        return []
    out = []
    for (phase, metric, unit), rows in primary.groupby(["phase", "metric", "unit"], sort=True):
        low, high = rows["resolvable"].min(), rows["resolvable"].max()
        size = f"{low:.3g}" if f"{low:.3g}" == f"{high:.3g}" else f"{low:.3g} to {high:.3g}"
        shown = "%" if unit == "%" else f" {metric.upper() if len(metric) <= 3 else unit}"
        floor = _of_floor(high, rows.iloc[0], floors) if unit != "%" else ""
        what = "training step time" if phase == TRAIN_STEP else shown.strip()
        out.append(f"Smallest effect this run resolves on {what}: {size}{shown}{floor} (80% power were it the only "
                   f"real effect among the {len(primary)} primary tests; Holm's first step, "
                   f"{rows['n'].iloc[0]:.0f} {'rounds' if unit == '%' else 'runs'}).")
    return out


def _quality_context(table: pd.DataFrame, base: str | None) -> str:
    """``at 1,500 steps on digits`` for the quality cells of ``base``."""
    rows = table[(table["kind"] == Kind.QUALITY) & (table["base_config"] == base)]
    if rows.empty:
        return ""
    steps = rows.loc[rows["phase"] == TRAIN, "step"].max()
    datasets = ", ".join(sorted(set(rows["dataset"]) - {""})) or "its data"
    return f"at {int(steps):,} steps on {datasets}" if pd.notna(steps) else f"on {datasets}"


def noise_floor(derived: Derived, base: str) -> str:
    """The run's noise floors, stated once: the A/A timing control and the real-versus-real quality floor."""
    effects = derived.effects
    parts = []
    for _, row in aa_control(effects, base).iterrows():
        parts.append(f"{row['phase']} {describe_effect(row)}")
    text = ("Noise floor: the A/A control (the baseline timed twice, as two instances) reads "
            + "; ".join(parts) if parts else "Noise floor: no A/A timing control in this run")
    floor = derived.floor[derived.floor["metric"] == FD] if not derived.floor.empty else derived.floor
    if len(floor):
        row = floor.iloc[0]
        spread = f"{bounds(row['low'], row['high'])} over {int(row['n'])} seeds" if pd.notna(row["low"]) else \
            f"(n={int(row['n'])}: no interval)"
        text += (f"; real-versus-real FD (two real samples of the same N={int(row['sample_size'])}) "
                 f"{row['mean']:.3g} {spread}, the smallest FD a model can be told apart from at that N")
    return text + "."
