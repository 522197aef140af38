"""The statistics every stage reads the same way, defined once: intervals, tests and "resolved" (stats.py), and
the timing rounds' model (rounds_model.py), which a timing cell's stopping rule and the report both fit."""
