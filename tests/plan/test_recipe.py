"""Recipe axes and tuned comparisons: a recipe changes a quality cell's training and nothing of its costs, the
tuned design never scores on the seeds or images it chose on, and bad recipe values are refused before any work."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.measure.quality.cells import scoring_reference
from bench.measure.quality.data import load_dataset
from bench.plan.cells import Cell
from bench.plan.options import SweepOptions
from bench.plan.planner import make_plan
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.bracket import MAX_EXTENSIONS
from bench.plan.tuning import TUNING_SEED_OFFSET, choices, tuned_cells
from bench.report.compute.load import normalise
from bench.schema import COST_KINDS, RECIPE_COLUMNS, columns


def plan(tmp_path, **options):
    return make_plan(SweepOptions(out=tmp_path / "run", preset="quick", **options))


def test_a_recipe_axis_changes_the_quality_cells_training_and_no_cost_cell(tmp_path):
    plain = plan(tmp_path)
    swept = plan(tmp_path, recipe={"lr": (4e-3, 1e-2), "lr_schedule": ("inv_sqrt",)})
    assert [c for c in swept.cells if c.kind in COST_KINDS] == [c for c in plain.cells if c.kind in COST_KINDS]
    quality = [c for c in swept.cells if c.kind == "quality"]
    plain_quality = [c for c in plain.cells if c.kind == "quality"]
    assert len(quality) == 2 * len(plain_quality)
    preset = QUALITY_PRESETS["quick"]
    for cell in quality:
        config = cell.config
        assert config.lr_schedule == "inv_sqrt" and config.lr in (4e-3, 1e-2)
        # everything else of the training is the preset's
        assert dataclasses.replace(config, lr=preset.lr, lr_schedule=preset.lr_schedule) == preset
        assert dataclasses.replace(cell, recipe=()) in plain_quality


def test_a_cell_s_recipe_is_part_of_its_id_and_columns(tmp_path):
    cell = next(c for c in plan(tmp_path).cells if c.kind == "quality")
    moved = dataclasses.replace(cell, recipe=(("lr", 0.01),))
    assert moved.id != cell.id and Cell.from_json(moved.to_json()) == moved
    row = moved.identity_columns()
    assert row["lr"] == 0.01 and row["weight_decay"] == QUALITY_PRESETS["quick"].weight_decay
    cost = next(c for c in plan(tmp_path).cells if c.kind == "cost").identity_columns()
    assert all(pd.isna(cost[name]) or cost[name] == "" for name in RECIPE_COLUMNS)  # costs carry no recipe


def test_tuning_cells_train_with_seeds_no_final_score_uses(tmp_path):
    tuned = plan(tmp_path, tune={"lr": (2e-3, 4e-3, 1e-2)})
    final = {s for c in tuned.cells if c.kind == "quality" for s in (c.seeds or (c.seed,))}
    tuning = [c for c in tuned.cells if c.kind == "tune"]
    assert tuning and {c.config.lr for c in tuning} == {2e-3, 4e-3, 1e-2}
    tuning_seeds = {s for c in tuning for s in (c.seeds or (c.seed,))}
    assert tuning_seeds.isdisjoint(final) and min(tuning_seeds) >= TUNING_SEED_OFFSET
    # --plan says what a point beyond the grid's edge costs: one variant's tuning cells at one point
    one = tuned.one_extension()
    assert len({(c.variant, c.recipe) for c in one}) == 1
    assert len(one) == len(tuning) // (3 * len({c.variant for c in tuning}))  # 3 points
    assert f"up to {MAX_EXTENSIONS} points beyond that edge, each {len(one)} tuning cell(s)" in tuned.describe()


def test_tuning_scores_on_held_out_images_the_final_scores_and_the_loss_never_see():
    config = QUALITY_PRESETS["quick"]
    data = load_dataset(config.dataset, split_seed=config.split_seed)
    final, where = scoring_reference(data, config, tuning=False)
    validation, what = scoring_reference(data, config, tuning=True)
    assert len(final) == len(validation) == config.eval_n
    used = {tuple(x.flatten().tolist()) for x in data.heldout_x[: max(config.eval_n, config.loss_eval_n)]}
    assert not used & {tuple(x.flatten().tolist()) for x in validation}
    assert where.startswith("reference: held-out images 0 to") and what.startswith("validation: held-out images")


def _rows(kind, variant, lr, seed, fd):
    row = dict.fromkeys(columns(), "")
    row.update(run_id="t", cell_id=f"{kind}-{variant}-{lr}-{seed}", kind=kind, variant=variant, rung="",
               quality_preset="quick", base_config="digits8_ch16", dataset="digits", device="cpu", seed=seed,
               phase="sample", metric="fd", value=fd, unit="fd", status="ok", block="total", n=250, step=1500,
               lr=lr, lr_schedule="constant", weight_decay=0.01, ema_decay=0.99)
    return row


def test_the_choice_reads_only_tuning_rows_so_a_lucky_final_score_cannot_pick_the_recipe():
    rows = [_rows("tune", "a", lr, seed, fd) for lr, fd in ((4e-3, 2.0), (1e-2, 1.0)) for seed in (10000, 10001)]
    # the final scores favour 4e-3 by far; were they read, 4e-3 would be chosen
    rows += [_rows("quality", "a", lr, seed, fd) for lr, fd in ((4e-3, 0.1), (1e-2, 9.0)) for seed in (0, 1)]
    chosen = choices(normalise(pd.DataFrame(rows, columns=list(columns()))))
    assert list(chosen["lr"]) == [1e-2] and chosen["criterion"].iloc[0] == 1.0


def test_a_tie_goes_to_the_preset_s_own_recipe_and_a_diverged_point_is_never_chosen():
    rows = [_rows("tune", "a", lr, 10000, fd) for lr, fd in ((2e-3, 1.0), (4e-3, 1.0), (1e-2, np.nan), (2e-2, np.inf))]
    chosen = choices(normalise(pd.DataFrame(rows, columns=list(columns()))))
    assert list(chosen["lr"]) == [4e-3]


def test_the_chosen_cells_train_the_chosen_point_with_the_usual_seeds(tmp_path):
    tuned = plan(tmp_path, tune={"lr": (4e-3, 1e-2)})
    quality = [c for c in tuned.cells if c.kind == "quality"]
    rows = [_rows("tune", c.variant, 1e-2, 10000, 1.0) for c in quality] + \
        [_rows("tune", c.variant, 4e-3, 10000, 2.0) for c in quality]
    again = tuned_cells(tuned.cells, normalise(pd.DataFrame(rows, columns=list(columns()))))
    assert len(again) == len(quality)
    assert all(c.config.lr == 1e-2 and c.kind == "quality" for c in again)
    assert {(c.seed, c.seeds) for c in again} == {(c.seed, c.seeds) for c in quality}


BAD_RECIPES = [
    (["--axis", "lr=-1"], "lr=-1.0 is invalid; valid: a positive float"),
    (["--axis", "lr=fast"], "lr='fast' is invalid; valid: a positive float"),
    (["--axis", "lr_schedule=linear"], "lr_schedule='linear' is invalid; valid: constant, cosine, inv_sqrt"),
    (["--axis", "weight_decay=-0.1"], "weight_decay=-0.1 is invalid; valid: a float >= 0"),
    (["--axis", "ema_decay=1"], "ema_decay=1.0 is invalid; valid: a float in [0, 1)"),
    (["--tune", "lr=0.01"], "--tune lr=0.01 has 1 point; valid: two values or more"),
    (["--tune", "upsample=nearest_conv,conv_transpose"], "--tune upsample: only recipe axes are tuned"),
    (["--tune", "lr=0.004,0.01", "--axis", "lr=0.002"], "a recipe axis is either swept for every variant or tuned"),
    (["--axis", "lr=0.01", "--axis", "lr=0.02"], "--axis lr"),
]


@pytest.mark.parametrize("args,message", BAD_RECIPES, ids=[m for _, m in BAD_RECIPES])
def test_bad_recipe_values_are_refused_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--preset", "smoke", *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
