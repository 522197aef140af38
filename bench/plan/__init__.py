"""Planning: the command line and a sweep (a preset or a TOML file) -> one checked ``Plan`` of cells.

Nothing here runs a model: a bad option fails here, before any work.
"""
