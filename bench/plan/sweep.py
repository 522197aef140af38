"""Sweeps as TOML files: what `python -m bench run --preset NAME` or `--sweep FILE` measures.

The named presets are the ``*.toml`` files beside this module; a user's sweep file has the same keys (every
one optional but what it changes). A file is checked completely when it is read, so a bad key or value fails
before any work, naming the key, the value and what is valid.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.plan.designs import DESIGNS, Rung
from bench.plan.execution import COMPILE_MODES, DTYPES, MEMORY_FORMATS, Execution, compile_mode
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.recipe import RECIPE_AXES
from bench.schema import DEFAULT_EXECUTION
from variants import AXES, BASES, UNetSpec

DEVICES = ("cpu", "cuda", "auto")
PRESET_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class RoundsBudget:
    """How long a timing cell times its models in randomized rounds (bench/measure/timing_cell.py)."""

    warmup: int = 2              # untimed calls per model and phase before the first round
    block_seconds: float = 0.2   # a block repeats the call until it lasts this long (one timed call decides)
    min_rounds: int = 10
    max_seconds: float = 300.0   # the cap: no new round starts after this much time in rounds (min_rounds first)
    seed: int = 0                # round r's order is drawn from (seed, r)
    precision: float = 1.0       # stop once every main effect's 95% interval is within +- this many % points
    processes: int = 3           # fresh worker processes the rounds are spread over (1: the cell's own worker)

    def __post_init__(self) -> None:
        if (self.warmup < 0 or self.min_rounds < 2 or self.block_seconds <= 0 or self.max_seconds < 0
                or not self.precision > 0 or self.processes < 1):
            raise ValueError(f"rounds budget {self} is invalid; valid: warmup >= 0, min_rounds >= 2, "
                             "block_seconds > 0, max_seconds >= 0, precision > 0 (percentage points), "
                             "processes >= 1")


@dataclass(frozen=True)
class Sweep:
    """A sweep's declaration. CLI options given explicitly override it."""

    name: str
    description: str = ""
    base: str | UNetSpec = "fmnist28"   # a BASES key, or a spec of its own
    batch_size: int = 16                # of the cost cells
    design: str = "factorial"           # bench.plan.designs.DESIGNS
    generator: str | None = None        # fractional: pydoe's generator, one word per axis (None: resolution IV)
    axes: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # factorial: the default grid's unless given
    rungs: tuple[Rung, ...] = ()        # design "ladder": cumulative steps, each setting one or more axes
    devices: tuple[str, ...] = ("cpu",)
    # execution options of the cost cells, swept like axes
    memory_formats: tuple[str, ...] = (DEFAULT_EXECUTION["memory_format"],)
    dtypes: tuple[str, ...] = (DEFAULT_EXECUTION["dtype"],)
    compile: tuple[str, ...] = ("off",)  # bench.plan.execution.COMPILE_MODES
    # further settings, each measured on the base network alone (with its A/A copy): what an option does to the
    # baseline's speed and memory, at a fraction of the cells of a setting in the product above
    baseline_executions: tuple[Execution, ...] = ()
    peers: tuple[str, ...] = ()         # bench.models.peers names, measured at the base spec beside our variants
    rounds: RoundsBudget = RoundsBudget()  # timing of every model of a setting, in randomized rounds
    quality: tuple[str, ...] = ()       # bench.plan.quality_presets.QUALITY_PRESETS keys; none: cost only
    recipe: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # recipe axes swept on the quality cells
    tune: dict[str, tuple[Any, ...]] = field(default_factory=dict)    # a recipe grid each variant picks its point from
    tune_seeds: int = 2                 # tuning seeds per grid point (bench/plan/tuning.py)
    seeds: int = 1                      # quality seeds per functional variant
    seeds_at_once: int = 1              # seeds of one variant trained together in one quality cell (packed)
    jobs: int = 1                       # untimed cells (quality, floor, check) at once on the local backend
    axes_source: str = "--axis"         # where the axes came from, for error messages: --axis, a file, a preset

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what a resumed run must match."""
        data = dataclasses.asdict(self)
        del data["axes_source"]
        data["base"] = self.base.to_dict() if isinstance(self.base, UNetSpec) else self.base
        data["axes"] = {name: [AXES[name].cell(v) for v in values] for name, values in self.axes.items()}
        data["rungs"] = [{"name": r.name, "axes": {n: AXES[n].cell(v) for n, v in r.changes}} for r in self.rungs]
        for name in ("recipe", "tune"):
            data[name] = {axis: list(values) for axis, values in data[name].items()}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def load_sweep(path: Path) -> Sweep:
    """The sweep in a TOML file; ValueError naming the file, key, value and what is valid."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"--sweep {path}: no such file; valid: a TOML sweep file (see README)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path.name}: not valid TOML ({err})") from err
    return sweep_from_dict(path.stem, data, path.name)


def sweep_from_dict(name: str, data: dict[str, Any], where: str) -> Sweep:
    reader = _Reader(data, where)
    default = Sweep(name=name)  # a key left out keeps Sweep's own default
    sweep = Sweep(
        name=name,
        description=reader.get("description", str, default.description),
        base=reader.base(default.base),
        batch_size=reader.get("batch_size", int, default.batch_size, positive=True),
        design=reader.choice("design", DESIGNS, default.design),
        generator=reader.generator(),
        axes=reader.axes(),
        recipe=reader.recipe("axes"),
        tune=reader.recipe("tune", ("seeds",)),
        tune_seeds=reader.get("tune.seeds", int, default.tune_seeds, positive=True),
        rungs=reader.rungs(),
        devices=reader.choices("devices", DEVICES, default.devices),
        memory_formats=reader.choices("execution.memory_format", MEMORY_FORMATS, default.memory_formats),
        dtypes=reader.choices("execution.dtype", DTYPES, default.dtypes),
        compile=reader.compile_modes(default.compile),
        baseline_executions=reader.baseline_executions(),
        peers=tuple(reader.list_of("peers", str, list(default.peers))),
        rounds=reader.rounds(),
        quality=reader.quality(),
        seeds=reader.get("seeds", int, default.seeds, positive=True),
        seeds_at_once=reader.get("seeds_at_once", int, default.seeds_at_once, positive=True),
        jobs=reader.get("jobs", int, default.jobs, positive=True),
    )
    reader.no_unknown_keys()
    if sweep.rungs and sweep.design != "ladder":
        raise reader.fail("design", sweep.design, '"ladder" in a sweep with [[rungs]] (rungs are a ladder\'s steps)')
    return sweep


class _Reader:
    """Typed access to a sweep file's keys, each failure naming the key (dotted for tables) and what is valid."""

    TABLES = {"execution": ("memory_format", "dtype", "compile", "baseline"),
              "rounds": tuple(f.name for f in dataclasses.fields(RoundsBudget)),
              "tune": (*RECIPE_AXES, "seeds")}
    KEYS = ("description", "base", "batch_size", "design", "generator", "axes", "rungs", "devices", "peers", "quality",
            "seeds", "seeds_at_once", "jobs", *TABLES)

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def fail(self, key: str, value: Any, valid: str) -> ValueError:
        return ValueError(f"{self.where}: {key} = {value!r} is invalid; valid: {valid}")

    def raw(self, key: str, default: Any) -> Any:
        table, _, leaf = key.rpartition(".")
        source = self.data.get(table, {}) if table else self.data
        if not isinstance(source, dict):
            raise self.fail(table, source, "a table of keys")
        return source.get(leaf, default)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any, positive: bool = False) -> Any:
        value = self.raw(key, default)
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float, (int, float)))
        if not ok or (positive and value < 1):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.fail(key, value, f"a positive {names}" if positive else f"a {names}")
        return value

    def choice(self, key: str, valid: tuple[str, ...], default: str) -> str:
        value = self.raw(key, default)
        if value not in valid:
            raise self.fail(key, value, ", ".join(valid))
        return value

    def list_of(self, key: str, kind: type, default: list) -> list:
        value = self.raw(key, default)
        if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
            raise self.fail(key, value, f"a list of {kind.__name__} values")
        return value

    def choices(self, key: str, valid: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
        values = self.list_of(key, str, list(default))
        bad = [v for v in values if v not in valid]
        if bad or not values:
            raise self.fail(key, values, f"a non-empty list of {', '.join(valid)}")
        return tuple(values)

    def compile_modes(self, default: tuple[str, ...]) -> tuple[str, ...]:
        """``execution.compile``: modes, or the booleans older sweep files give (false: off, true: on)."""
        values = self.raw("execution.compile", list(default))
        modes = [compile_mode(v) for v in values] if isinstance(values, list) else values
        if not isinstance(modes, list) or not modes or any(m not in COMPILE_MODES for m in modes):
            raise self.fail("execution.compile", values, f"a non-empty list of {', '.join(COMPILE_MODES)}")
        return tuple(modes)

    def array_of_tables(self, key: str, valid: str) -> list[dict[str, Any]]:
        """``[[key]]``: a list of tables (none: empty), else the error naming ``valid``."""
        tables = self.raw(key, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise self.fail(key, tables, valid)
        return tables

    def baseline_executions(self) -> tuple[Execution, ...]:
        """``[[execution.baseline]]``: tables of one memory_format, dtype and compile each (every key optional)."""
        out = []
        for i, table in enumerate(self.array_of_tables("execution.baseline",
                                                       "an array of tables ([[execution.baseline]])")):
            where = f"execution.baseline[{i}]"
            for key in table:
                if key not in ("memory_format", "dtype", "compile"):
                    raise self.fail(f"{where}.{key}", table[key], "a key of memory_format, dtype, compile")
            execution = Execution(table.get("memory_format", DEFAULT_EXECUTION["memory_format"]),
                                  table.get("dtype", DEFAULT_EXECUTION["dtype"]),
                                  compile_mode(table.get("compile", "off")))
            for key, value, valid in (("memory_format", execution.memory_format, MEMORY_FORMATS),
                                      ("dtype", execution.dtype, DTYPES),
                                      ("compile", execution.compile, COMPILE_MODES)):
                if value not in valid:
                    raise self.fail(f"{where}.{key}", table.get(key), ", ".join(valid))
            out.append(execution)
        return tuple(out)

    def base(self, default: str | UNetSpec) -> str | UNetSpec:
        value = self.raw("base", default)
        if isinstance(value, dict):
            try:
                return UNetSpec.from_dict(value)
            except ValueError as err:
                raise ValueError(f"{self.where}: base: {err}") from err
        if not isinstance(value, str) or value not in BASES:
            raise self.fail("base", value, f"one of {', '.join(BASES)}, or a table of UNetSpec fields")
        return value

    def axes(self) -> dict[str, tuple[Any, ...]]:
        table = self.raw("axes", {})
        if not isinstance(table, dict):
            raise self.fail("axes", table, "a table of axis = [values]")
        out = {}
        for name, values in table.items():
            if name in RECIPE_AXES:
                continue  # read by recipe()
            if name not in AXES:
                raise self.fail(f"axes.{name}", values, f"an axis ({', '.join(AXES)}) or a recipe axis "
                                                        f"({', '.join(RECIPE_AXES)})")
            if not isinstance(values, list) or not values:
                raise self.fail(f"axes.{name}", values, "a non-empty list of values")
            axis = AXES[name]
            try:  # TOML has typed values: "4" is no head count, "false" no boolean
                out[name] = tuple(_checked(axis, axis.parse_json(v)) for v in values)
            except ValueError as err:
                raise ValueError(f"{self.where}: axes.{name}: {err}") from err
        return out

    def recipe(self, table_name: str, other_keys: tuple[str, ...] = ()) -> dict[str, tuple[Any, ...]]:
        """The recipe axes of a table (``[axes]`` or ``[tune]``): name = [values], each checked."""
        table = self.raw(table_name, {})
        if not isinstance(table, dict):
            raise self.fail(table_name, table, "a table of axis = [values]")
        out = {}
        for name, values in table.items():
            if name not in RECIPE_AXES or name in other_keys:
                continue
            if not isinstance(values, list) or not values:
                raise self.fail(f"{table_name}.{name}", values, "a non-empty list of values")
            try:
                out[name] = tuple(RECIPE_AXES[name].check(v) for v in values)
            except ValueError as err:
                raise ValueError(f"{self.where}: {table_name}.{name}: {err}") from err
        return out

    def rungs(self) -> tuple[Rung, ...]:
        """``[[rungs]]`` tables: ``name = "..."`` and one value per axis the rung sets."""
        out = []
        tables = self.array_of_tables("rungs", "[[rungs]] tables, each a name and axis = value keys")
        for i, table in enumerate(tables):
            where = f"rungs[{i}]"
            name = table.get("name")
            if not isinstance(name, str) or not name.strip():
                raise self.fail(f"{where}.name", name, "a non-empty string")
            changes = []
            for key, value in table.items():
                if key == "name":
                    continue
                if key not in AXES:
                    raise self.fail(f"{where}.{key}", value, f"name, or an axis: {', '.join(AXES)}")
                axis = AXES[key]
                try:
                    changes.append((key, axis.parse(value) if isinstance(value, str) and axis.type is not str
                                    else _checked(axis, axis.parse_json(value))))
                except ValueError as err:
                    raise ValueError(f"{self.where}: {where} ({name!r}): {err}") from err
            out.append(Rung(name, tuple(changes)))
        return tuple(out)
    def generator(self) -> str | None:
        value = self.raw("generator", None)
        if value is not None and not (isinstance(value, str) and value.split()):
            raise self.fail("generator", value,
                            'a fractional design\'s generator, one word per axis, e.g. "a b c d abcd"')
        return value

    def rounds(self) -> RoundsBudget:
        fields = {f.name: f for f in dataclasses.fields(RoundsBudget)}
        given = self.raw("rounds", {})
        if not isinstance(given, dict):
            raise self.fail("rounds", given, f"a table of {', '.join(fields)}")
        values = {k: self.get(f"rounds.{k}", (int, float) if fields[k].type == "float" else int, None)
                  for k in given if k in fields}
        try:
            return RoundsBudget(**values)
        except ValueError as err:
            raise ValueError(f"{self.where}: rounds: {err}") from err

    def quality(self) -> tuple[str, ...]:
        """A quality preset, or a list of them (each trains the same variants: a second scale); "": cost only."""
        value = self.raw("quality", "")
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) and n in QUALITY_PRESETS for n in names if n):
            raise self.fail("quality", value, f"one of {', '.join(QUALITY_PRESETS)} or a list of them, or \"\" for "
                                              "cost only")
        return tuple(dict.fromkeys(n for n in names if n))

    def no_unknown_keys(self) -> None:
        for key in self.data:
            if key not in self.KEYS:
                raise self.fail(key, self.data[key], f"a key of {', '.join(self.KEYS)}")
        for table, keys in self.TABLES.items():
            for key in self.data.get(table, {}):
                if key not in keys:
                    raise self.fail(f"{table}.{key}", self.data[table][key], f"a key of {', '.join(keys)}")


def _checked(axis: Any, value: Any) -> Any:
    axis.check(value)
    return value


PRESETS: dict[str, Sweep] = {path.stem: load_sweep(path) for path in sorted(PRESET_DIR.glob("*.toml"))}


def get_preset(name: str) -> Sweep:
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r} is not a preset; valid: {', '.join(PRESETS)}")
    return PRESETS[name]
