"""write_report: one run folder (or two, to compare) -> report.md, report.html and figures/*.png.

The pipeline: load the tidy table (compute/load.py), derive its frames once (compute/derived.py), build the
sections from them (sections/), render the document (render/).
"""
from __future__ import annotations

from pathlib import Path

from bench.atomic import atomic_write_text
from bench.report.compute.derived import Derived
from bench.report.compute.load import load_run
from bench.report.compute.run_ratios import run_labels, side_by_side_rows
from bench.report.render.document import Section
from bench.report.render.markup import to_html, to_markdown
from bench.report.sections.across_scales import across_scales_section
from bench.report.sections.against_edm2 import edm2_section
from bench.report.sections.against_paper import adm_section
from bench.report.sections.along_training import along_training_section
from bench.report.sections.against_peers import peers_section
from bench.report.sections.axis_effects import axis_effects_section
from bench.report.sections.both_runs_tables import both_runs_tables_section
from bench.report.sections.checkpointing import checkpoint_section
from bench.report.sections.cost_per_variant import cost_section
from bench.report.sections.design import design_section
from bench.report.sections.noise_floor import noise_floor_sentence, noise_section
from bench.report.sections.learning_curves import curves_section
from bench.report.sections.quality_vs_cost import pareto_section
from bench.report.sections.run_vs_run import run_vs_run_section
from bench.report.sections.sample_grids import samples_section
from bench.report.sections.tables import tables_section
from bench.report.sections.tuning import tuning_section
from bench.report.sections.verdict import verdict_section
from bench.schema import KINDS


def write_report(run_dirs: list[Path], out_dir: Path | None = None) -> Path:
    """Write the report of one run folder, or the comparison of two, and return the path of report.html.

    ``out_dir`` defaults to the run folder, or for a comparison to ``DIR_A/compare-<name of DIR_B>``
    (so a comparison never overwrites a run's own report).
    """
    run_dirs = [Path(d) for d in run_dirs]
    if len(run_dirs) not in (1, 2):
        raise ValueError(f"run folders: {len(run_dirs)} given; valid: one folder, or two to compare")
    runs = [Derived(load_run(d)) for d in run_dirs]
    if out_dir is None:
        out_dir = run_dirs[0] if len(runs) == 1 else run_dirs[0] / f"compare-{runs[1].name}"
    out_dir = Path(out_dir)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stale in figures_dir.glob("*.png"):  # figures of an earlier report of this folder
        stale.unlink()
    if len(runs) == 1:
        run = runs[0]
        atomic_write_text(out_dir / "effects.csv", run.effects.to_csv(index=False))
        title = f"Benchmark report: {run.name}"
        intro = " ".join(filter(None, (run.completeness.sentence(), overview(run), noise_floor_sentence(run))))
        sections = run_sections(run, figures_dir)
    else:
        a, b = runs
        label_a, label_b = run_labels(a, b)
        title = f"Comparison: {a.name} vs {b.name}"
        intro = " ".join(f"{label} — {' '.join(filter(None, (run.completeness.sentence(), overview(run))))}"
                         for run, label in ((a, label_a), (b, label_b)))
        ratios = run_vs_run_section(a, b, figures_dir)
        both = cost_section(side_by_side_rows(a, b), figures_dir, hue="run", name="compare_cost")
        both.title = "Cost per variant, both runs"
        sections = [ratios, both, both_runs_tables_section(a, b)]
    atomic_write_text(out_dir / "report.md", to_markdown(title, intro, sections, out_dir))
    atomic_write_text(out_dir / "report.html", to_html(title, intro, sections))
    return out_dir / "report.html"


def run_sections(run: Derived, figures_dir: Path) -> list[Section]:
    """The sections that apply to ``run``, in order (a builder returns None for a section that does not)."""
    sections = [
        verdict_section(run),
        adm_section(run),
        edm2_section(run),
        tuning_section(run),
        along_training_section(run, figures_dir),
        across_scales_section(run),
        design_section(run),
        noise_section(run),
        axis_effects_section(run, figures_dir),
        cost_section(run.cost_rows, figures_dir),
        peers_section(run, figures_dir),
        checkpoint_section(run, figures_dir),
        pareto_section(run, figures_dir),
        curves_section(run, figures_dir),
        samples_section(run.samples),
        tables_section(run),
    ]
    return [section for section in sections if section is not None]


# Rows of no variant: the real-data floor's, and a timing cell's own (its memory, its calibration).
NOT_VARIANTS = ("real", "group")


def overview(run: Derived) -> str:
    table = run.table
    if table.empty:  # a run stopped before its first cell finished
        return f"No cell finished: the table of run {run.name} holds no rows, so this report has nothing to show yet."
    counts = table["kind"].value_counts()
    kinds = ", ".join(f"{kind} {count}" for kind, count in counts.items())
    run_ids = ", ".join(sorted(set(table["run_id"]) - {""})) or "no run id"
    devices = ", ".join(sorted(set(table["device"]) - {""})) or "none recorded"
    variants = len(set(table["variant"]) - {"", *NOT_VARIANTS})
    not_ok = int((table["status"] != "ok").sum())
    status = f"{not_ok} rows not ok" if not_ok < len(table) else "no row ok: nothing was measured"
    text = (f"Run {run.name} ({run_ids}): {len(table)} rows (by kind: {kinds}); {variants} "
            f"variant{'' if variants == 1 else 's'}; devices: {devices}; {status}. Built from the tidy table alone "
            "(effects also in effects.csv). Costs: medians over repeats or rounds per variant; effects: time from a "
            "blocked factorial model of the timing rounds, counts and memory from matched pairs of cells, quality "
            "from a model over every run with the seed as a block; the primary effects (training step and FD per "
            "switch) are Holm-corrected, the rest exploratory.")
    unknown = sorted(set(counts.index) - set(KINDS))
    if unknown:
        text += f" Rows of kind {', '.join(unknown)} are not drawn by any figure (unknown kind)."
    return text
