"""What the benchmark runs on: simulated-editor samples, shard sets on disk, the configs built for them,
and the recordings (with edit lists) of the audio part."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streams import Pipe, Sample, Stage
from streams.audio.audio_io import write_audio
from streams.reading.shardlist import expand_shard_urls
from streams.seeding import derive_seed
from streams.stages.registry import REGISTRY, settings_values
from streams.tools.shard_writer import write_shards
from streams.tools.simulate_folder import simulate_edits
from streams.tools.synthetic import synthetic_sample
from streams.tools.synthetic_audio import synthetic_music

from ..build import load_config
from ..config import Config, parse_config
from .settings import AUGMENTATION_BLOCKS, DEMO_CONFIG, BenchSettings, StageShape

__all__ = ["AUDIO_SAMPLE_RATE", "ShardSet", "augmentation_stage", "bench_sample", "decoded_bytes", "e2e_config",
           "link_audio_source", "measure_shards", "piece_seconds", "plan_config", "write_audio_source",
           "write_bench_shards"]

AUDIO_SAMPLE_RATE = 22050
"""Sample rate of the synthesised recordings (the mel settings' rate: no resampling when packed)."""


def decoded_bytes(raw_frames: int, edit_frames: int, n_mels: int, mel_bytes: int = 4) -> int:
    """Bytes of decoded samples: two mels of ``mel_bytes`` per value and int64 pointers."""
    return n_mels * (raw_frames + edit_frames) * mel_bytes + edit_frames * 8


def plan_config() -> dict[str, Any]:
    """``full.json`` as a dict: the plan's configuration example, shuffle buffer and batches of 4."""
    with open(DEMO_CONFIG) as f:
        return json.load(f)


def augmentation_stage(block: str, *, probability: float = 1.0, fields: dict[str, Any] | None = None) -> Stage:
    """The stage of augmentation ``block``: the plan example's block with ``probability`` (1: it always fires),
    the ``fields`` given (``{"mode": "shared"}``) and, for ``concatenation``, a buffer of 2."""
    settings = getattr(parse_config(plan_config()).augmentation, block)
    changes = {**(fields or {}), "probability": probability, **({"buffer_size": 2} if block == "concatenation" else {})}
    return REGISTRY[block](**{**settings_values(settings), **changes})


def e2e_config(urls: str | list[str], settings: BenchSettings, *, kind: str) -> Config:
    """An end-to-end config on ``urls`` (see :data:`~pipelines.bench.settings.E2E_KINDS`).

    ``"full"``: the plan's example with every block enabled (pairing too), ``settings``' shuffle
    and pairing buffers and batches. ``"floor"``: the same with augmentation off (same source,
    shuffle buffer and batching). ``"samples"``: read-only samples, no shuffle buffer, no
    batching. ``"plan"``: the plan's example as it stands (pairing off), no shuffle buffer, no
    batching, shards in order: what the webdataset peer with the plan's functions does. Mels are
    decoded to ``settings.mel_dtype``.
    """
    data = plan_config()
    data["seed"] = settings.seed
    data["source"] = {"urls": urls, "mel_dtype": settings.mel_dtype}
    if kind == "plan":
        data["source"]["shuffle_shards"] = False
        data["shuffle"] = {"buffer_size": 0}
        data["batching"] = {}
        return load_config(data)
    for block in AUGMENTATION_BLOCKS:
        data["augmentation"].setdefault(block, {})["enabled"] = True
    data["augmentation"]["concatenation"]["buffer_size"] = settings.pair_buffer
    data["augmentation_enabled"] = kind == "full"
    data["shuffle"] = {"buffer_size": settings.shuffle_buffer if kind != "samples" else 0}
    data["batching"] = {"batch_size": settings.batch_size} if kind != "samples" else {}
    if kind not in ("full", "floor", "samples"):
        raise ValueError(f"e2e config kind must be one of 'samples', 'floor', 'full', 'plan' ({kind!r} given)")
    return load_config(data)


def bench_sample(key: str, shape: StageShape, *, seed: int = 0) -> Sample:
    """A simulated-editor sample of exactly ``shape`` (float32 mels, int64 pointers).

    The raw recording and edit come from :func:`streams.tools.synthetic.synthetic_sample`; the edit
    is repeated or cut to ``shape.edit_frames`` frames, so ``edit_mel`` still copies
    ``raw_mel[:, pointers]`` up to the editor's gain and noise.

    >>> s = bench_sample("a", StageShape(4, 300, 500))
    >>> s.raw_mel.shape, s.edit_mel.shape, s.pointers.shape
    (torch.Size([4, 300]), torch.Size([4, 500]), torch.Size([500]))
    """
    base = synthetic_sample(key, seed=seed, n_mels=shape.n_mels, raw_frames=shape.raw_frames)
    index = torch.arange(shape.edit_frames) % base.edit_frames
    return base.replace(edit_mel=base.edit_mel.index_select(1, index), pointers=base.pointers.index_select(0, index))


@dataclasses.dataclass(frozen=True)
class ShardSet:
    """Benchmark shards on disk: their URLs (a brace ``pattern`` expanded), sample count and sizes."""

    pattern: str
    urls: tuple[str, ...]
    samples: int
    raw_frames: int
    edit_frames: int
    n_mels: int
    disk_bytes: int
    synthetic: bool

    def decoded_bytes(self, mel_dtype: str = "float32") -> int:
        """Bytes of one epoch decoded to ``mel_dtype`` mels and int64 pointers."""
        return decoded_bytes(self.raw_frames, self.edit_frames, self.n_mels, 2 if mel_dtype == "float16" else 4)


def write_bench_shards(directory: str, settings: BenchSettings) -> ShardSet:
    """Write ``settings.e2e_samples`` simulated-editor samples (float16 mels) as shards in ``directory``."""
    rng = np.random.Generator(np.random.PCG64(derive_seed("bench-lengths", settings.seed)))
    lengths = rng.integers(settings.e2e_min_frames, settings.e2e_max_frames + 1, size=settings.e2e_samples)

    def samples() -> Iterable[Sample]:
        for index, frames in enumerate(tqdm(lengths, desc="bench: writing shards", unit="sample",
                                            disable=not settings.progress, leave=False)):
            yield synthetic_sample(f"bench-{index:06d}", seed=settings.seed, n_mels=settings.e2e_n_mels,
                                   raw_frames=int(frames), dtype=torch.float16)

    index = write_shards(samples(), os.path.join(directory, "bench-%06d.tar"),
                         max_samples=settings.samples_per_shard)
    pattern = os.path.join(directory, f"bench-{{000000..{len(index) - 1:06d}}}.tar")
    return ShardSet(pattern=pattern, urls=tuple(expand_shard_urls(pattern)),
                    samples=sum(e["samples"] for e in index.values()),
                    raw_frames=sum(e["raw_frames"] for e in index.values()),
                    edit_frames=sum(e["edit_frames"] for e in index.values()),
                    n_mels=settings.e2e_n_mels, disk_bytes=sum(e["bytes"] for e in index.values()), synthetic=True)


def measure_shards(pattern: str, settings: BenchSettings) -> ShardSet:
    """The :class:`ShardSet` of existing shards (``bench --shards``): one read-only pass counts
    their samples and frames (and warms the page cache, as the synthetic shards are warm)."""
    urls = expand_shard_urls(pattern)
    samples = raw = edit = 0
    n_mels = None
    reader = Pipe.from_shards(urls, seed=settings.seed, shuffle_shards=False, mel_dtype="float16")
    for sample in tqdm(reader, desc="bench: reading the shards once", unit="sample", disable=not settings.progress,
                       leave=False):
        samples, raw, edit = samples + 1, raw + sample.raw_frames, edit + sample.edit_frames
        if n_mels is not None and sample.n_mels != n_mels:
            raise ValueError(f"shards {pattern}: samples of {n_mels} and {sample.n_mels} mels; the benchmark needs "
                             "one mel filterbank per shard set")
        n_mels = sample.n_mels
    if not samples:
        raise ValueError(f"shards {pattern} hold no sample; give a pattern of packed shards")
    disk = sum(os.path.getsize(url) for url in urls if os.path.isfile(url))
    return ShardSet(pattern=pattern, urls=tuple(urls), samples=samples, raw_frames=raw, edit_frames=edit,
                    n_mels=n_mels, disk_bytes=disk, synthetic=False)


def piece_seconds(shortest_seconds: float) -> tuple[float, float]:
    """The ``[min, max]`` piece lengths for edits of recordings at least ``shortest_seconds`` long: the
    simulator's and re-edit's defaults (2-8 s) from 16 s on, a quarter to a half of the recording below.

    >>> piece_seconds(180.0), piece_seconds(3.0)
    ((2.0, 8.0), (0.75, 1.5))
    """
    return min(2.0, shortest_seconds / 4), min(8.0, shortest_seconds / 2)


def write_audio_source(directory: str, settings: BenchSettings) -> str:
    """A ``simulate-edits`` folder in ``directory``/src: ``settings.audio_recordings`` synthetic
    recordings of ``settings.audio_seconds`` s (``directory``/music, 16-bit WAV), each with one edit
    list (pieces of :func:`piece_seconds`), half of them with a perturbed export. Returns the folder."""
    music, src = os.path.join(directory, "music"), os.path.join(directory, "src")
    os.makedirs(music, exist_ok=True)
    for index in tqdm(range(settings.audio_recordings), desc="bench: synthesising recordings", unit="recording",
                      disable=not settings.progress, leave=False):
        audio = synthetic_music(settings.audio_seconds, seed=derive_seed("bench-audio", settings.seed, index))
        write_audio(os.path.join(music, f"bench-{index:03d}.wav"), audio, AUDIO_SAMPLE_RATE, subtype="PCM_16")
    low, high = piece_seconds(settings.audio_seconds)
    simulate_edits(music, src, seed=settings.seed, export_fraction=0.5, min_piece=low, max_piece=high,
                   progress=False)
    return src


def link_audio_source(audio_src: str, directory: str, recordings: int) -> str:
    """A folder in ``directory``/src linking every file of the first ``recordings`` keys (sorted) of the
    ``simulate-edits`` folder ``audio_src`` (``KEY.edl.json`` with its recording, export and meta).
    Returns the folder; ``ValueError`` naming ``audio_src`` when it holds no edit list."""
    keys = sorted({os.path.basename(path)[: -len(".edl.json")]
                   for path in glob.glob(os.path.join(glob.escape(audio_src), "*.edl.json"))})[:recordings]
    if not keys:
        raise ValueError(f"audio_src {audio_src}: no KEY.edl.json; give a simulate-edits folder (recordings + EDLs)")
    src = os.path.join(directory, "src")
    os.makedirs(src, exist_ok=True)
    for key in keys:
        for path in glob.glob(os.path.join(glob.escape(audio_src), glob.escape(key) + ".*")):
            target = os.path.join(src, os.path.basename(path))
            if not os.path.lexists(target):
                os.symlink(os.path.abspath(path), target)
    return src
