"""Sweep designs: which specs a sweep measures (``grid``: factorial, fractional, one at a time, ladder), the
two-level fractions behind ``fractional``, and which specs build one network (measured once)."""
from .duplicates import describe_merge, distinct_networks
from .grid import DESIGNS, Rung, fractional_generator, grid, ladder, ladder_rungs

__all__ = ["DESIGNS", "Rung", "describe_merge", "distinct_networks", "fractional_generator", "grid", "ladder",
           "ladder_rungs"]
