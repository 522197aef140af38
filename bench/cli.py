"""`python -m bench run | list | report | import`."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from bench.models.sizes import base_summary
from bench.plan.designs import DESIGNS
from bench.plan.options import (BACKENDS, PARTS, BackendOptions, SweepOptions, import_plugins, parse_axes,
                                parse_shard)
from bench.plan.planner import base_name as planner_base_name
from bench.plan.planner import make_plan
from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.recipe import RECIPE_AXES
from bench.plan.sweep import PRESETS
from bench.run.runner import TimeLimitReached, probed_pace, run_sweep
from variants import AXES, BASES
from variants.axes import markdown_table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args, argv)
    except ValueError as err:  # bad options: one clear line, nothing started
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # the runner has said what it kept, in one line
        return 128 + getattr(stop, "signum", signal.SIGINT)
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as other tools do
        sys.stdout = open(os.devnull, "w")
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a sweep into a run folder")
    run.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)} (default quick)")
    run.add_argument("--sweep", type=Path, help="a TOML sweep file (instead of --preset); the options below "
                                                "override it")
    run.add_argument("--out", type=Path, required=True, help="run folder (metrics.csv, metrics.parquet, env.json)")
    run.add_argument("--device", help="comma-separated: cpu, cuda, or auto (cpu + cuda if present); default: the "
                                      "sweep's (cpu for the presets but peers)")
    run.add_argument("--resume", action="store_true", help="skip the cells the folder already holds")
    run.add_argument("--plan", action="store_true", help="print the cells, their kinds and the estimated time, then "
                                                         "exit without running anything")
    run.add_argument("--axis", action="append", default=[], metavar="NAME=V1,V2",
                     help=f"values of one axis ({', '.join(AXES)}; tuples as 16+8) or recipe axis of the quality cells "
                          f"({', '.join(RECIPE_AXES)}); repeatable, each axis once")
    run.add_argument("--tune", action="append", default=[], metavar="NAME=V1,V2",
                     help=f"a recipe grid ({', '.join(RECIPE_AXES)}) each variant picks its own point from, on tuning "
                          "seeds and validation images, then trains there with the usual seeds; repeatable")
    run.add_argument("--tune-seeds", type=int, help="tuning seeds per grid point (default: the sweep's tune.seeds)")
    run.add_argument("--design", help=f"{', '.join(DESIGNS)} (default: the sweep's)")
    run.add_argument("--generator", help="fractional design: pydoe's generator, one word per --axis in order, e.g. "
                                         "'a b c d abcd' (default: resolution IV in the fewest runs)")
    run.add_argument("--base", help=f"base spec: {', '.join(BASES)} or a UNetSpec as JSON")
    run.add_argument("--batch-size", type=int, help="cost batch size (default: the sweep's)")
    run.add_argument("--threads", type=int, default=2, help="torch threads in every worker (default 2)")
    run.add_argument("--jobs", type=int, help="cells that time nothing (cost, quality, floor, check) run this many "
                                              "at a time on the local backend (default: the preset's); timing and "
                                              "compiled cost cells, which time, always run alone")
    run.add_argument("--precision", type=float, help="timing rounds stop once every axis's main effect on each "
                     "phase's time has a 95%% interval within +- this many percentage points, or at the preset's cap "
                     "(default: the sweep's, 1)")
    run.add_argument("--processes", type=int, help="fresh worker processes each timing cell's rounds are spread "
                     "over, so the intervals see how a process's layout moves its timings (default: the sweep's, 3)")
    run.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: cost, quality")
    run.add_argument("--seeds", type=int, help="quality seeds per variant (default: the preset's)")
    run.add_argument("--seeds-at-once", type=int, help="seeds of one variant trained together in one quality cell "
                                                       "(packed into one wide network; default: the preset's)")
    run.add_argument("--quality", help=f"comma-separated quality presets (data, network, training, scoring): "
                                       f"{', '.join(QUALITY_PRESETS)} (default: the preset's); two or more train "
                                       "the same variants at each (a second scale)")
    run.add_argument("--import", dest="plugins", action="append", default=[], metavar="MODULE",
                     help="import MODULE first (e.g. one that registers a new variant); repeatable")
    run.add_argument("--cache-dir", type=Path, default=Path(".cache"), help="feature-classifier cache")
    run.add_argument("--shard", help="K/N: run only the K-th of N deterministic slices of the cells")
    run.add_argument("--backend", default="local", help=f"where cells run: {', '.join(BACKENDS)} (default local)")
    run.add_argument("--ray-address", help="Ray cluster address for ray.init (default: find or start one)")
    run.add_argument("--slurm-cluster", help="submitit cluster: slurm (default when sbatch exists), local, debug")
    run.add_argument("--slurm-partition", help="SLURM partition")
    run.add_argument("--slurm-time", type=int, default=60, help="SLURM time limit per cell, minutes (default 60)")
    run.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per job (cells on CUDA get at least 1)")
    run.add_argument("--peers", help="comma-separated reference models measured at the base spec: "
                                     "smalldiffusion, diffusers, lucidrains (default: the sweep's)")
    run.add_argument("--memory-format", help="comma-separated: contiguous, channels_last (default: the sweep's)")
    run.add_argument("--dtype", help="comma-separated: float32, tf32 (CUDA only), bfloat16 (autocast), float16 "
                                     "(autocast, CUDA only) (default: the sweep's)")
    run.add_argument("--compile", help="comma-separated: off (eager), on (torch.compile), cudagraphs (torch.compile "
                                       "with CUDA graphs, CUDA only) (default: the sweep's)")
    run.add_argument("--time-limit", type=float, metavar="SECONDS",
                     help="stop the run after this much wall time: running cells are killed, finished ones kept "
                          "(exit code 124; --resume finishes the rest)")
    run.set_defaults(handler=_run)

    merge = sub.add_parser("merge", help="combine run folders (shards, machines) into one, each cell once")
    merge.add_argument("dirs", type=Path, nargs="+", help="run folders of one sweep")
    merge.add_argument("--out", type=Path, required=True, help="new run folder for the merged table")
    merge.set_defaults(handler=_merge)

    listing = sub.add_parser("list", help="presets, axes and their levels, quality presets, base configs")
    listing.add_argument("--import", dest="plugins", action="append", default=[], metavar="MODULE",
                         help="import MODULE first, so the axes and variants it adds are listed; repeatable")
    listing.add_argument("--markdown", action="store_true", help="print the table of axes in Markdown (README's)")
    listing.set_defaults(handler=_list)

    report = sub.add_parser("report", help="write report.md, report.html and figures/ for run folders")
    report.add_argument("dirs", type=Path, nargs="+", help="one run folder, or two to compare")
    report.add_argument("--out", type=Path, help="where to write (default: the run folder; DIR_A/compare-NAME_B for two)")
    report.add_argument("--import", dest="plugins", action="append", default=[], metavar="MODULE",
                        help="import MODULE first: the run's plugin, so the axes it added are reported; repeatable")
    report.set_defaults(handler=_report)

    imp = sub.add_parser("import", help="turn a pytest-benchmark JSON into the project's tidy table")
    imp.add_argument("json", type=Path)
    imp.add_argument("--out", type=Path, help="CSV or Parquet to write (default: print)")
    imp.set_defaults(handler=_import)
    return parser


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(v.strip() for v in text.split(",") if v.strip())




def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.report.compute.derived import Derived
    from bench.report.compute.load import load_run
    from bench.report.summary import print_summary

    import_plugins(args.plugins)  # before --axis is parsed: a plugin may add the axis it names
    axes, recipe = parse_axes(args.axis)
    tune_axes, tune = parse_axes(args.tune, "--tune")
    if tune_axes:
        raise ValueError(f"--tune {next(iter(tune_axes))}: only recipe axes are tuned; valid: "
                         f"{', '.join(RECIPE_AXES)}")
    options = SweepOptions(
        preset=args.preset, sweep_file=args.sweep, out=args.out, devices=_names(args.device), resume=args.resume,
        threads=args.threads, base=args.base, batch_size=args.batch_size, design=args.design,
        generator=args.generator, axes=axes, recipe=recipe, tune=tune, tune_seeds=args.tune_seeds,
        parts=tuple(p.strip() for p in args.only.split(",") if p.strip()), seeds=args.seeds,
        seeds_at_once=args.seeds_at_once, plugins=tuple(args.plugins), cache_dir=args.cache_dir,
        shard=parse_shard(args.shard) if args.shard else None, quality=_names(args.quality),
        backend=BackendOptions(name=args.backend, ray_address=args.ray_address, slurm_cluster=args.slurm_cluster,
                               slurm_partition=args.slurm_partition, slurm_time_min=args.slurm_time,
                               slurm_gpus=args.slurm_gpus),
        peers=_names(args.peers), memory_formats=_names(args.memory_format), dtypes=_names(args.dtype),
        compile=_names(args.compile), jobs=args.jobs, time_limit=args.time_limit,
        precision=args.precision, processes=args.processes,
    )
    if args.plan:
        plan = make_plan(options)
        print(plan.describe(probed_pace(plan, plan.cells)))
        return 0
    try:
        table = run_sweep(options, argv)
    except TimeLimitReached:
        if (options.out / "metrics.parquet").exists():
            print_summary(Derived(load_run(options.out)))
        return TimeLimitReached.EXIT_CODE
    print_summary(Derived(load_run(options.out)))
    return 1 if (table["status"] == "error").any() else 0


def _merge(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.store.merge import merge_runs

    table = merge_runs(args.dirs, args.out)
    print(f"merged {len(args.dirs)} folders: {table['cell_id'].nunique()} cells, {len(table)} rows -> {args.out}")
    return 0


def _list(args: argparse.Namespace, argv: list[str]) -> int:
    import_plugins(args.plugins)
    if args.markdown:
        print(markdown_table())
        return 0
    width = max(map(len, [*PRESETS, *AXES, *QUALITY_PRESETS, *BASES])) + 2
    print("Presets (--preset NAME; each a TOML sweep file in bench/plan/presets/):")
    for preset in PRESETS.values():
        print(f"  {preset.name:<{width}} {preset.design}: {preset.description}")
    print("\nAxes (--axis NAME=V1,V2; levels, reference level):")
    for axis in AXES.values():
        print(f"  {axis.name:<{width}} {axis.describe()}")
    print("\nRecipe axes of the quality cells (--axis NAME=V1,V2 or --tune NAME=V1,V2; cost cells ignore them):")
    for axis in RECIPE_AXES.values():
        print(f"  {axis.name:<{width}} {axis.doc}")
    print("\nQuality presets (--quality):")
    for name, config in QUALITY_PRESETS.items():
        recipe = (f"lr {config.lr:g} {config.lr_schedule}, weight decay {config.weight_decay:g}, "
                  f"EMA {config.ema_decay:g}")
        print(f"  {name:<{width}} {config.dataset}, {planner_base_name(config.base)}, {config.train_steps} steps, "
              f"batch {config.batch_size}, {recipe}, N={config.eval_n}"
              f"{', Inception FID' if config.inception_fid else ''}")
    print("\nBase configs (--base NAME; the full spec: python -c 'from variants import BASES; print(BASES[NAME])'):")
    for name, spec in BASES.items():
        print(f"  {name:<{width}} {base_summary(spec)}")
    return 0


def _report(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.report import write_report

    import_plugins(args.plugins)
    path = write_report(args.dirs, args.out)
    print(f"report written to {path}")
    return 0


def _import(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.store.importer import comparison_names, import_benchmark_json

    table = import_benchmark_json(args.json)
    for name in comparison_names(args.json):
        print(f"left out {name}: a side-by-side comparison, not one variant's timing (its figures are in its "
              f"extra_info)", file=sys.stderr)
    if args.out is None:
        print(table.to_string())
    elif args.out.suffix == ".parquet":
        table.to_parquet(args.out, index=False)
    else:
        table.to_csv(args.out, index=False)
    return 0
