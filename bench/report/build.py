"""write_report: one run folder (or two, to compare) -> report.md, report.html and figures/*.png."""
from __future__ import annotations

from pathlib import Path

from ..store import atomic_write_text
from .compare import compare_sections, run_labels
from .content import Section
from .costs import checkpoint_section, cost_section
from .effects import axis_effects_section
from .load import Run, load_run
from .peers import peers_section
from .quality import curves_section, pareto_section, samples_section
from .render import to_html, to_markdown
from .tables import tables_section

KNOWN_KINDS = ("cost", "quality", "floor", "check")


def write_report(run_dirs: list[Path], out_dir: Path | None = None) -> Path:
    """Write the report of one run folder, or the comparison of two, and return the path of report.html.

    ``out_dir`` defaults to the run folder, or for a comparison to ``DIR_A/compare-<name of DIR_B>``
    (so a comparison never overwrites a run's own report).
    """
    run_dirs = [Path(d) for d in run_dirs]
    if len(run_dirs) not in (1, 2):
        raise ValueError(f"run folders: {len(run_dirs)} given; valid: one folder, or two to compare")
    runs = [load_run(d) for d in run_dirs]
    if out_dir is None:
        out_dir = run_dirs[0] if len(runs) == 1 else run_dirs[0] / f"compare-{runs[1].name}"
    out_dir = Path(out_dir)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stale in figures_dir.glob("*.png"):  # figures of an earlier report of this folder
        stale.unlink()
    if len(runs) == 1:
        title, intro, sections = f"Benchmark report: {runs[0].name}", overview(runs[0]), run_sections(runs[0], figures_dir)
    else:
        a, b = runs
        label_a, label_b = run_labels(a, b)
        title = f"Comparison: {a.name} vs {b.name}"
        intro = f"{label_a} — {overview(a)} {label_b} — {overview(b)}"
        sections = compare_sections(a, b, figures_dir)
    atomic_write_text(out_dir / "report.md", to_markdown(title, intro, sections, out_dir))
    atomic_write_text(out_dir / "report.html", to_html(title, intro, sections))
    return out_dir / "report.html"


def run_sections(run: Run, figures_dir: Path) -> list[Section]:
    table = run.table
    return [
        axis_effects_section(table, figures_dir),
        cost_section(table, figures_dir),
        peers_section(table, figures_dir),
        checkpoint_section(table, figures_dir),
        pareto_section(table, figures_dir),
        curves_section(table, figures_dir),
        samples_section(run.samples),
        tables_section(table, run.env),
    ]


def overview(run: Run) -> str:
    table = run.table
    counts = table["kind"].value_counts()
    kinds = ", ".join(f"{kind} {count}" for kind, count in counts.items())
    run_ids = ", ".join(sorted(set(table["run_id"]) - {""})) or "no run id"
    devices = ", ".join(sorted(set(table["device"]) - {""})) or "none recorded"
    text = (f"Run {run.name} ({run_ids}): {len(table)} rows (by kind: {kinds}); {table['variant'].nunique()} "
            f"variants; devices: {devices}; {int((table['status'] != 'ok').sum())} rows not ok. Built from the "
            "tidy table alone. Costs: medians over repeats per cell; intervals: 95% t-intervals over matched "
            "pairs or seeds.")
    unknown = sorted(set(counts.index) - set(KNOWN_KINDS))
    if unknown:
        text += f" Rows of kind {', '.join(unknown)} are not drawn by any figure (unknown kind)."
    return text
