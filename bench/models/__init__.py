"""Where a cell's network comes from: our builder (``variants.build``) or a peer's closest match, and the
memory a network's state takes (planned from a meta-device build, before any work)."""
