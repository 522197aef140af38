"""Benchmark runner: measures what each U-Net variant costs and buys, into tidy tables."""
