"""Section: the tables of two compared runs side by side (failed cells, environments)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.report.compute.derived import Derived
from bench.report.compute.frames import env_frame, failed_rows
from bench.report.compute.run_ratios import run_labels
from bench.report.render.document import Section, Table


def both_runs_tables_section(a: Derived, b: Derived) -> Section:
    label_a, label_b = run_labels(a, b)
    failed = pd.concat([failed_rows(r.table).assign(run=label) for r, label in ((a, label_a), (b, label_b))])
    env = env_frame(a.env).merge(env_frame(b.env), on="field", how="outer", suffixes=(f" ({label_a})", f" ({label_b})"))
    env["differs"] = np.where(env.iloc[:, 1].fillna("") != env.iloc[:, 2].fillna(""), "yes", "")
    failed_note = "" if len(failed) else "No row of either run failed."
    env_note = "" if len(env) else "Neither run folder has an env.json."
    return Section("Tables", items=[Table("Failed cells of both runs", failed.reset_index(drop=True), failed_note),
                                    Table("Environments side by side (env.json)", env, env_note)])
