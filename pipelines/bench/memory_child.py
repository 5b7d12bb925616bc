"""The memory part's child process: ``python -m pipelines.bench.memory_child`` (see :mod:`pipelines.bench.memory`).

Reads a request on stdin (``{"urls": [...], "settings": {...}}``, the
:data:`~pipelines.bench.memory.CHILD_SETTINGS` of :class:`~pipelines.bench.settings.BenchSettings`),
runs the full config for ``memory_epochs`` epochs with 0 workers, and prints one JSON line with
what it measured: the baseline, and per epoch the peak and end resident memory, the bytes held
by the shuffle and pairing buffers and the largest batch and sample. A child, so that the
parent's allocations do not count.
"""

from __future__ import annotations

import ctypes
import gc
import json
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import psutil
import torch

from streams import Batch, MemorySource, Pipe, Sample

from ..build import build_pipe, build_stages
from ..config import Config
from .data import bench_sample, decoded_bytes, e2e_config
from .settings import BenchSettings, StageShape

__all__ = ["main"]


class _RssSampler(threading.Thread):
    """Samples this process's resident memory every ``interval`` seconds; keeps the peak since reset."""

    def __init__(self, interval: float = 0.002):
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.interval = interval
        self.peak = self.process.memory_info().rss
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss = self.process.memory_info().rss
            self.peak = max(self.peak, rss)
            self.samples += 1
            time.sleep(self.interval)

    def take_peak(self) -> int:
        """The peak since the last call (or start), then reset to the current value."""
        peak = max(self.peak, self.process.memory_info().rss)
        self.peak = self.process.memory_info().rss
        return peak

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _buffered(nodes: Sequence[Any]) -> tuple[int, int]:
    """(items, bytes) held in the ``buffer`` lists of live nodes: the shuffle and pairing buffers.
    Bytes are those of the tensor storages behind the samples (a storage shared by views counts once)."""
    held = [item for node in nodes if isinstance(getattr(node, "buffer", None), list) for item in node.buffer]
    storages = [tensor.untyped_storage() for sample in held if isinstance(sample, Sample)
                for tensor in (sample.raw_mel, sample.edit_mel, sample.pointers)]
    return len(held), sum({storage.data_ptr(): storage.nbytes() for storage in storages}.values())


def _batch_bytes(batch: Batch) -> int:
    return sum(t.untyped_storage().nbytes() for t in (batch.raw_mel, batch.edit_mel, batch.pointers,
                                                     batch.raw_mask, batch.edit_mask))


def _largest_sample_bytes(batch: Batch) -> int:
    n_mels, mel_bytes = batch.raw_mel.shape[1], batch.raw_mel.element_size()
    return max(decoded_bytes(int(r), int(e), n_mels, mel_bytes) for r, e in zip(batch.raw_lengths, batch.edit_lengths))


def _trimmed_rss(process: psutil.Process) -> int | None:
    """Resident memory after glibc's ``malloc_trim(0)`` hands freed heap pages back to the OS
    (``None`` without glibc). What remains is memory still in use, so a leak shows up here even
    when the allocator's cache of freed pages hides or mimics one in the plain figure."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return None
    return process.memory_info().rss


def _warm_up(config: Config, settings: BenchSettings, n_mels: int) -> None:
    """Run the config's stages once over a few small in-memory samples (1,200 raw frames), so
    that torch's and the stages' one-off allocations land in the baseline, not in the figure."""
    count = settings.shuffle_buffer + settings.pair_buffer + 2 * settings.batch_size + 8
    dtype = {"float32": torch.float32, "float16": torch.float16}[settings.mel_dtype]
    samples = []
    for i in range(count):
        sample = bench_sample(f"warm-up-{i}", StageShape(n_mels, 1200, 800), seed=settings.seed)
        samples.append(sample.replace(raw_mel=sample.raw_mel.to(dtype), edit_mel=sample.edit_mel.to(dtype)))
    for batch in Pipe([MemorySource(samples), *build_stages(config)[1:]], seed=config.seed):
        del batch


def measure(urls: list[str], n_mels: int, settings: BenchSettings) -> dict[str, Any]:
    """What the child measures (see the module docstring), as a JSON-friendly dict."""
    torch.set_num_threads(settings.e2e_threads)
    config = e2e_config(urls, settings, kind="full")
    pipe = build_pipe(config)
    _warm_up(config, settings, n_mels)
    process = psutil.Process()
    gc.collect()
    baseline = _trimmed_rss(process) or process.memory_info().rss
    sampler = _RssSampler()
    sampler.start()
    epochs = []
    for epoch in range(settings.memory_epochs):
        pipe.set_epoch(epoch)
        passing = iter(pipe)
        buffered_items: list[int] = []
        buffered_bytes: list[int] = []
        largest_batch = largest_sample = 0
        for batch in passing:
            items, held = _buffered(passing.nodes)
            buffered_items.append(items)
            buffered_bytes.append(held)
            largest_batch = max(largest_batch, _batch_bytes(batch))
            largest_sample = max(largest_sample, _largest_sample_bytes(batch))
        del passing, batch
        gc.collect()
        end_rss = process.memory_info().rss
        epochs.append({"end_rss": end_rss, "trimmed_rss": _trimmed_rss(process), "peak_rss": sampler.take_peak(),
                       "buffered_bytes_max": max(buffered_bytes),
                       "buffered_bytes_median": statistics.median(buffered_bytes),
                       "buffered_items_max": max(buffered_items), "largest_batch_bytes": largest_batch,
                       "largest_sample_bytes": largest_sample})
    sampler.stop()
    try:
        import resource

        high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    except ImportError:  # not on Unix: the sampler's peak stands alone
        high_water = None
    return {"baseline_rss": baseline, "epochs": epochs, "high_water_rss": high_water, "rss_samples": sampler.samples}


def main() -> None:
    """Request JSON on stdin, result JSON (one line) on stdout."""
    request = json.load(sys.stdin)
    settings = BenchSettings(**request["settings"])
    print(json.dumps(measure(request["urls"], request["n_mels"], settings)), flush=True)


if __name__ == "__main__":
    main()
