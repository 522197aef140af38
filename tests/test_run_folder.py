"""A run folder: damage set aside or named, never fatal; and a batch of one end to end."""
import json
import shutil

import pandas as pd
import pytest

from bench.cli import main
from test_runner import SMALL, bench, refused

@pytest.fixture(scope="module")
def batch_of_one(tmp_path_factory):
    """The smoke preset's cost cells at batch size 1, run as a new user would."""
    out = tmp_path_factory.mktemp("b1") / "run"
    result = bench("run", "--out", str(out), *SMALL, "--batch-size", "1", timeout=600)
    return out, result


def test_batch_size_one_measures_every_cost_cell(batch_of_one):
    out, result = batch_of_one
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(out / "metrics.parquet")
    assert table["cell_id"].nunique() == 2 and set(table["batch_size"]) == {1}
    assert set(table["status"]) == {"ok"}, table[table["status"] != "ok"][["metric", "message"]]
    assert {"flops", "model_flops", "peak_rss_bytes", "images_per_s"} <= set(table["metric"])


def test_a_damaged_part_is_set_aside_and_its_cell_measured_again(batch_of_one, tmp_path):
    original, _ = batch_of_one
    out = tmp_path / "run"
    shutil.copytree(original, out)
    part = sorted((out / "cells").glob("*.parquet"))[0]
    truncated = part.read_bytes()[:100]  # as a full disk or a copy cut short leaves it
    part.write_bytes(truncated)
    result = bench("run", "--out", str(out), "--resume", *SMALL, "--batch-size", "1", timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"warning: {part} is damaged (" in result.stderr
    assert f"moved it to {out / 'damaged' / part.name}, and its cell will be measured again" in result.stderr
    assert "2 cells, 1 already finished, 1 to run" in result.stdout
    assert (out / "damaged" / part.name).read_bytes() == truncated
    table = pd.read_parquet(out / "metrics.parquet")  # rebuilt from the parts: both cells, once each
    assert table["cell_id"].nunique() == 2 and part.stem in set(table["cell_id"])
    assert len(pd.read_csv(out / "metrics.csv")) == len(table)


@pytest.mark.parametrize("name", ["run.json", "env.json"])
def test_a_damaged_run_or_env_file_is_named_with_what_to_do(batch_of_one, tmp_path, capsys, name):
    original, _ = batch_of_one
    out = tmp_path / "run"
    shutil.copytree(original, out)
    (out / name).write_text('{"run_id": "a\x01b"}')
    err = refused(capsys, "run", "--out", str(out), "--resume", *SMALL, "--batch-size", "1")
    assert err.startswith(f"error: {out / name} is damaged (Invalid control character at: line 1 column 14")
    assert "restore it from a copy" in err and err.count("\n") == 1


def test_merge_and_report_name_a_damaged_file(batch_of_one, tmp_path, capsys):
    original, _ = batch_of_one
    out = tmp_path / "run"
    shutil.copytree(original, out)
    part = sorted((out / "cells").glob("*.parquet"))[0]
    part.write_bytes(b"not parquet")
    err = refused(capsys, "merge", str(out), "--out", str(tmp_path / "merged"))
    assert err.startswith(f"error: merge: {part} is damaged (") and f"run --resume --out {out}" in err
    (out / "metrics.parquet").write_bytes(b"not parquet")
    err = refused(capsys, "report", str(out))
    assert err.startswith(f"error: {out / 'metrics.parquet'} is damaged (") and "to rebuild it from the cell parts" in err
    (out / "metrics.parquet").unlink()
    (out / "env.json").write_text("[1, 2]")
    err = refused(capsys, "report", str(out))
    assert f"{out / 'env.json'} is damaged (it holds a JSON list; valid: an object)" in err
