"""Measurements of one model: each function returns a list of ``bench.schema.Measurement``."""
