"""Part ``e2e``: samples/s through ``build_pipe`` and a ``DataLoader``, per pipe and worker count.

Three pipes (:data:`~pipelines.bench.settings.E2E_KINDS`) on the same shards: read-only samples
(no shuffle buffer, no batching), the read-only floor (the full config with augmentation off:
same shuffle buffer and batches) and the full config (every augmentation block of the plan
enabled, pairing included). Each runs with each worker count; scaling is samples/s relative to
the in-process rate (0 workers) and to one worker.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import psutil
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from streams import Batch, Sample
from streams.origin import source_samples

from ..build import build_pipe
from .data import ShardSet, e2e_config
from .rows import E2EFigures, E2EResult, E2ERow
from .settings import E2E_KINDS, BenchSettings
from .timing import Spread, Timing, cpu_seconds, progress_bar

__all__ = ["bench_e2e", "item_parts"]

_CPU_TICK = 0.01
"""The resolution of the operating system's CPU times (psutil): an epoch of the quick run can
take less, so a ratio's CPU seconds are counted as at least this."""


def item_parts(item: Any) -> int:
    """Source samples inside a sample or batch the pipe yielded."""
    if isinstance(item, Batch):
        return sum(source_samples(origin) for origin in item.origins)
    if isinstance(item, Sample):
        return source_samples(item.origin)
    raise TypeError(f"the pipe yielded a {type(item).__name__}; the benchmark expects samples or batches")


def _epoch_timing(loader: DataLoader, epoch: int, expected: int, bar: tqdm) -> Timing:
    """Wall and CPU seconds (this process and its workers) of one epoch of ``loader``'s pipe.

    Checks that every shard sample was read exactly once, so the pipes compare like with like.
    """
    loader.dataset.set_epoch(epoch)
    process = psutil.Process()
    cpu, wall = cpu_seconds(process), time.perf_counter()
    read = 0
    for item in loader:
        parts = item_parts(item)
        read += parts
        bar.update(parts)
        del item  # free it before the next one arrives
    timing = Timing(cpu=cpu_seconds(process) - cpu, wall=time.perf_counter() - wall)
    if read != expected:
        raise RuntimeError(f"an epoch read {read} samples from shards holding {expected}; "
                           "the benchmark's figures would not compare like with like")
    return timing


def bench_e2e(shards: ShardSet, settings: BenchSettings) -> E2EResult:
    """Samples/s and MB/s of each pipe, per worker count.

    Every (pipe, workers) pair gets one ``DataLoader`` with persistent workers, all alive at
    once: an untimed warm-up epoch each (worker start-up, first reads), then ``e2e_repeats``
    rounds in which each loader runs one timed epoch, in an order rotated every round, so that
    every pipe and worker count sees the same machine load. Worker start-up belongs to the
    first-batch part, not to throughput.

    Samples/s counts samples read from the shards (a pair counts as its two parts); MB/s counts
    their decoded bytes (``settings.mel_dtype`` mels, int64 pointers), so every pipe moves the
    same data. CPU ms per sample (this process plus its workers) is reported too: unlike
    throughput, other jobs on the machine barely change it. ``cores_busy`` (CPU seconds / wall
    seconds) shows how much of the machine the run actually got: scaling needs free cores.
    """
    urls = list(shards.urls)
    configs = {kind: e2e_config(urls, settings, kind=kind) for kind in E2E_KINDS}
    runs = [(workers, kind) for workers in settings.workers for kind in configs]
    timings: dict[tuple[int, str], list[Timing]] = {run: [] for run in runs}
    loaders = {(workers, kind): DataLoader(build_pipe(configs[kind]), batch_size=None, num_workers=workers,
                                           persistent_workers=workers > 0) for workers, kind in runs}
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.e2e_threads)
    try:
        with progress_bar(settings, len(runs) * (settings.e2e_repeats + 1) * shards.samples, "bench: end to end",
                          "sample") as bar:
            for (workers, kind), loader in loaders.items():
                bar.set_postfix_str(f"warm-up: {kind}, {workers} worker(s)")
                _epoch_timing(loader, settings.e2e_repeats, shards.samples, bar)
            for repeat in range(settings.e2e_repeats):
                shift = repeat % len(runs)
                for workers, kind in runs[shift:] + runs[:shift]:
                    bar.set_postfix_str(f"{kind}, {workers} worker(s)")
                    timings[workers, kind].append(_epoch_timing(loaders[workers, kind], repeat, shards.samples, bar))
    finally:
        torch.set_num_threads(threads)
        del loaders  # persistent workers exit with their loaders
    megabytes = shards.decoded_bytes(settings.mel_dtype) / 1e6
    wall = {run: [t.wall for t in timings[run]] for run in runs}
    median = {run: statistics.median(wall[run]) for run in runs}
    rows = []
    for workers in settings.workers:
        figures = {}
        for kind in configs:
            figures[kind] = E2EFigures(
                seconds=Spread.of(wall[workers, kind]), samples_per_s=shards.samples / median[workers, kind],
                mb_per_s=megabytes / median[workers, kind],
                cpu_ms_per_sample=Spread.of([t.cpu / shards.samples for t in timings[workers, kind]], 1e3),
                cores_busy=statistics.median(t.cpu / t.wall for t in timings[workers, kind]))
        rows.append(E2ERow(workers=workers, kinds=figures,
                           ratio=Spread.of_ratios(wall[workers, "floor"], wall[workers, "full"]),
                           cpu_ratio=Spread.of_ratios([max(t.cpu, _CPU_TICK) for t in timings[workers, "full"]],
                                                      [max(t.cpu, _CPU_TICK) for t in timings[workers, "floor"]])))
    scaling = {kind: {str(w): median[1, kind] / median[w, kind] for w in settings.workers}
               for kind in configs} if 1 in settings.workers else {}
    in_process = {kind: {str(w): Spread.of_ratios(wall[0, kind], wall[w, kind]) for w in settings.workers}
                  for kind in configs} if 0 in settings.workers else {}
    return E2EResult(shards=shards.pattern, synthetic=shards.synthetic, samples=shards.samples, n_mels=shards.n_mels,
                     mel_dtype=settings.mel_dtype, decoded_mb=megabytes, disk_mb=shards.disk_bytes / 1e6,
                     repeats=settings.e2e_repeats, threads=settings.e2e_threads, rows=rows, scaling=scaling,
                     in_process=in_process)
