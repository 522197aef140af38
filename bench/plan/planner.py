"""From options to a plan: resolve the sweep (preset or file) and the command line once, check everything, and
list the cells. The runner only executes a plan."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from bench.models.peers import get_peer
from bench.models.sizes import parameter_count, planned_step_bytes
from bench.plan.bracket import MAX_EXTENSIONS
from bench.plan.cells import Cell
from bench.plan.designs import (DESIGNS, describe_merge, distinct_networks, fractional_generator, grid, ladder,
                                 ladder_rungs)
from bench.plan.estimate import Estimate, estimate
from bench.plan.execution import executions
from bench.plan.groups import device_memory, memory_budget, timing_cells
from bench.plan.options import (PARTS, SweepOptions, check_backend, check_counts, import_plugins,
                                plugin_failure)
from bench.plan.quality_presets import QUALITY_PRESETS, QualityConfig
from bench.plan.recipe import RECIPE_AXES, recipe_changes
from bench.plan.sweep import DEVICES, Sweep, get_preset, load_sweep
from bench.plan.tuning import tuning_grid, tuning_seeds
from bench.schema import DEFAULT_EXECUTION, Kind
from variants import BASES, UNetSpec, value_text


@dataclass(frozen=True)
class Plan:
    options: SweepOptions
    sweep: Sweep                # the sweep with every command-line override applied
    base_name: str
    base: UNetSpec
    cells: list[Cell]
    notices: tuple[str, ...] = ()  # what the plan changed in what was asked (one line each), printed before work

    @property
    def jobs(self) -> int:
        return self.sweep.jobs

    def estimate(self, pace: float | None = None) -> Estimate:
        """The plan's time at ``pace`` (bench/plan/estimate.py), or at the priors' own when None."""
        return estimate(self.cells, self.sweep.rounds, self.jobs, pace)

    def after_tuning(self) -> list[Cell]:
        """The most quality cells tuning can add: every tuned variant's, were its choice not its preset's recipe
        (the runner plans the real ones once the tuning cells have finished: bench/plan/tuning.py)."""
        if not self.sweep.tune:
            return []
        out = []
        for cell in (c for c in self.cells if c.kind == Kind.QUALITY):
            changes = [recipe_changes(QUALITY_PRESETS[cell.quality], p) for p in tuning_grid(self.sweep.tune)]
            if any(changes):
                out.append(dataclasses.replace(cell, recipe=next(c for c in changes if c)))
        return out

    def one_extension(self) -> list[Cell]:
        """The tuning cells one point beyond an edge of the grid adds for one variant whose choice sits there
        (bench/plan/bracket.py): its tuning cells at one point; none when the grid has no numeric axis."""
        tune = [c for c in self.cells if c.kind == Kind.TUNE]
        if not tune or not any(RECIPE_AXES[name].type is float for name in self.sweep.tune):
            return []
        first = tune[0]
        return [c for c in tune if (c.quality, c.variant, c.rung, c.recipe) ==
                (first.quality, first.variant, first.rung, first.recipe)]

    def describe(self, pace: float | None = None) -> str:
        """What ``bench run --plan`` prints: the notices the run prints first, the cells by kind, each one's label,
        and the time they will take at ``pace``."""
        lines = [f"notice: {notice}" for notice in self.notices]
        lines.append(f"{self.sweep.name}: {len(self.cells)} cells ({self.sweep.design} design on {self.base_name}); "
                     f"{self.estimate(pace).describe()}")
        tuned = self.after_tuning()
        if tuned:
            lines.append(f"  then, after tuning, up to {len(tuned)} quality cells at the variants' chosen recipes: "
                         f"{estimate(tuned, self.sweep.rounds, self.jobs, pace).describe()}")
        extension = self.one_extension()
        if extension:
            lines.append(f"  and, for each variant whose choice sits at an edge of the grid, up to {MAX_EXTENSIONS} "
                         f"points beyond that edge, each {len(extension)} tuning cell(s): "
                         f"{estimate(extension, self.sweep.rounds, self.jobs, pace).describe()} per point")
        for kind in dict.fromkeys(c.kind for c in self.cells):
            cells = [c for c in self.cells if c.kind == kind]
            lines.append(f"  {kind}: {len(cells)} cell(s)")
            lines += [f"    {c.label}" for c in cells]
        return "\n".join(lines)

    def config(self) -> dict[str, Any]:
        """What must match for --resume to continue a run (not where or how it runs), as JSON holds it."""
        # the sweep's name and description do not change what is measured
        sweep = {k: v for k, v in self.sweep.to_dict().items() if k not in ("name", "description")}
        config = sweep | {
            "base": self.base.to_dict(), "parts": list(self.options.parts), "threads": self.options.threads,
            "plugins": list(self.options.plugins), "shard": list(self.options.shard) if self.options.shard else None}
        return json.loads(json.dumps(config))


def make_plan(options: SweepOptions) -> Plan:
    """Check every option, then list the cells; ValueError before any work."""
    import_plugins(options.plugins)  # first: a plugin may add the variants and axes the sweep names
    try:
        return _plan(options)
    except Exception as err:  # planning builds every variant (on the meta device): a user's block that raises there
        failure = plugin_failure(err, options.plugins)  # is refused in one line naming where; ours keep a traceback
        if failure is None:
            raise
        raise ValueError(f"{failure} (while planning, which builds every variant before any cell runs)") from err


def _plan(options: SweepOptions) -> Plan:
    sweep = _resolve(options)
    check_counts(options)
    if options.time_limit is not None and not 0 < options.time_limit < math.inf:
        raise ValueError(f"--time-limit {options.time_limit:g} is invalid; valid: seconds, a positive number")
    if not options.parts:
        raise ValueError(f"--only: no part given; valid: {', '.join(PARTS)} (comma-separated)")
    for part in options.parts:
        if part not in PARTS:
            raise ValueError(f"--only {part!r} is invalid; valid: {', '.join(PARTS)}")
    check_backend(options.backend)
    qualities = sweep.quality if "quality" in options.parts else ()
    for name in qualities:
        _check_quality_preset(name)
    check_tuning(sweep)
    base_name, base = resolve_base(options.base if options.base is not None else sweep.base)
    notices: list[str] = []
    variants: dict[UNetSpec, list[Variant]] = {}  # per base, planned once

    def variants_of(spec: UNetSpec) -> list[Variant]:
        if spec not in variants:
            variants[spec] = _variants(spec, sweep, notices)
        return variants[spec]

    cells = []
    if "cost" in options.parts:
        cells += check_fits(_cost_cells(sweep, base_name, variants_of(base), base, options), "--base and --batch-size")
    for name in qualities:
        config = QUALITY_PRESETS[name]
        trained = _quality_cells(sweep, name, variants_of(config.base), options)
        if "cost" in options.parts:
            trained = _quality_network_cost_cells(sweep, name, variants_of(config.base), base, options) + trained
        cells += check_fits(trained, f"--quality {name}")
    cells = list(dict.fromkeys(cells))  # two quality presets may share a network, its floor and its costs
    if options.shard:
        k, n = options.shard
        cells = [c for c in cells if int(c.id, 16) % n == k - 1]
    return Plan(options, sweep, base_name, base, cells, tuple(dict.fromkeys(notices)))


def check_fits(cells: list[Cell], chosen_by: str) -> list[Cell]:
    """Refuse, before any work, a network whose training step cannot fit its device: the planned bytes of its
    largest variant (weights, gradients, AdamW moments and saved activations at the cell's batch) against the
    device's memory. ``chosen_by``: the options that chose these cells' network and batch, which the refusal
    names first. Returns ``cells``."""
    largest: dict[tuple[str, int, str], UNetSpec] = {}
    for cell in cells:
        if cell.spec is None or cell.peer or cell.kind == Kind.TIMING:
            continue
        batch = cell.batch_size or QUALITY_PRESETS[cell.quality].batch_size
        key = (cell.base_config, batch, cell.device)
        spec = cell.spec.replace(checkpoint=False)  # what checkpointing saves is a part of this
        if key not in largest or parameter_count(spec) > parameter_count(largest[key]):
            largest[key] = spec
    for (network, batch, device), spec in largest.items():
        planned, limit = planned_step_bytes(spec, batch), device_memory(device)
        if planned > limit:
            raise ValueError(
                f"{chosen_by}: {network} at batch {batch} plans {planned / 2**30:,.1f} GiB for one training step "
                f"(weights, gradients, AdamW moments and saved activations), more than the {limit / 2**30:,.1f} GiB "
                f"of memory {device} has; valid: a smaller network or batch")
    return cells


# A command-line option with a sweep field of the same name replaces the sweep's value when given; the axes merge
# axis by axis (below) and the base is resolved with the network (make_plan).
OVERRIDES = tuple(sorted({f.name for f in dataclasses.fields(SweepOptions)}
                         & {f.name for f in dataclasses.fields(Sweep)} - {"base", "axes", "recipe", "tune"}))


def _resolve(options: SweepOptions) -> Sweep:
    """The sweep (file or preset) with the command line's overrides."""
    sweep = load_sweep(options.sweep_file) if options.sweep_file else get_preset(options.preset)
    overrides = {name: getattr(options, name) for name in OVERRIDES}
    source = "--axis" if options.axes else (options.sweep_file.name if options.sweep_file else f"preset {sweep.name}")
    sweep = dataclasses.replace(sweep, axes=sweep.axes | options.axes, recipe=sweep.recipe | options.recipe,
                                tune=options.tune or sweep.tune, axes_source=source,
                                **{k: v for k, v in overrides.items() if v is not None})
    if options.precision is not None:
        if not 0 < options.precision < math.inf:
            raise ValueError(f"--precision {options.precision:g} is invalid; valid: percentage points, a positive "
                             "number (1 asks for every main effect on time within +-1%)")
        sweep = dataclasses.replace(sweep, rounds=dataclasses.replace(sweep.rounds, precision=options.precision))
    if options.processes is not None:
        if options.processes < 1:
            raise ValueError(f"--processes {options.processes} is invalid; valid: a whole number of worker processes, "
                             "1 or more (3 spreads each timing cell's rounds over three fresh processes)")
        sweep = dataclasses.replace(sweep, rounds=dataclasses.replace(sweep.rounds, processes=options.processes))
    if sweep.design not in DESIGNS:
        raise ValueError(f"--design {sweep.design!r} is invalid; valid: {', '.join(DESIGNS)}")
    if options.design is not None and options.design != "fractional" and options.generator is None:
        sweep = dataclasses.replace(sweep, generator=None)  # the sweep file's generator was for its own design
    if sweep.generator is not None and sweep.design != "fractional":
        raise ValueError(f"--generator {sweep.generator!r} is only for --design fractional; the design is "
                         f"{sweep.design!r}")
    try:  # recorded in run.json: the default generator resolved, so a run says which fraction it measured
        generator = fractional_generator(sweep.design, sweep.generator, **sweep.axes)
    except ValueError as err:
        raise ValueError(f"--design fractional: {err}") from err
    return dataclasses.replace(sweep, devices=_devices(sweep.devices), generator=generator)


def _devices(names: tuple[str, ...]) -> tuple[str, ...]:
    if not names:
        raise ValueError(f"--device: no device given; valid: {', '.join(DEVICES)}")
    if "auto" in names:
        names = tuple(n for n in names if n != "auto") + (("cpu", "cuda") if torch.cuda.is_available() else ("cpu",))
    for device in names:
        if device not in DEVICES:
            raise ValueError(f"--device {device!r} is invalid; valid: {', '.join(DEVICES)} (comma-separated)")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for, but torch sees no CUDA device "
                             f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu")
    return tuple(dict.fromkeys(names))


def _check_quality_preset(name: str) -> None:
    if name not in QUALITY_PRESETS:
        raise ValueError(f"--quality {name!r} is invalid; valid: {', '.join(QUALITY_PRESETS)} (comma-separated)")


def check_tuning(sweep: Sweep) -> None:
    """A tuning grid needs two points or more, and is the only recipe axis a tuned sweep varies: a recipe axis
    both swept and tuned has no one value per variant."""
    if not sweep.tune:
        return
    points = math.prod(len(values) for values in sweep.tune.values())
    if points < 2:
        raise ValueError(f"--tune {_grid_text(sweep.tune)} has {points} point; valid: two values or more to choose "
                         "from, e.g. --tune lr=2e-3,4e-3,1e-2")
    if sweep.recipe:
        raise ValueError(f"--tune {_grid_text(sweep.tune)} and --axis {_grid_text(sweep.recipe)}: a recipe axis is "
                         "either swept for every variant or tuned per variant; valid: one of the two")
    for name in sweep.quality:
        config = QUALITY_PRESETS[name]
        for point in tuning_grid(sweep.tune):
            try:
                config.replace(**point)
            except ValueError as err:
                raise ValueError(f"--tune with --quality {name}: {err}") from err


def _grid_text(grid: dict[str, tuple[Any, ...]]) -> str:
    return " ".join(f"{name}={','.join(value_text(v) for v in values)}"
                    for name, values in grid.items())


def base_name(spec: UNetSpec) -> str:
    """The base's name for the table: its BASES key, else the closest base and what differs from it, e.g.
    ``digits8_ch16[ch=8,attn_resolutions=none]``."""
    known = next((name for name, base in BASES.items() if base == spec), None)
    if known is not None:
        return known
    mine = spec.to_dict()
    differences = {name: [k for k, v in base.to_dict().items() if mine.get(k) != v] for name, base in BASES.items()}
    closest = min(differences, key=lambda name: len(differences[name]))
    return f"{closest}[{','.join(f'{k}={value_text(mine[k])}' for k in differences[closest])}]"


def resolve_base(base: str | UNetSpec) -> tuple[str, UNetSpec]:
    """A base name (BASES), a UNetSpec as JSON, or a spec: (its name for the table, the spec)."""
    if isinstance(base, UNetSpec):
        return base_name(base), base
    if base in BASES:
        return base, BASES[base]
    if base.lstrip().startswith("{"):
        try:
            spec = UNetSpec.from_json(base)
        except ValueError as err:
            raise ValueError(f"--base: {err}") from err
        return base_name(spec), spec
    raise ValueError(f"--base {base!r} is invalid; valid: {', '.join(BASES)} or a UNetSpec as JSON")


def _cost_cells(sweep: Sweep, base_name: str, variants: list[Variant], base: UNetSpec, options: SweepOptions
                ) -> list[Cell]:
    for peer in sweep.peers:
        get_peer(peer)  # an unknown name fails here; a missing package becomes a 'skipped' row
    cells, pairing = [], _pairing_variants(base, sweep, variants)
    for device in sweep.devices:
        product = executions(device, sweep.memory_formats, sweep.dtypes, sweep.compile)
        for execution in product:
            common = dict(batch_size=sweep.batch_size, threads=options.threads, base_config=base_name,
                          **execution.cell_fields())
            costs = [Cell(Kind.COST, v.spec, device, rung=v.rung, rung_index=v.rung_index, **common) for v in variants]
            costs += [Cell(Kind.COST, base, device, peer=peer, **common) for peer in sweep.peers]
            cells += costs + timing_cells(costs, memory_budget(device))
            cells += [Cell(Kind.COST, v.spec, device, **common) for v in pairing]
        for execution in sweep.baseline_executions:
            if execution in product:
                continue  # measured already, with every model
            execution.check(device)
            costs = [Cell(Kind.COST, base, device, batch_size=sweep.batch_size, threads=options.threads,
                          base_config=base_name, **execution.cell_fields())]
            cells += costs + timing_cells(costs, memory_budget(device))
    return cells


def _pairing_variants(base: UNetSpec, sweep: Sweep, variants: list[Variant]) -> list[Variant]:
    """Counts and memory are compared over pairs of cells that differ in one axis, and no two runs of a fractional
    design do: the baseline and its one-axis neighbours, measured as cost cells only (time has its model over the
    design's runs), give every switch its pairs, at the baseline and wherever a neighbour is one axis from a run."""
    if sweep.design != "fractional":
        return []
    runs = {v.spec for v in variants}
    return [Variant(spec) for spec in grid(base, "one_at_a_time", **sweep.axes) if spec not in runs]


def _quality_network_cost_cells(sweep: Sweep, quality: str, variants: list[Variant], base: UNetSpec,
                                options: SweepOptions) -> list[Cell]:
    """Cost and timing of the network the quality cells train, at their batch size, so that what a variant buys
    and what it costs are measured on the same network (cheap: the quality networks are small). Recipe axes
    change no cost: one network is measured once however many recipes train it."""
    config = QUALITY_PRESETS[quality]
    if config.base == base:
        return []  # the cost sweep's own base
    device = _quality_device(sweep)
    common = dict(dtype=quality_dtype(device), batch_size=config.batch_size, threads=options.threads,
                  base_config=base_name(config.base))
    costs = [Cell(Kind.COST, v.spec, device, rung=v.rung, rung_index=v.rung_index, **common) for v in variants]
    pairing = [Cell(Kind.COST, v.spec, device, **common) for v in _pairing_variants(config.base, sweep, variants)]
    return costs + timing_cells(costs, memory_budget(device)) + pairing


def _quality_device(sweep: Sweep) -> str:
    return "cuda" if "cuda" in sweep.devices else "cpu"


def quality_dtype(device: str) -> str:
    """The precision quality cells train in, and the quality network's costs are measured in: fp32 tensors, and
    on CUDA TF32 matmuls and convolutions (the tensor cores' fp32 path, which torch takes for convolutions by
    default), so that quality training fits a GPU session."""
    return "tf32" if device.startswith("cuda") else DEFAULT_EXECUTION["dtype"]


class Variant(NamedTuple):
    spec: UNetSpec
    rung: str = ""       # a ladder's rung name ("" in other designs)
    rung_index: int = 0  # its position on the ladder (0: the first rung)


def _variants(base: UNetSpec, sweep: Sweep, notices: list[str]) -> list[Variant]:
    """The sweep's variants around a valid base (a spec it refuses is the axes' fault), each network once: a
    variant that builds the same network as another is merged into it, with a notice; in a fractional design,
    whose runs must all differ for its aliasing to hold, it is refused."""
    if sweep.design == "ladder":
        return _ladder(base, sweep)
    try:
        specs = grid(base, sweep.design, sweep.generator, **sweep.axes)
    except ValueError as err:
        raise ValueError(f"{sweep.axes_source}: {err}") from err
    kept, merged = distinct_networks(specs)
    if merged and sweep.design == "fractional":
        same = describe_merge(*merged[0]).split("; ")[0]
        raise ValueError(f"{sweep.axes_source}: {same}, so the fractional design has fewer runs than its generator; "
                         "valid: levels of each axis that build different networks")
    notices += [describe_merge(*pair) for pair in merged]
    return [Variant(spec) for spec in kept]


def _ladder(base: UNetSpec, sweep: Sweep) -> list[Variant]:
    """A ladder's rungs: the sweep's [[rungs]], every axis given holding one value in all of them; or, without
    [[rungs]], one rung per further value of each axis given (bench.plan.designs.ladder_rungs)."""
    rungs = sweep.rungs
    if rungs:
        swept = {name: values for name, values in sweep.axes.items() if len(values) > 1}
        if swept:
            name, values = next(iter(swept.items()))
            raise ValueError(f"--axis {name}: {len(values)} values in a ladder with [[rungs]]; valid: one value, held "
                             "in every rung (the rungs are the steps: edit them in the sweep file)")
        for rung in rungs:
            clash = [name for name, _ in rung.changes if name in sweep.axes]
            if clash:
                raise ValueError(f"--axis {clash[0]} holds one value in every rung, but rung {rung.name!r} sets it; "
                                 f"valid: an axis no rung sets ({', '.join(sorted(sweep.axes))} given)")
        fixed = {name: values[0] for name, values in sweep.axes.items()}
    else:
        if not any(len(values) > 1 for values in sweep.axes.values()):
            raise ValueError("--design ladder needs steps: [[rungs]] in the sweep file, or an axis with two or more "
                             "values (--axis NAME=V1,V2)")
        rungs, fixed = tuple(ladder_rungs(**sweep.axes)), {}
    try:
        return [Variant(spec, name, i) for i, (name, spec) in enumerate(ladder(base.replace(**fixed), rungs))]
    except ValueError as err:
        raise ValueError(f"ladder: {err}") from err


def _quality_cells(sweep: Sweep, quality: str, variants: list[Variant], options: SweepOptions) -> list[Cell]:
    """The floor, every functional variant's quality cells at each recipe of the sweep (at the preset's own
    recipe when none is swept), its tuning cells when the sweep tunes, and the checkpointing check."""
    config = QUALITY_PRESETS[quality]
    device = _quality_device(sweep)
    # Untimed cells run `jobs` at a time and share the threads between them.
    threads = max(1, options.threads // sweep.jobs)
    common = dict(device=device, dtype=quality_dtype(device), threads=threads, quality=quality,
                  dataset=config.dataset, base_config=base_name(config.base))
    # Checkpointing changes no function: train each functional variant once, and check that claim instead.
    functional = list(dict.fromkeys(v._replace(spec=v.spec.replace(checkpoint=False)) for v in variants))
    if sweep.seeds_at_once > 1:
        _check_packable(config, sweep.seeds_at_once)

    def trained(kind: str, seeds: list[int], recipe: dict[str, Any]) -> list[Cell]:
        changes = recipe_changes(config, recipe)
        chunks = [tuple(seeds[i: i + sweep.seeds_at_once]) for i in range(0, len(seeds), sweep.seeds_at_once)]
        return [Cell(kind, v.spec, seed=chunk[0], seeds=chunk if len(chunk) > 1 else (), rung=v.rung,
                     rung_index=v.rung_index, recipe=changes, **common) for v in functional for chunk in chunks]

    seeds = list(range(sweep.seeds))
    cells = [Cell(Kind.FLOOR, None, seed=seed, **common) for seed in seeds]
    for recipe in tuning_grid(sweep.recipe):
        cells += trained(Kind.QUALITY, seeds, recipe)
    for point in tuning_grid(sweep.tune) if sweep.tune else ():
        cells += trained(Kind.TUNE, tuning_seeds(sweep.tune_seeds), point)
    if any(v.spec.checkpoint for v in variants):
        cells.append(Cell(Kind.CHECK, functional[0].spec.replace(checkpoint=True), seed=0, **common))
    return cells


def _check_packable(config: QualityConfig, seeds_at_once: int) -> None:
    """Seeds trained together must train as they would one by one: a dropout mask would be drawn for all of them
    at once (bench/measure/quality/packed.py)."""
    if config.base.dropout > 0:
        raise ValueError(f"--seeds-at-once {seeds_at_once}: the quality network has dropout={config.base.dropout:g}, "
                         "and seeds trained together would share its random masks; valid: --seeds-at-once 1 for "
                         "this quality preset")
