"""No run folder the tool can write makes `bench report` crash: a run stopped before its first cell, one whose every
cell or every measurement failed, one that holds a single kind of cell or a single variant, and a table with its
optional columns blank each get a report that says in words what it holds, and `bench report A B` on two of them
answers in words; a table without a column is refused, naming it.

The folders are written as `bench run` writes them (RunStore: run.json with the planned cells, one part per finished
cell, the consolidated tables) from the smoke preset's plan, with made-up measurements: no model is built or timed."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.measure.rows import rows_frame
from bench.plan.cells import Cell
from bench.plan.options import PARTS, SweepOptions, parse_axes
from bench.plan.planner import Plan, make_plan
from bench.report.compute.derived import Derived
from bench.report.compute.load import load_run
from bench.report.summary import print_summary
from bench.schema import Kind, Measurement, failure
from bench.store.folder import RunStore

RUN_ID = "smoke-20250101-000000"
# Ten rounds: the fewest the timing model gives intervals for. Each metric is one more figure panel to draw: a few.
ROUNDS, STEPS = 10, (0, 10, 20)
# The columns a report cannot do without: every other one may be blank.
ESSENTIAL = ["kind", "variant", "phase", "metric", "value", "unit", "status"]
SAMPLE_METRICS = {"fd": ("squared_feature", 3.0), "precision": ("ratio", 0.7), "sampling_time": ("s", 0.4)}


def smoke_plan(*axes: str, parts: tuple[str, ...] = PARTS) -> Plan:
    """The plan of `bench run --preset smoke --threads 1 --batch-size 1` (costs, timing, quality, floor and check
    cells; ``parts`` to choose)."""
    architecture, _ = parse_axes(list(axes))
    return make_plan(SweepOptions(out=Path("unused"), preset="smoke", threads=1, batch_size=1, axes=architecture,
                                  parts=parts))


def measured(cell: Cell, rng: np.random.Generator) -> list[Measurement]:
    """Plausible rows of a finished cell of each kind, values made up: checkpointing costs 20% more work and
    training time, and saves memory."""
    slower = 1.2 if cell.spec is not None and cell.spec.checkpoint else 1.0
    if cell.kind == Kind.COST:
        return [Measurement("model", "params", 1e5, "count", "numel"),
                Measurement("train_step", "flops", 1.2e8 * slower, "FLOP", "torch.utils.flop_counter"),
                Measurement("train_step", "peak_rss_bytes", 9e6 / slower * rng.normal(1, 0.05), "bytes",
                            "VmHWM-net-of-baseline"),
                Measurement("env", "loadavg_1min", 0.5, "processes", "os.getloadavg")]
    if cell.kind == Kind.TIMING:
        return [*timed_rounds(cell, rng),
                *(Measurement("calibration", "matmul_peak_flop_per_s", 3e10, "FLOP/s", "torch.mm blocks", repeat=r)
                  for r in range(ROUNDS))]
    if cell.kind in (Kind.QUALITY, Kind.FLOOR):
        scores = [Measurement("sample", metric, value * rng.normal(1, 0.1), unit, "torchmetrics", seed=cell.seed, n=64)
                  for metric, (unit, value) in SAMPLE_METRICS.items()]
        curve = [Measurement("train", metric, value, unit, "", seed=cell.seed, step=step) for step in STEPS
                 for metric, unit, value in (("heldout_loss", "mse", 0.3 + 0.4 / (1 + step)), ("wall_time", "s", step))]
        return scores + (curve if cell.kind == Kind.QUALITY else [])
    return [Measurement("checkpoint_check", "max_abs_loss_diff", 0.0, "mse", "", seed=cell.seed)]


def timed_rounds(cell: Cell, rng: np.random.Generator) -> list[Measurement]:
    """Every member of a timing cell timed once per round, in a random order, with drift between rounds."""
    rows = []
    for repeat in range(ROUNDS):
        drift = rng.normal(0, 0.1)
        for position, member in enumerate(rng.permutation(len(cell.members))):
            for phase in ("train_step", "inference"):
                slower = 1.2 if phase == "train_step" and cell.members[member].spec.checkpoint else 1.0
                rows.append(Measurement(phase, "seconds_per_iter", 0.01 * slower * np.exp(drift + rng.normal(0, 0.03)),
                                        "s", "time.perf_counter blocks", repeat=repeat, position=position, process=0,
                                        member=int(member), n=1))
    return rows


def failed_cell(cell: Cell) -> list[Measurement]:
    """A whole cell's failure, as the worker records it: an out-of-memory is an answer, the rest an error."""
    if cell.kind == Kind.TIMING:
        return [failure("cell", "oom", "OutOfMemoryError: CUDA out of memory [rounds.py:99]")]
    return [failure("cell", "error", "RuntimeError: the worker process died with signal 9")]


def failed_measurements(rows: list[Measurement]) -> list[Measurement]:
    """Every measurement of a cell failed on its own (the cell is `partial`): no value, status error."""
    return [dataclasses.replace(m, value=float("nan"), status="error", message="ValueError: made up") for m in rows]


def write_run(root: Path, plan: Plan, rows: dict[Cell, list[Measurement]]) -> Path:
    """A run folder as `bench run` leaves it after finishing the cells of ``rows``; none: as its time limit or a
    Ctrl-C leaves it before the first cell finished (run.json plans the cells, the tables have none)."""
    store = RunStore(root)
    store.open(plan.config(), resume=False, run_id=RUN_ID, planned=[
        {"id": c.id, "kind": c.kind, "label": " ".join(c.label.split())} for c in plan.cells])
    for cell, measurements in rows.items():
        store.write_cell(rows_frame(RUN_ID, cell, measurements, device_name="test CPU", host="test"), cell)
    store.consolidate()
    return root


def with_blank_optional_columns(root: Path, source: Path) -> Path:
    """Every column present, every optional one blank (missing text, NA, false), as Parquet."""
    root.mkdir()
    table = pd.read_parquet(source / "metrics.parquet")
    for column in table.columns.difference(ESSENTIAL):
        table[column] = table[column].iloc[:0].reindex(table.index)  # all missing, in the column's own dtype
    table.to_parquet(root / "metrics.parquet", index=False)
    return root


# Each folder, and what its report must say of what it holds.
SAYS = {
    "complete": r"\d+ rows \(by kind: timing \d+, cost \d+, quality \d+, floor \d+, check \d+\); 8 variants;",
    "stopped before any cell": r"No cell finished: the table of run [\w-]+ holds no rows",
    "every cell failed": r"Every cell failed: 14 of 14 planned cells; failed: ",
    "every measurement failed": r"\d+ rows \(by kind: .*\); 8 variants; devices: cpu; no row ok: nothing was measured",
    "cost only": r"Incomplete run: 8 of 14 planned cells; missing: .*\d+ rows \(by kind: cost \d+\)",
    "timing only": r"Incomplete run: 2 of 14 planned cells; missing: .*\d+ rows \(by kind: timing \d+\)",
    "quality only": r"Incomplete run: 2 of 14 planned cells; missing: .*\d+ rows \(by kind: quality \d+\)",
    "floor only": r"Incomplete run: 1 of 14 planned cells; missing: .*\d+ rows \(by kind: floor \d+\)",
    "check only": r"Incomplete run: 1 of 14 planned cells; missing: .*\d+ rows \(by kind: check \d+\)",
    "one variant": r"\(by kind: timing \d+, cost \d+\); 1 variant;",
    "blank optional columns": r"Run blank-optional-columns \(no run id\): \d+ rows .*; devices: none recorded;",
}
ONLY = {"cost only": Kind.COST, "timing only": Kind.TIMING, "quality only": Kind.QUALITY, "floor only": Kind.FLOOR,
        "check only": Kind.CHECK}
DEGENERATE = [name for name in SAYS if name != "complete"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("degenerate")
    folder = {name: root / name.replace(" ", "-") for name in SAYS}
    rng = np.random.default_rng(0)
    plan = smoke_plan()
    every = {cell: measured(cell, rng) for cell in plan.cells}
    one = smoke_plan("upsample=nearest_conv", "checkpoint=false", "attn_heads=1", parts=("cost",))
    written = {
        "complete": write_run(folder["complete"], plan, every),
        "stopped before any cell": write_run(folder["stopped before any cell"], plan, {}),
        "every cell failed": write_run(folder["every cell failed"], plan, {c: failed_cell(c) for c in plan.cells}),
        "every measurement failed": write_run(folder["every measurement failed"], plan,
                                              {c: failed_measurements(r) for c, r in every.items()}),
        **{name: write_run(folder[name], plan, {c: r for c, r in every.items() if c.kind == kind})
           for name, kind in ONLY.items()},
        "one variant": write_run(folder["one variant"], one, {cell: measured(cell, rng) for cell in one.cells}),
    }
    written["blank optional columns"] = with_blank_optional_columns(folder["blank optional columns"],
                                                                    folder["complete"])
    return written


def silent_tables(markdown: str) -> list[str]:
    """The titles of the report's tables that are empty and say nothing else."""
    return re.findall(r"^\*\*(.+)\*\*\n\n\(no rows\)$", markdown, flags=re.M)


@pytest.mark.parametrize("name", DEGENERATE)  # a complete run's report: test_report.py
def test_the_report_of_each_folder_says_what_it_holds(folders, name):
    assert main(["report", str(folders[name])]) == 0
    markdown = (folders[name] / "report.md").read_text()
    intro = markdown.split("\n\n")[1]
    assert re.search(SAYS[name], intro), intro
    assert silent_tables(markdown) == []
    print_summary(Derived(load_run(folders[name])))  # what `bench run` prints at its end


# Each degenerate folder against a complete run, and degenerate ones against each other: nothing against nothing,
# kinds that share no measurement, timing without effects against timing with some, a table with its optional
# columns blank against one variant. Each comparison draws its figures (seconds): a few pairs, not every one.
PAIRS = [*((name, "complete") for name in DEGENERATE), ("complete", "stopped before any cell"),
         ("stopped before any cell", "every cell failed"), ("every measurement failed", "stopped before any cell"),
         ("cost only", "quality only"), ("floor only", "check only"), ("one variant", "timing only"),
         ("blank optional columns", "one variant")]


@pytest.mark.parametrize("a, b", PAIRS)
def test_two_folders_compared_answer_in_words(folders, a, b, tmp_path):
    assert main(["report", str(folders[a]), str(folders[b]), "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "report.md").read_text()
    intro = markdown.split("\n\n")[1]
    assert re.search(SAYS[a], intro.split(" B: ")[0]) and re.search(SAYS[b], intro.split(" B: ")[1]), intro
    assert "## Run against run" in markdown and silent_tables(markdown) == []


def test_a_table_without_a_column_is_refused_naming_it(folders, tmp_path, capsys):
    root = tmp_path / "older"
    root.mkdir()
    table = pd.read_parquet(folders["complete"] / "metrics.parquet").drop(columns=["rung", "process"])
    table.to_csv(root / "metrics.csv", index=False)
    assert main(["report", str(root)]) == 2
    assert "lacks column(s) ['rung', 'process']; valid: every column of bench.schema.columns()" in capsys.readouterr().err
