"""A grid that brackets: a tuned variant whose choice sits at an edge of its grid extends it by the grid's own ratio,
alone, until the choice is interior or a bound stops it, and the report names every choice still at an edge."""
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bench.plan.bracket import BOUND, INVALID, MAX_EXTENSIONS, NO_RATIO, edges, extension_cells
from bench.plan.cells import Cell
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.recipe import recipe_changes
from bench.report.compute.derived import Derived
from bench.report.compute.load import normalise, read_tune
from bench.report.render.document import Text
from bench.report.sections.tuning import tuning_section
from bench.run import runner
from bench.schema import columns
from variants import BASES

GRID = {"lr": (4e-3, 1e-2)}
SPECS = {"a": BASES["digits8_ch16"], "c": BASES["digits8_ch16"].replace(time_injection="film")}


def tune_cells(grid: dict = GRID) -> list[Cell]:
    """The tuning cells a plan holds for variants a and c at every point of ``grid``."""
    config = QUALITY_PRESETS["quick"]
    points = [dict(zip(grid, values)) for values in pd.MultiIndex.from_product(list(grid.values()))]
    return [Cell("tune", spec, device="cpu", seed=10000, seeds=(10000, 10001), quality="quick", dataset="digits",
                 base_config="digits8_ch16", recipe=recipe_changes(config, point))
            for spec in SPECS.values() for point in points]


def rows(scores: dict[tuple[str, tuple], float], axes: tuple[str, ...] = ("lr",)) -> pd.DataFrame:
    """Tuning rows: variant ("a" or "c") and point (values of ``axes``) -> the criterion, at both tuning seeds."""
    out = []
    for (variant, point), fd in scores.items():
        preset = {"lr": 4e-3, "lr_schedule": "constant", "weight_decay": 0.01, "ema_decay": 0.99}
        recipe = preset | dict(zip(axes, point))
        for seed in (10000, 10001):
            row = dict.fromkeys(columns(), "")
            row.update(run_id="t", cell_id=f"{variant}-{point}-{seed}", kind="tune", variant=SPECS[variant].name,
                       rung="", quality_preset="quick", base_config="digits8_ch16", dataset="digits", device="cpu",
                       seed=seed, phase="sample", metric="fd", value=fd, unit="fd", status="ok", block="total",
                       n=250, step=1500, **recipe)
            out.append(row)
    return normalise(pd.DataFrame(out, columns=list(columns())))


def planned(cells: list[Cell]) -> set[tuple[str, float]]:
    return {(c.variant, c.config.lr) for c in cells}


def test_an_edge_choice_extends_by_the_grid_s_own_ratio_and_an_interior_one_does_not():
    # a chooses the grid's lowest point, c its highest
    table = rows({("a", (4e-3,)): 1.0, ("a", (1e-2,)): 2.0, ("c", (4e-3,)): 2.0, ("c", (1e-2,)): 1.0})
    found = edges(table, GRID).set_index("variant")
    assert dict(found["side"]) == {SPECS["a"].name: "lowest", SPECS["c"].name: "highest"}
    assert set(found["stop"]) == {""} and set(found["extensions"]) == {0}
    more = extension_cells(tune_cells(), table, GRID)
    assert planned(more) == {(SPECS["a"].name, 0.0016), (SPECS["c"].name, 0.025)}
    assert all(c.kind == "tune" and c.seeds == (10000, 10001) for c in more)  # the tuning seeds, each variant alone

    # c's point beyond scores worse: c is bracketed; a's is better: a steps on, by the same ratio
    table = rows({("a", (4e-3,)): 1.0, ("a", (1e-2,)): 2.0, ("a", (1.6e-3,)): 0.5,
                  ("c", (4e-3,)): 2.0, ("c", (1e-2,)): 1.0, ("c", (2.5e-2,)): 1.5})
    assert planned(extension_cells(tune_cells(), table, GRID)) == {(SPECS["a"].name, 0.00064)}
    assert list(edges(table, GRID)["variant"]) == [SPECS["a"].name]


def test_a_resumed_run_plans_the_same_extension_cells():
    table = rows({("a", (4e-3,)): 1.0, ("a", (1e-2,)): 2.0, ("c", (4e-3,)): 2.0, ("c", (1e-2,)): 1.0})
    first = extension_cells(tune_cells(), table, GRID)
    again = extension_cells(tune_cells(), table.sample(frac=1, random_state=0), GRID)
    assert [c.id for c in first] == [c.id for c in again]


def test_the_bound_stops_extension_and_the_report_names_the_edge():
    below = [4e-3 / 2.5 ** k for k in range(MAX_EXTENSIONS + 1)]
    table = rows({("a", (1e-2,)): 5.0, **{("a", (lr,)): 1.0 - i / 10 for i, lr in enumerate(below)},
                  ("c", (4e-3,)): 1.0, ("c", (1e-2,)): 2.0})
    found = edges(table, GRID).set_index("variant")
    a = found.loc[SPECS["a"].name]
    assert a["stop"] == BOUND and a["extensions"] == MAX_EXTENSIONS and a["value"] == pytest.approx(below[-1])
    assert planned(extension_cells(tune_cells(), table, GRID)) == {(SPECS["c"].name, 0.0016)}  # c alone goes on

    section = tuning_section(Derived.of_table(table, tune={"lr": [4e-3, 1e-2]}))
    lines = [line for item in section.items if isinstance(item, Text) for line in item.lines]
    assert f"{SPECS['a'].name}'s best lr may lie below 0.00064: its choice sits at the grid's lowest point after " \
        f"{MAX_EXTENSIONS} extensions, the most a side takes." in lines
    assert any(line.startswith(f"{SPECS['c'].name}'s best lr may lie below 0.004") and "not yet extended to "
               "lr=0.0016" in line for line in lines)


def test_a_diverged_point_beyond_brackets_the_choice():
    table = rows({("c", (4e-3,)): 2.0, ("c", (1e-2,)): 1.0, ("c", (2.5e-2,)): np.nan})
    assert edges(table, GRID).empty and extension_cells(tune_cells(), table, GRID) == []


@pytest.mark.parametrize("grid,scores,stop", [
    ({"ema_decay": (0.9, 0.99)}, {0.9: 2.0, 0.99: 1.0}, INVALID),        # 0.99 x 1.1 is not below 1
    ({"weight_decay": (0.0, 0.01)}, {0.0: 1.0, 0.01: 2.0}, NO_RATIO),    # no ratio steps beyond a 0
], ids=["invalid", "no ratio"])
def test_an_edge_the_axis_cannot_step_beyond_is_named_not_extended(grid, scores, stop):
    (axis,) = grid
    table = rows({("c", (v,)): fd for v, fd in scores.items()}, (axis,))
    found = edges(table, grid)
    assert list(found["stop"]) == [stop] and extension_cells(tune_cells(grid), table, grid) == []


def test_a_non_numeric_axis_has_no_edge_and_a_second_axis_keeps_the_chosen_value():
    grid = {"lr": (4e-3, 1e-2), "lr_schedule": ("constant", "cosine")}
    scores = {("c", (lr, schedule)): 1.0 if (lr, schedule) == (1e-2, "cosine") else 2.0
              for lr in grid["lr"] for schedule in grid["lr_schedule"]}
    table = rows(scores, ("lr", "lr_schedule"))
    assert list(edges(table, grid)["axis"]) == ["lr"]  # cosine is the last schedule listed, not an edge
    (cell,) = {c for c in extension_cells(tune_cells(grid), table, grid)}
    assert (cell.config.lr, cell.config.lr_schedule) == (0.025, "cosine")


class _Store:
    """A run folder's table and finished cells, in memory."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.frame, self.done = table, set()

    def table(self) -> pd.DataFrame:
        return self.frame

    def is_finished(self, cell: Cell) -> bool:
        return cell in self.done


def test_the_runner_extends_until_the_choice_is_interior_and_a_failed_cell_ends_the_loop(monkeypatch):
    # c's criterion falls with lr up to 0.025 and rises beyond; a's cell at 0.0016 fails (it writes no score)
    criterion = {4e-3: 3.0, 1e-2: 2.0, 2.5e-2: 1.5, 6.25e-2: 2.0}
    a, c = SPECS["a"].name, SPECS["c"].name
    store = _Store(rows({("a", (4e-3,)): 1.0, ("a", (1e-2,)): 2.0,
                         **{("c", (lr,)): criterion[lr] for lr in GRID["lr"]}}))
    ran = []

    def run_cells(plan, todo, store, run_id, worker_options, pace):
        assert len(ran) < 4, f"the loop goes on: {ran}"
        ran.append(planned(todo))
        scored = [cell for cell in todo if cell.variant == c]
        store.frame = pd.concat([store.frame, rows({("c", (cell.config.lr,)): criterion[cell.config.lr]
                                                    for cell in scored})], ignore_index=True)
        store.done |= set(scored)  # a failed cell is not finished: only --resume's next run retries it
        return len(todo) - len(scored)

    monkeypatch.setattr(runner, "_run_cells", run_cells)
    plan = SimpleNamespace(cells=tune_cells(), sweep=SimpleNamespace(tune=GRID))
    assert runner._extend_grids(plan, store, "t", {}, None) == 1
    assert ran == [{(a, 0.0016), (c, 0.025)}, {(c, 0.0625)}]
    found = edges(store.table(), GRID)
    assert list(found["variant"]) == [a] and list(found["stop"]) == [""]  # c is bracketed; a waits for --resume


def test_the_report_counts_extensions_against_the_grid_run_json_asked_for(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"config": {"tune": {"lr": [0.004, 0.01]}}}))
    assert read_tune(tmp_path) == {"lr": [0.004, 0.01]}
    (tmp_path / "run.json").write_text(json.dumps({"config": {}}))  # a run that tuned nothing
    assert read_tune(tmp_path) == {}
