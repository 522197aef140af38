"""From options to a plan: resolve the sweep (preset or file) and the command line once, check everything, and
list the cells. The runner only executes a plan."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import torch

from bench.models.peers import get_peer
from bench.plan.cells import Cell
from bench.plan.execution import executions
from bench.plan.groups import memory_budget, timing_cells
from bench.plan.options import MAXIMA, PARTS, SweepOptions, check_backend, import_plugins
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.sweep import DEVICES, Sweep, get_preset, load_sweep
from bench.schema import DEFAULT_EXECUTION
from variants import BASES, DESIGNS, UNetSpec, grid


@dataclass(frozen=True)
class Plan:
    options: SweepOptions
    sweep: Sweep                # the sweep with every command-line override applied
    base_name: str
    base: UNetSpec
    cells: list[Cell]

    @property
    def jobs(self) -> int:
        return self.sweep.jobs

    def config(self) -> dict[str, Any]:
        """What must match for --resume to continue a run (not where or how it runs), as JSON holds it."""
        # the sweep's name, description and time priors do not change what is measured
        sweep = {k: v for k, v in self.sweep.to_dict().items() if k not in ("name", "description", "seconds_per_cell")}
        config = sweep | {
            "base": self.base.to_dict(), "parts": list(self.options.parts), "threads": self.options.threads,
            "plugins": list(self.options.plugins), "shard": list(self.options.shard) if self.options.shard else None}
        return json.loads(json.dumps(config))


def make_plan(options: SweepOptions) -> Plan:
    """Check every option, then list the cells; ValueError before any work."""
    import_plugins(options.plugins)  # first: a plugin may add the variants and axes the sweep names
    sweep = _resolve(options)
    for option, value in (("--threads", options.threads), ("--batch-size", options.batch_size),
                          ("--seeds", options.seeds), ("--jobs", options.jobs)):
        if value is not None and not 1 <= value <= MAXIMA[option]:
            raise ValueError(f"{option} {value} is invalid; valid: an integer from 1 to {MAXIMA[option]}")
    if options.time_limit is not None and not 0 < options.time_limit < math.inf:
        raise ValueError(f"--time-limit {options.time_limit:g} is invalid; valid: seconds, a positive number")
    if not options.parts:
        raise ValueError(f"--only: no part given; valid: {', '.join(PARTS)} (comma-separated)")
    for part in options.parts:
        if part not in PARTS:
            raise ValueError(f"--only {part!r} is invalid; valid: {', '.join(PARTS)}")
    check_backend(options.backend)
    if sweep.quality is not None and "quality" in options.parts:
        _check_quality_preset(sweep.quality)
    base_name, base = resolve_base(options.base if options.base is not None else sweep.base)
    quality = "quality" in options.parts and sweep.quality is not None
    cells = []
    if "cost" in options.parts:
        cells += _cost_cells(sweep, base_name, base, options)
        if quality:
            cells += _quality_network_cost_cells(sweep, base, options)
    if quality:
        cells += _quality_cells(sweep, options)
    if options.shard:
        k, n = options.shard
        cells = [c for c in cells if int(c.id, 16) % n == k - 1]
    return Plan(options, sweep, base_name, base, cells)


def _resolve(options: SweepOptions) -> Sweep:
    """The sweep (file or preset) with the command line's overrides."""
    sweep = load_sweep(options.sweep_file) if options.sweep_file else get_preset(options.preset)
    overrides = {"devices": options.devices, "batch_size": options.batch_size, "design": options.design,
                 "seeds": options.seeds, "quality": options.quality, "jobs": options.jobs, "peers": options.peers,
                 "memory_formats": options.memory_formats, "dtypes": options.dtypes, "compile": options.compile}
    sweep = dataclasses.replace(sweep, axes=sweep.axes | options.axes,
                                **{k: v for k, v in overrides.items() if v is not None})
    if sweep.design not in DESIGNS:
        raise ValueError(f"--design {sweep.design!r} is invalid; valid: {', '.join(DESIGNS)}")
    return dataclasses.replace(sweep, devices=_devices(sweep.devices))


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
        raise ValueError(f"--quality {name!r} is invalid; valid: {', '.join(QUALITY_PRESETS)}")


def base_name(spec: UNetSpec) -> str:
    """The base's name for the table: its BASES key, else the closest base and what differs from it, e.g.
    ``digits8_ch16[ch=8,attn_resolutions=none]``."""
    known = next((name for name, base in BASES.items() if base == spec), None)
    if known is not None:
        return known
    mine = spec.to_dict()
    differences = {name: [k for k, v in base.to_dict().items() if mine.get(k) != v] for name, base in BASES.items()}
    closest = min(differences, key=lambda name: len(differences[name]))
    return f"{closest}[{','.join(f'{k}={_text(mine[k])}' for k in differences[closest])}]"


def _text(value: Any) -> str:
    """A spec field's value in a base's name: tuples joined by '+' (``none`` when empty), as on the command line."""
    if isinstance(value, (tuple, list)):
        return "+".join(map(str, value)) or "none"
    return str(value)


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


def _cost_cells(sweep: Sweep, base_name: str, base: UNetSpec, options: SweepOptions) -> list[Cell]:
    for peer in sweep.peers:
        get_peer(peer)  # an unknown name fails here; a missing package becomes a 'skipped' row
    cells = []
    for device in sweep.devices:
        product = executions(device, sweep.memory_formats, sweep.dtypes, sweep.compile)
        for execution in product:
            common = dict(batch_size=sweep.batch_size, threads=options.threads, base_config=base_name,
                          **execution.cell_fields())
            costs = [Cell("cost", spec, device, **common) for spec in _variants(base, sweep)]
            costs += [Cell("cost", base, device, peer=peer, **common) for peer in sweep.peers]
            cells += costs + timing_cells(costs, memory_budget(device))
        for execution in sweep.baseline_executions:
            if execution in product:
                continue  # measured already, with every model
            execution.check(device)
            costs = [Cell("cost", base, device, batch_size=sweep.batch_size, threads=options.threads,
                          base_config=base_name, **execution.cell_fields())]
            cells += costs + timing_cells(costs, memory_budget(device))
    return cells


def _quality_network_cost_cells(sweep: Sweep, base: UNetSpec, options: SweepOptions) -> list[Cell]:
    """Cost and timing of the network the quality cells train, at their batch size, so that what a variant buys
    and what it costs are measured on the same network (cheap: the quality networks are small)."""
    config = QUALITY_PRESETS[sweep.quality]
    if config.base == base:
        return []  # the cost sweep's own base
    device = _quality_device(sweep)
    costs = [Cell("cost", spec, device, dtype=quality_dtype(device), batch_size=config.batch_size,
                  threads=options.threads, base_config=base_name(config.base)) for spec in _variants(config.base, sweep)]
    return costs + timing_cells(costs, memory_budget(device))


def _quality_device(sweep: Sweep) -> str:
    return "cuda" if "cuda" in sweep.devices else "cpu"


def quality_dtype(device: str) -> str:
    """The precision quality cells train in, and the quality network's costs are measured in: fp32 tensors, and
    on CUDA TF32 matmuls and convolutions (the tensor cores' fp32 path, which torch takes for convolutions by
    default), so that quality training fits a GPU session."""
    return "tf32" if device.startswith("cuda") else DEFAULT_EXECUTION["dtype"]


def _variants(base: UNetSpec, sweep: Sweep) -> list[UNetSpec]:
    """The sweep's variants around a valid base: a spec it refuses is the axes' fault."""
    try:
        return grid(base, sweep.design, **sweep.axes)
    except ValueError as err:
        raise ValueError(f"--axis: {err}") from err


def _quality_cells(sweep: Sweep, options: SweepOptions) -> list[Cell]:
    config = QUALITY_PRESETS[sweep.quality]
    device = _quality_device(sweep)
    seeds = range(sweep.seeds)
    # Untimed cells run `jobs` at a time and share the threads between them.
    threads = max(1, options.threads // sweep.jobs)
    common = dict(device=device, dtype=quality_dtype(device), threads=threads, quality=sweep.quality,
                  dataset=config.dataset, base_config=base_name(config.base))
    # Checkpointing changes no function: train each functional variant once, and check that claim instead.
    variants = _variants(config.base, sweep)
    functional = list(dict.fromkeys(s.replace(checkpoint=False) for s in variants))
    cells = [Cell("floor", None, seed=seed, **common) for seed in seeds]
    cells += [Cell("quality", spec, seed=seed, **common) for spec in functional for seed in seeds]
    if any(s.checkpoint for s in variants):
        cells.append(Cell("check", functional[0].replace(checkpoint=True), seed=0, **common))
    return cells
