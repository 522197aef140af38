"""The comparison report: figures and tables from a run folder's tidy table (or two, side by side)."""
from __future__ import annotations

__all__ = ["write_report"]


def __getattr__(name: str):
    # The sections and plots (matplotlib, seaborn) load when a report is written, not with bench.report.compute,
    # which a timing cell's worker imports for its stopping rule.
    if name == "write_report":
        from bench.report.build import write_report
        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
