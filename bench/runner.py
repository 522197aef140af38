"""Plans a sweep into cells and runs them one worker process at a time, with progress and resume."""
from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from variants import AXES, UNetSpec, grid

from . import envinfo
from .backends import BackendOptions, check_backend, execute
from .cells import TIMED_KINDS, Cell
from .measure.execution import executions
from .measure.rounds import memory_budget, timing_cells
from .peers import get_peer
from .presets import BASES, Preset, get_preset
from .lock import hold_run_folder
from .store import RunStore, atomic_write_text, read_json, rows_frame

PARTS = ("cost", "quality")
FAILED = ("error", "oom")  # statuses of a measurement or cell that did not finish cleanly
# Beyond these a count is a typo, and would fail only later: torch takes threads as a C int, every seed is a
# cell planned up front, and no batch this large fits a device.
MAXIMA = {"--threads": 1024, "--batch-size": 65536, "--seeds": 1000, "--jobs": 1024}


@dataclass(frozen=True)
class SweepOptions:
    preset: str
    out: Path
    devices: tuple[str, ...] = ("cpu",)
    resume: bool = False
    threads: int = 2
    base: str | None = None                 # BASES key or a UNetSpec JSON; default: the preset's
    batch_size: int | None = None           # default: the preset's
    axes: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # overrides of the preset's axes
    parts: tuple[str, ...] = PARTS
    seeds: int | None = None
    plugins: tuple[str, ...] = ()           # modules to import first: they register extra variants
    cache_dir: Path = Path(".cache")
    shard: tuple[int, int] | None = None    # (k, n): run the k-th of n deterministic slices of the cells
    quality: str | None = None              # bench.quality.QUALITY_PRESETS key; default: the preset's
    backend: BackendOptions = BackendOptions()
    peers: tuple[str, ...] = ()             # bench.peers names, measured at the base spec beside our variants
    memory_formats: tuple[str, ...] = ("contiguous",)  # execution options of cost cells, swept like axes
    dtypes: tuple[str, ...] = ("float32",)
    compile: tuple[bool, ...] = (False,)
    jobs: int | None = None                 # untimed cells at once on the local backend; default: the preset's

    def untimed_jobs(self) -> int:
        return self.jobs or get_preset(self.preset).jobs

    def config(self) -> dict[str, Any]:
        """What must match for --resume to continue a run (not where or how it runs)."""
        data = dataclasses.asdict(self)
        for key in ("out", "resume", "cache_dir", "backend"):
            data.pop(key)
        data["axes"] = {k: list(v) for k, v in sorted(self.axes.items())}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def validate(options: SweepOptions) -> None:
    """Every option is checked here, before any work starts."""
    for module in options.plugins:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"--import {module!r} cannot be imported: {err}") from err
    get_preset(options.preset)
    for device in options.devices:
        if device == "cpu":
            continue
        if device != "cuda":
            raise ValueError(f"--device {device!r} is invalid; valid: cpu, cuda, auto (comma-separated)")
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for, but torch sees no CUDA device "
                             f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu")
    if not options.devices:
        raise ValueError("--device: no device given; valid: cpu, cuda, auto")
    for option, value in (("--threads", options.threads), ("--batch-size", options.batch_size),
                          ("--seeds", options.seeds), ("--jobs", options.jobs)):
        if value is not None and not 1 <= value <= MAXIMA[option]:
            raise ValueError(f"{option} {value} is invalid; valid: an integer from 1 to {MAXIMA[option]}")
    if not options.parts:
        raise ValueError(f"--only: no part given; valid: {', '.join(PARTS)} (comma-separated)")
    for part in options.parts:
        if part not in PARTS:
            raise ValueError(f"--only {part!r} is invalid; valid: {', '.join(PARTS)}")
    check_backend(options.backend)
    if options.quality is not None and "quality" in options.parts:
        _check_quality_preset(options.quality)
    plan(options)  # builds (and so validates) every spec


def _check_quality_preset(name: str) -> None:
    from .quality import QUALITY_PRESETS, InceptionUnavailable, require_inception

    if name not in QUALITY_PRESETS:
        raise ValueError(f"--quality {name!r} is invalid; valid: {', '.join(QUALITY_PRESETS)}")
    if QUALITY_PRESETS[name].inception_fid:
        try:
            require_inception()  # offline or without torch-fidelity: say so now, not after hours of training
        except InceptionUnavailable as err:
            raise ValueError(f"--quality {name}: {err}") from err


def resolve_base(name_or_json: str) -> tuple[str, UNetSpec]:
    if name_or_json in BASES:
        return name_or_json, BASES[name_or_json]
    if name_or_json.lstrip().startswith("{"):
        try:
            spec = UNetSpec.from_json(name_or_json)
        except ValueError as err:
            raise ValueError(f"--base: {err}") from err
        return f"custom-{spec.hash}", spec
    raise ValueError(f"--base {name_or_json!r} is invalid; valid: {', '.join(BASES)} or a UNetSpec as JSON")


def plan(options: SweepOptions) -> list[Cell]:
    preset = get_preset(options.preset)
    axes = preset.axes | options.axes
    cells: list[Cell] = []
    if "cost" in options.parts:
        base_name, base = resolve_base(options.base or preset.base)
        batch = options.batch_size or preset.batch_size
        for peer in options.peers:
            get_peer(peer)  # an unknown name fails here; a missing package becomes a 'skipped' row
        for device in options.devices:
            for execution in executions(device, options.memory_formats, options.dtypes, options.compile):
                common = dict(batch_size=batch, threads=options.threads, base_config=base_name, dtype=execution.dtype,
                              memory_format=execution.memory_format, compile=execution.compile)
                costs = [Cell("cost", spec, device, **common) for spec in _variants(base, axes)]
                costs += [Cell("cost", base, device, peer=peer, **common) for peer in options.peers]
                cells += costs + timing_cells(costs, memory_budget(device))
    if "quality" in options.parts and (options.quality or preset.quality):
        cells += _quality_cells(options.quality or preset.quality, preset, options, axes)
    if options.shard:
        k, n = options.shard
        cells = [c for c in cells if int(c.id, 16) % n == k - 1]
    return cells


def _variants(base: UNetSpec, axes: dict[str, tuple[Any, ...]]) -> list[UNetSpec]:
    """Every combination of the axis values around a valid base: a spec it refuses is the axes' fault."""
    try:
        return list(grid(base, **axes))
    except ValueError as err:
        raise ValueError(f"--axis: {err}") from err


def parse_shard(text: str) -> tuple[int, int]:
    """``k/n`` with 1 <= k <= n: a slice chosen by cell id, so it is the same on every machine."""
    k, sep, n = text.partition("/")
    if not sep or not k.isdecimal() or not n.isdecimal() or not 1 <= int(k) <= int(n):
        raise ValueError(f"--shard {text!r} is invalid; valid: K/N with 1 <= K <= N, e.g. 2/4")
    return int(k), int(n)


def _quality_cells(name: str, preset: Preset, options: SweepOptions,
                   axes: dict[str, tuple[Any, ...]]) -> list[Cell]:
    from .quality import QUALITY_PRESETS

    config = QUALITY_PRESETS[name]
    device = "cuda" if "cuda" in options.devices else "cpu"
    seeds = range(options.seeds or preset.seeds)
    # Untimed cells run `jobs` at a time and share the threads between them.
    threads = max(1, options.threads // options.untimed_jobs())
    common = dict(device=device, threads=threads, dataset=name, base_config=name)
    # Checkpointing changes no function: train each functional variant once, and check that claim instead.
    functional = _variants(config.base, axes | {"checkpoint": (False,)})
    cells = [Cell("floor", None, seed=seed, **common) for seed in seeds]
    cells += [Cell("quality", spec, seed=seed, **common) for spec in functional for seed in seeds]
    if True in axes.get("checkpoint", ()):
        cells.append(Cell("check", functional[0].replace(checkpoint=True), seed=0, **common))
    return cells


def run_sweep(options: SweepOptions, argv: list[str]) -> pd.DataFrame:
    """Validate every option, then run the sweep holding the folder's lock: one writer per run folder."""
    validate(options)
    with hold_run_folder(options.out):
        return _sweep(options, argv)


def _sweep(options: SweepOptions, argv: list[str]) -> pd.DataFrame:
    preset = get_preset(options.preset)
    store = RunStore(options.out)
    run_id = store.open(options.config(), options.resume,
                        run_id=f"{options.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    env = envinfo.describe(options.threads, argv)
    env_file = options.out / "env.json"
    if options.resume and env_file.exists():
        _note_earlier_revisions(env, read_json(env_file, "restore it from a copy, or delete it: this run writes a "
                                                         "new one, without the revisions of earlier cells"))
    atomic_write_text(env_file, _json(env))
    cells = plan(options)
    todo = [c for c in cells if not store.is_finished(c)]
    print(f"{run_id}: {len(cells)} cells, {len(cells) - len(todo)} already finished, {len(todo)} to run "
          f"-> {options.out}", flush=True)
    worker_options = {"rounds": dataclasses.asdict(preset.rounds), "cache_dir": str(options.cache_dir.resolve())}
    jobs = options.untimed_jobs()
    progress = Progress(todo, preset.seconds_per_cell, jobs if options.backend.name == "local" else 1)
    failed = 0
    try:
        for result in execute(todo, options.out.resolve(), options.plugins, worker_options, options.backend, jobs):
            frame = rows_frame(run_id, result.cell, result.rows, device_name=result.device_name, host=result.host)
            store.write_cell(frame, result.cell)
            store.consolidate()
            failed += bool(frame["status"].isin(FAILED).any())
            progress.done(result.cell, result.seconds, cell_outcome(frame))
    except KeyboardInterrupt:
        print(f"\ninterrupted: every finished cell is kept in {options.out}; rerun with --resume to finish",
              file=sys.stderr)
        raise
    finally:
        env["load_end"] = envinfo.load_average()
        atomic_write_text(env_file, _json(env))
        if store.scratch.exists() and not any(store.scratch.iterdir()):
            store.scratch.rmdir()
    table = store.consolidate()
    if failed:
        print(f"{failed} cell(s) did not finish cleanly; see the status and message columns", file=sys.stderr)
    return table


def _note_earlier_revisions(env: dict, earlier_env: dict) -> None:
    """Cells finished before a resume keep the numbers of the code that measured them: say so when the
    code has changed since, and keep every revision that contributed in env.json."""
    earlier = set(earlier_env.get("earlier_revisions", [])) | {earlier_env.get("git_revision")}
    earlier -= {None, env.get("git_revision")}
    if earlier:
        env["earlier_revisions"] = sorted(earlier)
        print(f"warning: cells already finished in this folder were measured at git revision(s) "
              f"{', '.join(sorted(earlier))}, not {env.get('git_revision')}; they are kept as they are",
              file=sys.stderr)


def cell_outcome(frame: pd.DataFrame) -> str:
    """One line for a finished cell: ``error`` or ``oom`` if the cell itself failed (a ``cell`` row: its model
    did not build, its worker died), ``skipped`` if the whole cell was (a peer whose package is missing),
    ``partial`` naming the measurements that failed while the others were kept, else ``ok``, noting
    measurements that do not apply to it (a peer's or a non-default execution's peak RSS), which are rows of
    their own, not failures."""
    cell_rows = frame[frame["phase"] == "cell"]
    for status in (*FAILED, "skipped"):
        if (cell_rows["status"] == status).any():
            return status
    failed = frame[frame["status"].isin(FAILED)]
    if len(failed):
        names = ", ".join(f"{p} {m} ({s})" for p, m, s in failed[["phase", "metric", "status"]].itertuples(index=False))
        return f"partial: {names} failed, the other measurements are kept"
    skipped = int((frame["status"] == "skipped").sum())
    return f"ok ({skipped} measurement(s) not applicable, status skipped)" if skipped else "ok"


class Progress:
    """Prints one line per cell with the time left, estimated per kind from cells done so far; untimed
    kinds run ``jobs`` at a time, so their time left is divided by it."""

    def __init__(self, todo: list[Cell], prior: dict[str, float], jobs: int = 1) -> None:
        self.remaining = {kind: sum(c.kind == kind for c in todo) for kind in {c.kind for c in todo}}
        self.prior = prior
        self.jobs = jobs
        self.spent: dict[str, list[float]] = {}
        self.total, self.count, self.start = len(todo), 0, time.perf_counter()

    def done(self, cell: Cell, seconds: float, status: str) -> None:
        self.count += 1
        self.remaining[cell.kind] -= 1
        self.spent.setdefault(cell.kind, []).append(seconds)
        left = sum(n * self._per_cell(kind) / (1 if kind in TIMED_KINDS else self.jobs)
                   for kind, n in self.remaining.items())
        elapsed = time.perf_counter() - self.start
        print(f"[{self.count}/{self.total}] {cell.label}: {status}, {seconds:.1f} s "
              f"(elapsed {_clock(elapsed)}, about {_clock(left)} left)", flush=True)

    def _per_cell(self, kind: str) -> float:
        spent = self.spent.get(kind)
        return sum(spent) / len(spent) if spent else self.prior.get(kind, 30.0)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def _json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def parse_axis(text: str) -> tuple[str, tuple[Any, ...]]:
    """``name=v1,v2`` -> (name, values) with each value typed like the axis (int, bool or str)."""
    name, sep, values = text.partition("=")
    if not sep or name not in AXES or not values:
        raise ValueError(f"--axis {text!r} is invalid; valid: NAME=V1,V2 with NAME one of {', '.join(AXES)}")
    parsed = []
    for value in values.split(","):
        if name == "attn_heads":
            if not value.isdecimal():
                raise ValueError(f"--axis attn_heads value {value!r} is invalid; valid: positive integers")
            parsed.append(int(value))
        elif name == "checkpoint":
            if value.lower() not in ("true", "false", "on", "off", "1", "0"):
                raise ValueError(f"--axis checkpoint value {value!r} is invalid; valid: true, false")
            parsed.append(value.lower() in ("true", "on", "1"))
        else:
            parsed.append(value)
    return name, tuple(parsed)
