"""Benchmark runner: measures what each U-Net variant costs and buys, into tidy tables.

The stages, one folder each, in the order a sweep goes through them:

- ``plan/``:    options and a sweep file -> a checked list of cells (no model runs here)
- ``run/``:     runs each cell in its own worker process (locally, on Ray or SLURM)
- ``measure/``: what a cell measures: costs (counts, memory), timing rounds, quality (train, sample, score)
- ``store/``:   the run folder: one part per finished cell, the lock, merging folders
- ``report/``:  the tidy table -> derived frames (once) -> sections -> Markdown and HTML

Each stage imports only the stages before it, run/ aside: it drives measure and store (tests/test_layout.py).
Shared by several stages and importing none: ``schema.py`` defines the table, ``statistics/`` the intervals and
the timing rounds' model, ``atomic.py`` the writes, and ``models/`` builds the networks a cell measures (our
U-Net, the peers).
"""
