"""The command line of `bench run` as data: every option, its bounds, and the checks that need no sweep."""
from __future__ import annotations

import importlib
import importlib.util
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.plan.recipe import RECIPE_AXES, parse_recipe_option
from variants import AXES, parse_axis

BACKENDS = ("local", "ray", "slurm")
EXTRAS = {"ray": ("ray", "pip install 'unet-ablation-bench[ray]'  (or: pip install ray)"),
          "slurm": ("submitit", "pip install 'unet-ablation-bench[slurm]'  (or: pip install submitit)")}


@dataclass(frozen=True)
class BackendOptions:
    name: str = "local"
    ray_address: str | None = None     # None: ray.init() finds a running cluster or starts a local one
    slurm_cluster: str | None = None   # submitit's AutoExecutor cluster: None (auto: slurm), "local", "debug"
    slurm_partition: str | None = None
    slurm_time_min: int = 60
    slurm_gpus: int = 0                # per job; cells on CUDA get at least 1


def check_backend(options: BackendOptions) -> None:
    if options.name not in BACKENDS:
        raise ValueError(f"--backend {options.name!r} is invalid; valid: {', '.join(BACKENDS)}")
    if options.name in EXTRAS:
        module, install = EXTRAS[options.name]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"--backend {options.name} needs the {module} package, which is not installed; "
                             f"install it with: {install}")
    if options.slurm_time_min < 1:
        raise ValueError(f"--slurm-time {options.slurm_time_min} is invalid; valid: minutes, a positive integer")


PARTS = ("cost", "quality")
# Beyond these a count is a typo, and would fail only later: torch takes threads as a C int, every seed is a
# cell planned up front, and no batch this large fits a device. Keyed by SweepOptions field; the flag is derived.
MAXIMA = {"threads": 1024, "batch_size": 65536, "seeds": 1000, "jobs": 1024, "seeds_at_once": 64, "tune_seeds": 1000}


@dataclass(frozen=True)
class SweepOptions:
    """The command line. ``None`` (or an empty ``axes``) takes the sweep's own value."""

    out: Path
    preset: str = "quick"
    sweep_file: Path | None = None          # a TOML sweep; replaces the preset
    devices: tuple[str, ...] | None = None  # cpu, cuda, auto
    resume: bool = False
    threads: int = 2
    base: str | None = None                 # BASES key or a UNetSpec JSON
    batch_size: int | None = None
    axes: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # override the sweep's, axis by axis
    recipe: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # recipe axes (bench/plan/recipe.py), the same way
    tune: dict[str, tuple[Any, ...]] = field(default_factory=dict)    # a recipe grid each variant picks its point from
    tune_seeds: int | None = None           # tuning seeds per grid point
    design: str | None = None
    generator: str | None = None            # a fractional design's generator (pydoe's words, one per axis)
    parts: tuple[str, ...] = PARTS
    seeds: int | None = None
    seeds_at_once: int | None = None        # seeds of one variant trained together in one quality cell
    plugins: tuple[str, ...] = ()           # modules to import first: they register extra variants and axes
    cache_dir: Path = Path(".cache")
    shard: tuple[int, int] | None = None    # (k, n): run the k-th of n deterministic slices of the cells
    quality: tuple[str, ...] | None = None  # bench.plan.quality_presets.QUALITY_PRESETS keys
    backend: BackendOptions = field(default_factory=BackendOptions)
    peers: tuple[str, ...] | None = None
    memory_formats: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    compile: tuple[str, ...] | None = None  # bench.plan.execution.COMPILE_MODES
    jobs: int | None = None
    time_limit: float | None = None         # seconds: at this much wall time the run stops, keeping what finished
    precision: float | None = None          # % points: timing rounds stop when every main effect is this precise
    processes: int | None = None            # fresh worker processes a timing cell's rounds are spread over


def flag(field_name: str) -> str:
    """The command-line flag of a SweepOptions field."""
    return "--" + field_name.replace("_", "-")


def check_counts(options: SweepOptions) -> None:
    """Every count option within 1 and its maximum (None: the sweep's own)."""
    for name, maximum in MAXIMA.items():
        value = getattr(options, name)
        if value is not None and not 1 <= value <= maximum:
            raise ValueError(f"{flag(name)} {value} is invalid; valid: an integer from 1 to {maximum}")


def parse_axes(texts: list[str], option: str = "--axis"
               ) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
    """Every ``NAME=V1,V2`` of a repeatable option -> (architecture axes, recipe axes), each value typed and
    checked; an axis given twice is refused, naming both (which one was meant is not ours to guess)."""
    architecture: dict[str, tuple[Any, ...]] = {}
    recipe: dict[str, tuple[Any, ...]] = {}
    given: dict[str, str] = {}
    for text in texts:
        name = text.partition("=")[0].strip()
        if name in given:
            raise ValueError(f"{option} {name} is given twice ({given[name]!r} and {text!r}); valid: each axis once, "
                             f"with all its values: {option} {name}=V1,V2")
        given[name] = text
        if name in RECIPE_AXES:
            recipe.__setitem__(*parse_recipe_option(text, option))
        elif name in AXES:
            architecture.__setitem__(*parse_axis(text))
        else:
            raise ValueError(f"{option} {text!r} is invalid; valid: NAME=V1,V2 with NAME an axis ({', '.join(AXES)}) "
                             f"or a recipe axis ({', '.join(RECIPE_AXES)})")
    return architecture, recipe


def import_plugins(modules: tuple[str, ...] | list[str]) -> None:
    """Import the user's modules; any failure is a ValueError of one line (the command line prints it), not a
    traceback: a block the registry refuses (the old signature), or any error in the module's own code."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"--import {module!r} cannot be imported: {err}") from err
        except Exception as err:
            failure = plugin_failure(err, (module,))
            raise ValueError(failure or f"--import {module!r} failed: {_one_line(err)}") from err


def plugin_failure(err: BaseException, modules: tuple[str, ...] | list[str]) -> str | None:
    """One line saying which plugin's code raised ``err``, where, and what: ``--import 'mod' failed at
    path:line (in function): Type: message``, from the innermost frame of its traceback in one of ``modules`` (or a
    module inside one); None when no frame is in a plugin, so an error of the tool's own keeps its traceback."""
    found = None
    for frame, line in traceback.walk_tb(err.__traceback__):
        name = frame.f_globals.get("__name__", "")
        plugin = next((m for m in modules if name == m or name.startswith(f"{m}.")), None)
        if plugin is not None:
            found = plugin, frame.f_code, line
    if found is None:
        return None
    plugin, code, line = found
    path = os.path.relpath(code.co_filename)
    path = code.co_filename if path.startswith("..") else path
    where = f"{path}:{line}" + ("" if code.co_name == "<module>" else f" (in {code.co_qualname})")
    return f"--import {plugin!r} failed at {where}: {_one_line(err)}"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def parse_shard(text: str) -> tuple[int, int]:
    """``k/n`` with 1 <= k <= n: a slice chosen by cell id, so it is the same on every machine."""
    k, sep, n = text.partition("/")
    if not sep or not k.isdecimal() or not n.isdecimal() or not 1 <= int(k) <= int(n):
        raise ValueError(f"--shard {text!r} is invalid; valid: K/N with 1 <= K <= N, e.g. 2/4")
    return int(k), int(n)
