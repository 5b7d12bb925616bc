"""Part ``audio``: samples/s of the audio-shard paths against mel shards of the same recordings.

The recordings, ``audio_recordings`` of them, are the first keys of a ``simulate-edits`` folder
(``BenchSettings(audio_src=DIR)``, ``bench --audio-src DIR``) or, without one, recordings of
``audio_seconds`` synthesised for the run with an edit list each, half with a perturbed export
(:func:`~pipelines.bench.data.write_audio_source`). ``pack_audio`` packs them twice, one
recording per shard: as audio shards (``--store audio``) and as mel shards (``--store mel``,
float16 on disk). The pipes (:data:`AUDIO_PATHS`), each built once:

- ``mel shards (float32)``: the floor, mel shards read and decoded to float32;
- ``audio -> mels (torch)`` and ``audio -> mels (librosa)``: both mel backends;
- ``audio -> reedit -> export (no lossy step) -> mels (torch)``: a new edit every epoch, the
  export stage with ``lossy_probability=0``;
- ``audio -> reedit -> export (default: Vorbis half the time) -> mels (torch)``.

Re-edits cut pieces of the simulator's lengths (:func:`~pipelines.bench.data.piece_seconds`: 2-8 s
from 16 s recordings on). Every pipe runs ``audio_epochs`` epochs in one process on one torch
thread, which is what one DataLoader worker delivers; the epochs are interleaved, the order of the
pipes rotating every epoch, so all see the same machine load; there is no warm-up epoch (a pass
over the audio shards before counts the recordings and warms the page cache). Figures: samples/s
of the median epoch (wall clock), its ratio to the floor (how many times slower: median, and
per-epoch spread), CPU ms per sample (which load barely changes), and the real-time factor,
seconds of recording read per wall second: whether the path feeds a training step.
Reported, never asserted.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from streams import Pipe
from streams.tools.audio_pack import pack_audio

from .data import link_audio_source, piece_seconds, write_audio_source
from .rows import AudioResult, AudioRow
from .settings import BenchSettings
from .timing import Spread, Timing, progress_bar

__all__ = ["AUDIO_PATHS", "bench_audio"]

AudioPipe = Callable[[dict[str, list[str]], int, tuple[float, float]], Pipe]
"""A pipe of the audio part from the shard URLs by store (``"audio"``, ``"mel"``), the seed and the
re-edit piece lengths."""


def _audio(urls: dict[str, list[str]], seed: int) -> Pipe:
    return Pipe.from_audio_shards(urls["audio"], seed=seed, shuffle_shards=False)


AUDIO_PATHS: dict[str, AudioPipe] = {
    "mel shards (float32)": lambda urls, seed, pieces: Pipe.from_shards(urls["mel"], seed=seed, shuffle_shards=False,
                                                                        mel_dtype="float32"),
    "audio -> mels (torch)": lambda urls, seed, pieces: _audio(urls, seed).mels(backend="torch"),
    "audio -> mels (librosa)": lambda urls, seed, pieces: _audio(urls, seed).mels(backend="librosa"),
    "audio -> reedit -> export (no lossy step) -> mels (torch)": lambda urls, seed, pieces: _audio(urls, seed).reedit(
        piece_seconds=pieces).export(lossy_probability=0.0).mels(backend="torch"),
    "audio -> reedit -> export (default: Vorbis half the time) -> mels (torch)": lambda urls, seed, pieces: _audio(
        urls, seed).reedit(piece_seconds=pieces).export().mels(backend="torch"),
}
"""The pipes by row name, the floor first."""


def _epoch(pipe: Pipe, epoch: int, expected: int) -> Timing:
    """Wall and CPU seconds of one epoch of ``pipe``; checks it read every recording once."""
    pipe.set_epoch(epoch)
    cpu, wall = time.process_time(), time.perf_counter()
    count = 0
    for sample in pipe:
        count += 1
        del sample  # free it before the next one
    timing = Timing(cpu=time.process_time() - cpu, wall=time.perf_counter() - wall)
    if count != expected:
        raise RuntimeError(f"an epoch read {count} samples from shards holding {expected} recordings; "
                           "the benchmark's figures would not compare like with like")
    return timing


def _pack(src: str, directory: str, settings: BenchSettings) -> dict[str, list[str]]:
    """``src`` packed as audio shards and as mel shards, one recording per shard: the URLs by store."""
    urls = {}
    for store in ("audio", "mel"):
        report = pack_audio(src, os.path.join(directory, store, "bench-%06d.tar"), store=store, max_samples=1,
                            progress=False, overwrite=True)
        urls[store] = [os.path.join(directory, store, name) for name in sorted(report.shards)]
    return urls


def _measure(urls: dict[str, list[str]], source: str, settings: BenchSettings) -> AudioResult:
    seconds = [sample.raw_seconds for sample in _audio(urls, settings.seed)]  # also warms the page cache
    if not seconds:
        raise ValueError(f"the audio part packed no recording from {source}")
    pieces = piece_seconds(min(seconds))
    pipes = {name: make(urls, settings.seed, pieces) for name, make in AUDIO_PATHS.items()}
    names = list(pipes)
    timings: dict[str, list[Timing]] = {name: [] for name in names}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with progress_bar(settings, len(names) * settings.audio_epochs, "bench: audio", "epoch") as bar:
            for epoch in range(settings.audio_epochs):
                shift = epoch % len(names)
                for name in names[shift:] + names[:shift]:
                    bar.set_postfix_str(name)
                    timings[name].append(_epoch(pipes[name], epoch, len(seconds)))
                    bar.update(1)
    finally:
        torch.set_num_threads(threads)
    floor = [t.wall for t in timings[names[0]]]
    rows = []
    for name in names:
        wall = [t.wall for t in timings[name]]
        median = statistics.median(wall)
        rows.append(AudioRow(path=name, samples_per_s=len(seconds) / median, realtime=sum(seconds) / median,
                             seconds=Spread.of(wall),
                             cpu_ms_per_sample=Spread.of([t.cpu / len(seconds) for t in timings[name]], 1e3),
                             ratio=Spread.of_ratios(wall, floor)))
    return AudioResult(source=source, synthetic=settings.audio_src is None, recordings=len(seconds),
                       recording_seconds=seconds, epochs=settings.audio_epochs, rows=rows)


def bench_audio(settings: BenchSettings) -> AudioResult:
    """Samples/s, ratio to the mel-shard floor and real-time factor of each of :data:`AUDIO_PATHS`.

    Works in ``settings.shard_dir``/audio when given (kept), else in a temporary folder.
    """
    with tempfile.TemporaryDirectory(prefix="pipelines-bench-audio-") as temporary:
        directory = os.path.join(settings.shard_dir, "audio") if settings.shard_dir else temporary
        if settings.audio_src is None:
            src = write_audio_source(directory, settings)
        else:
            src = link_audio_source(settings.audio_src, directory, settings.audio_recordings)
        return _measure(_pack(src, directory, settings), settings.audio_src or "synthetic", settings)
