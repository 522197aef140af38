"""The comparison report: figures and tables from a run folder's tidy table (or two, side by side)."""
from bench.report.build import write_report

__all__ = ["write_report"]
