"""Part ``memory``: peak and epoch-end resident memory of the full config, in a child process.

The child is :mod:`pipelines.bench.memory_child`, run as ``python -m`` so that the parent's own
allocations do not count.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .data import ShardSet
from .rows import MemoryResult
from .settings import TARGETS, BenchSettings
from .timing import child_env, progress_bar

__all__ = ["CHILD_SETTINGS", "bench_memory"]

CHILD_SETTINGS = ("seed", "shuffle_buffer", "pair_buffer", "batch_size", "memory_epochs", "e2e_n_mels", "e2e_threads",
                  "mel_dtype")
"""The settings the child needs (the rest keep their defaults there)."""


def bench_memory(shards: ShardSet, settings: BenchSettings) -> MemoryResult:
    """Peak and epoch-end resident memory of the full config (0 workers), in a child process.

    The stated constant is the child's resident memory before the first item (interpreter,
    torch, the pipeline, after a warm-up pass over a few small samples and ``malloc_trim``) plus
    the in-flight allowance: two of the largest batch (the batch the loop still holds and the
    one being collated) and two of the largest sample (a stage's input and output). "Buffered"
    is what the shuffle and pairing buffers hold (tensor storages, counted once), read from the
    live nodes after every batch. The target: peak <= constant + 1.5 x the largest buffered
    bytes seen. Growth is judged on the epoch-end figures after ``malloc_trim`` when glibc is
    there (memory still in use), else on the plain ones.
    """
    request = {"urls": list(shards.urls), "n_mels": shards.n_mels,
               "settings": {name: getattr(settings, name) for name in CHILD_SETTINGS}}
    with progress_bar(settings, None, "bench: memory (child process)", "s") as bar:
        bar.refresh()
        child = subprocess.run([sys.executable, "-m", "pipelines.bench.memory_child"], input=json.dumps(request),
                               capture_output=True, text=True, env=child_env(), timeout=1800)
    if child.returncode != 0:
        raise RuntimeError(f"the memory benchmark's child process failed:\n{child.stderr[-3000:]}")
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    epochs = measured["epochs"]
    mb = 1e6
    baseline = measured["baseline_rss"]
    peak = max([e["peak_rss"] for e in epochs] + [measured["high_water_rss"] or 0])
    buffered = max(e["buffered_bytes_max"] for e in epochs)
    in_flight = 2 * max(e["largest_batch_bytes"] for e in epochs) + 2 * max(e["largest_sample_bytes"] for e in epochs)
    constant = baseline + in_flight
    bound = constant + TARGETS.memory_buffer_factor * buffered
    ends = [e["end_rss"] for e in epochs]
    trimmed = [e["trimmed_rss"] for e in epochs]
    judged = trimmed if None not in trimmed else ends
    growth = judged[-1] - judged[0]
    return MemoryResult(
        shuffle_buffer=settings.shuffle_buffer, pair_buffer=settings.pair_buffer, batch_size=settings.batch_size,
        epochs=len(epochs), baseline_mb=baseline / mb, peak_mb=peak / mb,
        high_water_mb=(measured["high_water_rss"] or 0) / mb, buffered_mb=buffered / mb,
        buffered_items=max(e["buffered_items_max"] for e in epochs), in_flight_mb=in_flight / mb,
        constant_mb=constant / mb, bound_mb=bound / mb,
        peak_over_baseline_per_buffered=(peak - baseline) / buffered if buffered else None,
        epoch_end_mb=[end / mb for end in ends], epoch_peak_mb=[e["peak_rss"] / mb for e in epochs],
        epoch_end_trimmed_mb=None if judged is ends else [value / mb for value in trimmed],
        growth_mb=growth / mb, growth_fraction_of_peak=growth / peak,
        growth_measured_on="trimmed" if judged is trimmed else "plain", rss_samples=measured["rss_samples"])
