"""Executing a plan: every cell in a fresh worker process, on the local machine, Ray or SLURM."""
