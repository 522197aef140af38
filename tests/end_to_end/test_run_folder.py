"""A run folder: one writer at a time, damage set aside or named, never fatal; and a batch of one end to end."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import pandas as pd
import pytest

from bench.store.lock import HOLDER_FILE, hold_run_folder

from helpers import ENV, ROOT, SMALL, bench, refused

# Holds a folder's lock through the same code as `bench run`, until killed.
HOLD = ("import sys, time; from pathlib import Path; from bench.store.lock import hold_run_folder\n"
        "with hold_run_folder(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(300)\n")


@pytest.fixture
def holder(tmp_path):
    """Another process holding ``tmp_path / 'run'``'s lock."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    yield out, proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("resume", [[], ["--resume"]], ids=["fresh", "resume"])
def test_a_second_run_on_a_held_folder_exits_2_naming_the_holder(holder, capsys, resume):
    out, proc = holder
    err = refused(capsys, "run", "--out", str(out), *SMALL, *resume)
    assert f"--out {out} is in use by another run (host {socket.gethostname()}, pid {proc.pid}, started 20" in err
    assert err.strip().endswith("wait for it to finish, or choose another --out") and err.count("\n") == 1
    assert not (out / "run.json").exists()  # nothing written


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(holder, capsys):
    out, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / HOLDER_FILE).exists()  # a SIGKILL leaves it; the OS released the lock itself
    with hold_run_folder(out):
        assert json.loads((out / HOLDER_FILE).read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert f"taking over the lock of {out} from a run that no longer exists (host {socket.gethostname()}, " \
           f"pid {proc.pid}, started " in err
    assert not (out / HOLDER_FILE).exists()


def test_a_stale_holder_file_is_taken_over_and_a_damaged_one_is_named(tmp_path, capsys):
    (tmp_path / HOLDER_FILE).write_text(json.dumps({"host": "gone", "pid": 999999, "started": "2020-01-01T00:00:00"}))
    with hold_run_folder(tmp_path):
        pass
    assert "no longer exists (host gone, pid 999999, started 2020-01-01T00:00:00)" in capsys.readouterr().err
    (tmp_path / HOLDER_FILE).write_text("{not json")
    with hold_run_folder(tmp_path):
        pass
    assert f"holder unknown: {tmp_path / HOLDER_FILE} is missing or unreadable" in capsys.readouterr().err


def test_batch_size_one_measures_every_cost_cell(smoke_run):
    out = smoke_run  # the smoke preset's cost cells at batch size 1, run as a new user would (it exited 0)
    table = pd.read_parquet(out / "metrics.parquet")
    assert table["cell_id"].nunique() == 3 and set(table["batch_size"]) == {1}  # 2 cost cells and their timing cell
    not_ok = table[table["status"] != "ok"]  # a batch-1 step may not lift the resident set: it says so
    assert (not_ok["metric"] == "peak_rss_bytes").all() and (not_ok["status"] == "skipped").all(), not_ok
    assert not_ok["message"].str.startswith("below what the resident set resolves").all(), not_ok["message"]
    assert {"flops", "model_flops", "peak_rss_bytes", "images_per_s"} <= set(table["metric"])
    assert not (out / HOLDER_FILE).exists() and (out / ".lock").exists()


def test_a_damaged_part_is_set_aside_and_its_cell_measured_again(smoke_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(smoke_run, out)
    part = sorted((out / "cells").glob("*.parquet"))[0]
    truncated = part.read_bytes()[:100]  # as a full disk or a copy cut short leaves it
    part.write_bytes(truncated)
    result = bench("run", "--out", str(out), "--resume", *SMALL, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"warning: {part} is damaged (" in result.stderr
    assert f"moved it to {out / 'damaged' / part.name}, and its cell will be measured again" in result.stderr
    assert "3 cells, 2 already finished, 1 to run" in result.stdout
    assert (out / "damaged" / part.name).read_bytes() == truncated
    table = pd.read_parquet(out / "metrics.parquet")  # rebuilt from the parts: every cell, once each
    assert table["cell_id"].nunique() == 3 and part.stem in set(table["cell_id"])
    assert len(pd.read_csv(out / "metrics.csv")) == len(table)


@pytest.mark.parametrize("name", ["run.json", "env.json"])
def test_a_damaged_run_or_env_file_is_named_with_what_to_do(smoke_run, tmp_path, capsys, name):
    out = tmp_path / "run"
    shutil.copytree(smoke_run, out)
    (out / name).write_text('{"run_id": "a\x01b"}')
    err = refused(capsys, "run", "--out", str(out), "--resume", *SMALL)
    assert err.startswith(f"error: {out / name} is damaged (Invalid control character at: line 1 column 14")
    assert "restore it from a copy" in err and err.count("\n") == 1


def test_merge_and_report_name_a_damaged_file(smoke_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(smoke_run, out)
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


def test_an_out_that_cannot_be_a_folder_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    err = refused(capsys, "run", "--out", str(tmp_path / "file"), *SMALL)
    assert err == f"error: --out {tmp_path / 'file'} cannot be a run folder (File exists); valid: a folder you can " \
                  "write, new or holding a run\n"
