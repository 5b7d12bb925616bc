"""Packing a source folder of recordings and EDLs into shards: parallel over entries, all or nothing.

Entries are turned into samples by :func:`streams.tools.audio_source.audio_sample` in worker processes
(in key order, so the same folder gives the same shards), written with
:func:`streams.tools.shard_writer.write_shards` (same shard format and ``index.json`` as ``pack``) into a
temporary folder beside the output, and moved into place only when every entry is done. An error under
``on_error="raise"`` leaves no shard behind; ``on_error="skip"`` counts each bad entry by reason.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import torch
from tqdm import tqdm

from ..audio.mel import MelSettings
from ..sample import SampleError
from .audio_source import AudioSource, audio_members, audio_sample, find_audio_sources
from .shard_writer import move_into_place, sample_members, shards_to_replace, write_shards

__all__ = ["AudioPackReport", "pack_audio"]

ON_ERROR = ("raise", "skip")
STORES = ("mel", "audio")
"""What ``pack_audio`` stores: log-mels and pointers (mel shards), or the audio itself (audio shards)."""


@dataclasses.dataclass
class AudioPackReport:
    """What :func:`pack_audio` did: samples written, shards (name -> index entry), skipped problems."""

    samples: int = 0
    shards: dict[str, dict] = dataclasses.field(default_factory=dict)
    skipped: list[SampleError] = dataclasses.field(default_factory=list)

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(err.reason for err in self.skipped).items()))

    def lines(self) -> list[str]:
        total_mb = sum(entry["bytes"] for entry in self.shards.values()) / 1e6
        reasons = ", ".join(f"{reason} {n}" for reason, n in self.skipped_by_reason().items())
        return [(f"pack-audio: {self.samples} samples into {len(self.shards)} shard(s), {total_mb:,.1f} MB; "
                 f"{len(self.skipped)} skipped{f' ({reasons})' if reasons else ''}")]


def _encode(job: tuple[AudioSource, MelSettings, str, str]) -> tuple[str, tuple | None, SampleError | None]:
    """``(key, (members, frames or None), None)`` for one entry, or ``(key, None, error)``."""
    source, settings, dtype, store = job
    try:
        if store == "audio":
            return source.key, audio_members(source, settings), None
        sample = audio_sample(source, settings, dtype=getattr(torch, dtype))
    except SampleError as err:
        return source.key, None, err
    return source.key, (sample_members(sample), None), None


def _results(sources: list[AudioSource], settings: MelSettings, dtype: str, store: str, workers: int
             ) -> Iterator[tuple[str, tuple | None, SampleError | None]]:
    jobs = [(source, settings, dtype, store) for source in sources]
    if workers <= 1:
        yield from map(_encode, jobs)
        return
    # spawned, not forked: a fork of a process whose torch, OpenMP or soxr threads hold a lock can hang
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: collections.deque = collections.deque()
        try:
            for job in jobs:  # in key order, at most 2 x workers entries in flight (their mels wait in memory)
                pending.append(pool.submit(_encode, job))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped early (an error under "raise"): drop the entries not started
            for future in pending:
                future.cancel()


def pack_audio(src_dir: str, pattern: str, settings: MelSettings | None = None, *, workers: int = 1,
               max_samples: int = 1000, max_bytes: float = 1e9, on_error: str = "raise", dtype: str = "float16",
               progress: bool = True, store: str = "mel", overwrite: bool = False) -> AudioPackReport:
    """Pack every entry of ``src_dir`` (see :mod:`streams.tools.audio_source`) into shards named by ``pattern``.

    ``settings``: the mel settings (default :class:`MelSettings`'s); ``workers`` processes make the mels;
    ``dtype`` (``"float16"``/``"float32"``) is the mels' on-disk dtype. ``store="audio"`` writes audio shards
    instead (:func:`~streams.tools.audio_source.audio_members`: FLAC at the mel rate, EDL, mel settings;
    mels are then made when read), their index entries marked ``"store": "audio"``.
    With ``on_error="raise"`` the first bad entry (in key order) raises its ``SampleError`` (naming the file)
    and nothing is written; with ``"skip"`` bad entries are left out and returned in the report (when all
    are, nothing is written and ``report.samples`` is 0). Like
    ``pack``, the set is written whole or not at all: a folder that already holds shards of ``pattern``
    is refused (``ValueError``) unless ``overwrite``, which replaces them and their ``index.json`` entries.
    """
    settings = MelSettings() if settings is None else settings
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR} ({on_error!r} given)")
    if store not in STORES:
        raise ValueError(f"store must be one of {STORES} ({store!r} given)")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32' ({dtype!r} given)")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1 ({workers!r} given)")
    if "%" not in pattern:
        raise ValueError(f"shard pattern {pattern!r} needs a %d-style field for the shard number, "
                         "like out/train-%06d.tar")
    sources, problems = find_audio_sources(src_dir)
    if problems and on_error == "raise":
        raise problems[0]
    if not sources:
        raise ValueError(f"{src_dir}: no KEY.raw.<ext> + KEY.edl.json pairs to pack; for recordings without edit "
                         "lists, make them with python -m pipelines simulate-edits")
    report = AudioPackReport(skipped=list(problems))
    out_dir = os.path.dirname(os.path.abspath(pattern))
    old = shards_to_replace(pattern, overwrite, "pack-audio")
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".pack-audio-", dir=out_dir)
    try:
        def members() -> Iterator[tuple[str, dict[str, bytes]]]:
            with contextlib.closing(_results(sources, settings, dtype, store, workers)) as results:
                for key, encoded, err in tqdm(results, total=len(sources), unit="recording", desc="pack-audio",
                                              disable=not progress):
                    if err is not None:
                        if on_error == "raise":
                            raise err
                        report.skipped.append(err)
                        tqdm.write(f"skipped {err.reason}: {err}")
                        continue
                    report.samples += 1
                    members, frames = encoded
                    yield (key, members) if frames is None else (key, members, frames)

        staged_pattern = os.path.join(staging, os.path.basename(pattern))
        report.shards = write_shards(members(), staged_pattern, max_samples=max_samples, max_bytes=max_bytes)
        if store == "audio":
            report.shards = {name: {**entry, "store": "audio"} for name, entry in report.shards.items()}
        if report.samples == 0:  # every entry skipped: leave the folder as it was (the CLI exits 1)
            report.shards = {}
        else:
            move_into_place(staging, out_dir, report.shards, old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report
