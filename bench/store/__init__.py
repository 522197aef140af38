"""The run folder: atomic cell parts, the consolidated tables, the one-writer lock, merging folders."""
