"""What a shard set holds, before training on it: ``python -m pipelines info SHARDS...``.

:func:`shard_stats` reads one shard and measures each sample; :func:`summarize` adds the shards
up into a :class:`ShardSetInfo`: samples, hours of raw and edit audio (frames × ``hop_length`` /
``sample_rate`` from each sample's ``meta.json`` when both are there; frames alone otherwise),
``n_mels``, the dtypes as stored, a histogram of lengths, the edit structure, and the bytes of
each shard. The edit structure, from the pointers of a sample with ``T_edit`` edit frames:

* **segments**: runs of edit frames that copy consecutive raw frames (``pointers[i] ==
  pointers[i-1] + 1``); an unedited recording is one segment;
* **jumps**: edit frames where a new segment starts after the first (``segments - 1`` per
  sample), as a fraction of all edit frames: how often the editor cut;
* **repeats**: edit frames that point at a raw frame an earlier edit frame already used
  (``T_edit - unique pointers``), as a fraction of all edit frames: how much was repeated.

Bad samples are counted by reason and left out of the figures, and a shard that cannot be read to
its end counts the samples before the damage and is named (``check`` lists every problem).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..reading.decode import decode_npy, decode_record
from ..reading.remote import is_http, remote_size
from ..reading.shardlist import is_local, local_path, shard_file_name
from ..reading.tar_records import ANY_LAYOUT, Record, ShardReadError, iter_records
from ..sample import Sample, SampleError, check_sample
from .shard_check import is_audio_record

__all__ = ["SampleStats", "ShardSetInfo", "ShardStats", "audio_record_stats", "dumps", "sample_stats", "shard_size",
           "shard_stats", "summarize", "text_histogram"]


@dataclasses.dataclass(frozen=True)
class SampleStats:
    """One sample's figures (frames, dtypes as stored, edit structure, seconds when meta says)."""

    key: str
    n_mels: int
    raw_frames: int
    edit_frames: int
    dtypes: tuple[str, str, str]
    segments: int
    repeats: int
    raw_seconds: float | None
    edit_seconds: float | None


@dataclasses.dataclass(frozen=True)
class ShardStats:
    """One shard: its samples' figures, bad samples by reason, its size in bytes (``None`` when the
    size cannot be known without reading it, as for ``pipe:`` URLs), and for a shard that could not be
    read to its end, why (``damage``; the samples before it are counted)."""

    url: str
    samples: list[SampleStats]
    bad: dict[str, int]
    nbytes: int | None
    damage: str | None = None


def _seconds(frames: int, meta: dict[str, Any]) -> float | None:
    hop, rate = meta.get("hop_length"), meta.get("sample_rate")
    valid = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (hop, rate))
    return frames * hop / rate if valid else None


def sample_stats(sample: Sample, stored_dtypes: tuple[str, str, str] | None = None) -> SampleStats:
    """The figures of one checked sample; ``stored_dtypes`` (raw, edit, pointers) default to the tensors'.

    >>> import torch
    >>> s = Sample("a", torch.zeros(2, 9), torch.zeros(2, 6), torch.tensor([0, 1, 2, 7, 8, 1]))
    >>> stats = sample_stats(s)
    >>> stats.segments, stats.repeats, stats.raw_seconds
    (3, 1, None)
    """
    pointers = sample.pointers.numpy()
    jumps = int(np.count_nonzero(np.diff(pointers) != 1))
    dtypes = stored_dtypes or tuple(str(t.dtype).removeprefix("torch.")
                                    for t in (sample.raw_mel, sample.edit_mel, sample.pointers))
    return SampleStats(key=sample.key, n_mels=sample.n_mels, raw_frames=sample.raw_frames,
                       edit_frames=sample.edit_frames, dtypes=dtypes, segments=jumps + 1,
                       repeats=int(pointers.size - np.unique(pointers).size),
                       raw_seconds=_seconds(sample.raw_frames, sample.meta),
                       edit_seconds=_seconds(sample.edit_frames, sample.meta))


def audio_record_stats(record: Record) -> SampleStats:
    """The figures of an audio shard's record from its headers, without decoding the audio: frames from the
    FLAC headers (the edit's from the EDL when it is rendered), pointers by the pointer rule; dtypes as
    stored are ``flac`` (``rendered`` for an edit made from the EDL) and ``edl`` for the pointers.
    ``SampleError`` naming the member when one is unusable (``check`` decodes everything)."""
    from ..audio.mel import mel_frames
    from ..audio.timeline import EditMap, frame_pointers
    from ..reading.audio_decode import decode_audio_header

    settings, edl, raw_samples, edit_samples = decode_audio_header(record)
    hop = settings.hop_length
    raw_frames, edit_frames = mel_frames(raw_samples, hop), mel_frames(edit_samples, hop)
    edit_map = EditMap.from_edl(edl, settings.sample_rate).with_edit_samples(edit_samples)
    pointers = frame_pointers(edit_map, hop, edit_frames, raw_frames)
    meta = settings.as_meta()
    return SampleStats(key=record.key, n_mels=settings.n_mels, raw_frames=raw_frames, edit_frames=edit_frames,
                       dtypes=("flac", "flac" if "edit.flac" in record.members else "rendered", "edl"),
                       segments=int(np.count_nonzero(np.diff(pointers) != 1)) + 1,
                       repeats=int(pointers.size - np.unique(pointers).size),
                       raw_seconds=_seconds(raw_frames, meta), edit_seconds=_seconds(edit_frames, meta))


def shard_size(url: str) -> int | None:
    """Bytes of the shard file: local size, HTTP ``Content-Length``, else ``None``."""
    if is_local(url):
        return os.path.getsize(local_path(url))
    if is_http(url):
        return remote_size(url)
    return None


def shard_stats(url: str) -> ShardStats:
    """Read the shard at ``url`` and measure every sample; a shard that cannot be read to its end keeps
    the samples before the damage and says why in ``damage`` (its reason, as ``check`` reports it)."""
    samples, bad = [], collections.Counter()
    damage = None
    try:
        for record in iter_records(url, layout=ANY_LAYOUT):
            try:
                if is_audio_record(record):
                    samples.append(audio_record_stats(record))
                    continue
                sample = check_sample(decode_record(record))
                stored = tuple(str(decode_npy(record.members[m], what=m).dtype)
                               for m in ("raw_mel.npy", "edit_mel.npy", "pointers.npy"))
            except SampleError as err:
                bad[err.reason] += 1
                continue
            samples.append(sample_stats(sample, stored))
    except ShardReadError as err:
        damage = err.reason
    nbytes = shard_size(url) if damage != "missing_shard" else None
    return ShardStats(url=url, samples=samples, bad=dict(bad), nbytes=nbytes, damage=damage)


def text_histogram(values: Sequence[int], *, bins: int = 8, width: int = 40) -> list[str]:
    """Lines of a histogram of ``values`` over ``bins`` equal ranges: ``low - high | #### count``.

    >>> text_histogram([1, 2, 2, 9], bins=2, width=4)
    ['1 - 5 | ####  3', '6 - 9 | ##    1']
    """
    if not values:
        return []
    low, high = min(values), max(values)
    bins = max(1, min(bins, high - low + 1))
    edges = np.linspace(low, high + 1, bins + 1)
    counts, _ = np.histogram(values, bins=edges)
    digits = len(f"{high:,}")
    peak = max(int(counts.max()), 1)
    lines = []
    for start, stop, count in zip(edges[:-1], edges[1:], counts):
        first, last = math.ceil(start), math.ceil(stop) - 1
        bar = "#" * math.ceil(width * int(count) / peak)
        lines.append(f"{first:>{digits},} - {last:>{digits},} | {bar:<{width}} {int(count):>2}")
    return lines


@dataclasses.dataclass(frozen=True)
class ShardSetInfo:
    """The figures of a shard set (see the module docstring); :meth:`to_json` and :meth:`lines`."""

    shards: list[ShardStats]

    @property
    def samples(self) -> list[SampleStats]:
        return [s for shard in self.shards for s in shard.samples]

    def to_json(self) -> dict[str, Any]:
        samples = self.samples
        edit_frames = sum(s.edit_frames for s in samples)
        segments = [s.segments for s in samples]
        timed = [s for s in samples if s.raw_seconds is not None]
        bad = sum((collections.Counter(shard.bad) for shard in self.shards), collections.Counter())
        sizes = [shard.nbytes for shard in self.shards]
        return {
            "shards": len(self.shards),
            "samples": len(samples),
            "bad_samples": dict(sorted(bad.items())),
            "bytes": sum(sizes) if None not in sizes else None,
            "raw_frames": sum(s.raw_frames for s in samples),
            "edit_frames": edit_frames,
            "raw_hours": sum(s.raw_seconds for s in timed) / 3600,
            "edit_hours": sum(s.edit_seconds for s in timed) / 3600,
            "samples_without_timing": len(samples) - len(timed),
            "n_mels": sorted({s.n_mels for s in samples}),
            "dtypes": {part: dict(sorted(collections.Counter(s.dtypes[i] for s in samples).items()))
                       for i, part in enumerate(("raw_mel", "edit_mel", "pointers"))},
            "raw_frames_per_sample": _spread([s.raw_frames for s in samples]),
            "edit_frames_per_sample": _spread([s.edit_frames for s in samples]),
            "segments_per_sample": _spread(segments),
            "jump_fraction": sum(n - 1 for n in segments) / edit_frames if edit_frames else 0.0,
            "repeat_fraction": sum(s.repeats for s in samples) / edit_frames if edit_frames else 0.0,
            "damaged_shards": {shard.url: shard.damage for shard in self.shards if shard.damage},
            "per_shard": [{"url": shard.url, "samples": len(shard.samples), "bad": sum(shard.bad.values()),
                           "bytes": shard.nbytes, "damage": shard.damage} for shard in self.shards],
        }

    def lines(self) -> list[str]:
        info = self.to_json()
        samples = self.samples
        size = "?" if info["bytes"] is None else f"{info['bytes'] / 1e6:,.1f} MB"
        bad = info["bad_samples"]
        out = [f"{info['shards']} shard(s), {info['samples']} good sample(s), {size}"
               + (f"; bad samples left out: {', '.join(f'{r} {n}' for r, n in bad.items())} (see `check`)"
                  if bad else "")]
        if info["damaged_shards"]:
            out.append(f"{len(info['damaged_shards'])} shard(s) not read to their end (figures count the samples "
                       f"before the damage; see `check`): "
                       + ", ".join(f"{shard_file_name(u)} {r}" for u, r in info["damaged_shards"].items()))
        if not samples:
            return out
        timed = info["samples"] - info["samples_without_timing"]
        hours = (f"raw {_duration(info['raw_hours'])}, edit {_duration(info['edit_hours'])} "
                 f"(from hop_length/sample_rate in meta, {timed} of {info['samples']} samples)")
        if timed < info["samples"]:
            hours += f"; {info['samples_without_timing']} sample(s) without them count in frames only"
        out.append(f"audio: {hours}")
        out.append(f"frames: raw {info['raw_frames']:,}, edit {info['edit_frames']:,}")
        dtypes = "; ".join(f"{part} {', '.join(f'{d} ({n})' for d, n in counts.items())}"
                           for part, counts in info["dtypes"].items())
        out.append(f"n_mels: {', '.join(map(str, info['n_mels']))}; dtypes as stored: {dtypes}")
        seg = info["segments_per_sample"]
        out.append(f"edits: segments per sample {seg['min']:g} / {seg['median']:g} / {seg['max']:g} (min / median / "
                   f"max); {info['jump_fraction']:.2%} of edit frames jump, {info['repeat_fraction']:.2%} repeat "
                   "a raw frame")
        for name, attribute in (("raw", "raw_frames"), ("edit", "edit_frames")):
            out.append(f"{name} frames per sample:")
            out.extend(f"  {line}" for line in text_histogram([getattr(s, attribute) for s in samples]))
        out.append("per shard:")
        for shard in info["per_shard"]:
            size = "?" if shard["bytes"] is None else f"{shard['bytes'] / 1e6:,.2f} MB"
            bad = f", {shard['bad']} bad" if shard["bad"] else ""
            bad += f", {shard['damage']}" if shard["damage"] else ""
            out.append(f"  {shard_file_name(shard['url'])}: {shard['samples']} samples{bad}, {size}")
        return out


def _duration(hours: float) -> str:
    return f"{hours:,.2f} h" if hours >= 1 else f"{hours * 60:.1f} min"


def _spread(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "median": 0, "mean": 0.0, "max": 0}
    return {"min": min(values), "median": float(np.median(values)), "mean": float(np.mean(values)),
            "max": max(values)}


def summarize(shards: Iterable[ShardStats]) -> ShardSetInfo:
    """The shard set made of ``shards`` (as :func:`shard_stats` returns them)."""
    return ShardSetInfo(list(shards))


def dumps(info: ShardSetInfo) -> str:
    """``info`` as indented JSON, for ``info --json``."""
    return json.dumps(info.to_json(), indent=1)
