"""Section: the noise floor and the controls, whose true effect is zero; and the report's opening line on it."""
from __future__ import annotations

import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.compute.effects import aa_control, controls, failed_controls
from bench.report.render.document import Section, Table
from bench.report.render.wording import describe_effect, effect_frame


def noise_section(derived: Derived) -> Section:
    effects = derived.effects
    section = Section("Noise floor and controls", "The A/A control times the baseline twice, as two separately "
                      "built instances in every round: its true effect is zero, so its interval is the run's noise "
                      "floor for time. Checkpointing's effect on inference is a second known null (without autograd "
                      "it does nothing). Neither may come out resolved; if one does, the timing has a bias the "
                      "design did not remove. Noise by level: the residual SD of one timed block within its round, "
                      "and the SD of the rounds' own speed (drift the round-as-block model takes out).")
    if (derived.noise_levels.get("processes", pd.Series(dtype=int)) > 1).any():
        section.note += (" The rounds ran in several fresh processes: their own speed is taken out with the rounds, "
                         "but a process's layout can also favour one model over another for all its rounds. That "
                         "part (a model in its process) is in every time effect's interval, which resamples "
                         "processes, then rounds within them; the shares say how much of a block's variance each "
                         "level holds.")
    null = controls(effects)
    if null.empty:
        section.note = "This run has no timing rounds, so no timing control and no noise floor."
        return section
    failed = failed_controls(effects)
    section.items.append(Table("Controls (true effect zero)", effect_frame(null, with_axis=True),
                               "WARNING: a control came out resolved; the timing is biased." if len(failed) else
                               "No control came out resolved."))
    section.items.append(Table("Where the timing noise comes from (log-scale SD, as %)",
                               noise_levels(derived.noise_levels), detail=True))
    busy = derived.disturbance
    if len(busy):
        section.items.append(Table(
            "Was the machine busy? Median over the rounds of each CPU setting", load_table(busy),
            f"{int(busy['disturbed'].sum())} setting(s) disturbed: their time effects are not interpreted."
            if busy["disturbed"].any() else "No setting disturbed: every core the threads could use stayed busy "
            "with them, and the load stayed within the cores."))
    return section


def noise_levels(levels: pd.DataFrame) -> pd.DataFrame:
    """The noise by level in percent, from ``Derived.noise_levels``; with the process levels and each level's share
    of the variance when some setting's rounds ran in several processes."""
    if levels.empty:
        return pd.DataFrame()
    table = pd.DataFrame({"setting": levels["setting"], "phase": levels["phase"], "metric": levels["metric"],
                          "rounds": levels["n"], "one block, within its round [%]": (100 * levels["block_sd"]).round(2),
                          "between rounds [%]": (100 * levels["round_sd"]).round(2)})
    if not (levels["processes"] > 1).any():
        return table
    process = levels["process_sd"].fillna(0) ** 2
    variance = {"within a round": levels["block_sd"] ** 2 - process, "rounds": levels["round_sd"] ** 2,
                "processes' speed": levels["process_speed_sd"].fillna(0) ** 2, "a model in its process": process}
    total = sum(variance.values())
    table.insert(4, "processes", levels["processes"])
    table["processes' own speed [%]"] = (100 * levels["process_speed_sd"]).round(2)
    table["a model in its process [%]"] = (100 * levels["process_sd"]).round(2)
    for level, part in variance.items():
        table[f"share: {level}"] = (100 * part / total).round(0).astype("Int64").astype(str) + "%"
    return table


def load_table(busy: pd.DataFrame) -> pd.DataFrame:
    """The disturbance of each CPU setting's rounds (compute/disturbance.py), for the noise section."""
    return pd.DataFrame({"setting": busy["setting"], "rounds": busy["rounds"], "threads": busy["threads"],
                         "CPU / wall time": busy["cpu_per_wall"].round(2),
                         "load (1 min)": busy["load"].map(lambda v: "not recorded" if pd.isna(v) else f"{v:.2f}"),
                         "disturbed": [f"yes: {why}" if flag else "no" for flag, why in zip(busy["disturbed"],
                                                                                              busy["why"])]})


def noise_floor_sentence(derived: Derived) -> str:
    """One line for the top of the report: the A/A control's effect on time, per setting and phase."""
    effects = derived.effects
    control = aa_control(effects)
    if control.empty:
        return ""
    parts = [f"{row['phase']} on {row['setting']} {describe_effect(row)}" for _, row in control.iterrows()]
    return "Noise floor (A/A control: the baseline timed twice as two instances): " + "; ".join(parts) + "."
