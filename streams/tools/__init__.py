"""Tools: invariant checks, the simulated editor, packing, shard checks and previews."""
