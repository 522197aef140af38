"""Calibrations: the report's intervals checked against synthetic truth, on the code that prints them."""
