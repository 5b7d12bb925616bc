"""Streaming a configured pipeline end to end, with a progress bar and a summary of what flowed."""

from __future__ import annotations

import collections
import dataclasses
import time

from torch.utils.data import DataLoader
from tqdm import tqdm

from streams import Batch, Pipe, Sample
from streams.origin import source_samples
from streams.reading.skips import SkipReport

from .build import build_pipe
from .config import Config

__all__ = ["RunSummary", "StallError", "run_pipeline"]


class StallError(RuntimeError):
    """No item came from the DataLoader workers within the stall timeout (a worker stopped or stuck)."""


@dataclasses.dataclass
class RunSummary:
    """What a run streamed. Frames count raw plus edit frames; MB counts mel and pointer bytes.

    ``samples`` counts samples as the source read them: a concatenated pair counts as its two
    parts; ``items`` counts what the pipe emitted (a pair is one). ``skips`` is the source's
    accounting (:class:`~streams.reading.skips.SkipReport`): ``skips.read == skips.yielded +
    skips.skipped``, and ``samples == skips.yielded`` when the run consumed every pass to its end
    and no stage dropped samples (``drop_last``).
    """

    epochs: int = 0
    samples: int = 0
    batches: int = 0
    raw_frames: int = 0
    edit_frames: int = 0
    padded_frames: int = 0
    largest_batch_frames: int = 0
    megabytes: float = 0.0
    seconds: float = 0.0
    fired: dict[str, int] = dataclasses.field(default_factory=collections.Counter)
    items: int = 0
    skips: SkipReport = dataclasses.field(default_factory=SkipReport)

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0

    @property
    def padding_efficiency(self) -> float | None:
        """Real frames / padded frames over all batches (None without batching)."""
        return (self.raw_frames + self.edit_frames) / self.padded_frames if self.padded_frames else None

    def add(self, item: Sample | Batch) -> int:
        """Count one item from the stream; return the source samples it held (a pair's parts count)."""
        if isinstance(item, Batch):
            metas = item.meta
            origins = item.origins
            self.batches += 1
            self.raw_frames += int(item.raw_lengths.sum())
            self.edit_frames += int(item.edit_lengths.sum())
            self.padded_frames += item.padded_frames
            self.largest_batch_frames = max(self.largest_batch_frames, item.padded_frames)
            self.megabytes += sum(t.nbytes for t in (item.raw_mel, item.edit_mel, item.pointers)) / 1e6
        elif isinstance(item, Sample):
            metas = [item.meta]
            origins = [item.origin]
            self.raw_frames += item.raw_frames
            self.edit_frames += item.edit_frames
            self.megabytes += item.nbytes / 1e6
        else:
            raise TypeError(f"the pipe yielded a {type(item).__name__}; run expects samples or batches")
        for meta in metas:
            self._count_records(meta)
        held = sum(source_samples(origin) for origin in origins)
        self.items += len(metas)
        self.samples += held
        return held

    def _count_records(self, meta: dict) -> None:
        """Count ``meta``'s augmentation records, and those of a pair's parts (made before pairing)."""
        for record in meta.get("augmentations", ()):
            self.fired[record["stage"]] += 1
        for part in meta.get("parts", ()):
            self._count_records(part)

    def lines(self) -> list[str]:
        paired = f" (in {self.items} items after pairing)" if self.items != self.samples else ""
        out = [f"epochs {self.epochs}, samples {self.samples}{paired}, batches {self.batches}, "
               f"frames {self.raw_frames:,} raw + {self.edit_frames:,} edit, {self.megabytes:,.1f} MB, "
               f"{self.seconds:.2f} s ({self.samples_per_second:,.1f} samples/s, "
               f"{self.megabytes / self.seconds if self.seconds else 0:,.1f} MB/s)"]
        if self.padding_efficiency is not None:
            out.append(f"padding efficiency {self.padding_efficiency:.3f} (real / padded frames), "
                       f"largest batch {self.largest_batch_frames:,} padded frames")
        fired = ", ".join(f"{k} {v}" for k, v in sorted(self.fired.items()))
        out.append(f"augmentations applied: {fired or 'none'}")
        if self.skips.passes:
            out.extend(self.skips.lines())
        return out


def _with_stall_timeout(config: Config, seconds: float | None) -> Config:
    """``config`` with ``source.stall_timeout`` set to ``seconds`` where the config leaves it unset."""
    if seconds is None or config.source.stall_timeout is not None:
        return config
    return dataclasses.replace(config, source=dataclasses.replace(config.source, stall_timeout=seconds))


def run_pipeline(config: Config | Pipe, *, epochs: int = 1, num_workers: int = 0, limit: int | None = None,
                 progress: bool = True, stall_timeout: float | None = None) -> RunSummary:
    """Stream ``config``'s pipe through a ``DataLoader`` for ``epochs``; return what flowed.

    ``limit`` stops after that many samples (per run). The progress bar shows samples/s and MB/s.
    The summary's ``skips`` is ``pipe.skip_report()`` at the end: for a pipe given here that was
    iterated before, it includes those passes too.

    ``stall_timeout`` (seconds) bounds waiting: a ``pipe:`` shard read that gets no data for
    that long fails naming the shard (``source.stall_timeout`` of a config, when the config
    leaves it unset), and with workers, no item for twice that long from the DataLoader (a
    worker stopped or stuck) raises :class:`StallError`. The factor two lets a stalled read fail
    first, with the shard named.
    """
    if stall_timeout is not None and not stall_timeout > 0:
        raise ValueError(f"stall_timeout must be a number of seconds > 0 or None ({stall_timeout!r} given)")
    pipe = config if isinstance(config, Pipe) else build_pipe(_with_stall_timeout(config, stall_timeout))
    wait = 2 * stall_timeout if stall_timeout is not None and num_workers > 0 else 0
    loader = DataLoader(pipe, batch_size=None, num_workers=num_workers, timeout=wait,
                        persistent_workers=num_workers > 0 and epochs > 1)
    try:
        return _stream(pipe, loader, epochs=epochs, limit=limit, progress=progress)
    except RuntimeError as err:
        if wait and "DataLoader timed out" in str(err):  # torch's only signal for it is this RuntimeError
            raise StallError(f"no item from the DataLoader workers for {wait:g} s (stall timeout {stall_timeout:g} s): "
                             "a worker is stopped or stuck; check the workers' processes and the shard source, or "
                             "raise --stall-timeout if items are just slow") from err
        raise


def _stream(pipe: Pipe, loader: DataLoader, *, epochs: int, limit: int | None, progress: bool) -> RunSummary:
    summary = RunSummary()
    start = time.perf_counter()
    with tqdm(unit="sample", disable=not progress, dynamic_ncols=True) as bar:
        for epoch in range(epochs):
            pipe.set_epoch(epoch)
            bar.set_description(f"epoch {epoch}")
            for item in loader:
                bar.update(summary.add(item))
                elapsed = time.perf_counter() - start
                bar.set_postfix_str(f"{summary.megabytes / elapsed:,.1f} MB/s", refresh=False)
                if limit is not None and summary.samples >= limit:
                    break
            summary.epochs += 1
            if limit is not None and summary.samples >= limit:
                break
    summary.seconds = time.perf_counter() - start
    summary.skips = pipe.skip_report()
    return summary


