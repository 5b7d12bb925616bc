"""Benchmarks: throughput and memory as ratios against floors measured in the same run.

The machine a benchmark runs on is shared and noisy, so no figure here stands alone: each is a
ratio against a floor timed in the same run, interleaved with it (the order rotates every
repetition), over several repetitions: the median, with the min-max spread of the per-repetition
ratios. ``python -m pipelines bench`` runs the parts and prints a table; :func:`run_benchmarks`
returns the same figures as a JSON-friendly dict (:func:`write_json` saves it).

Parts (``BenchSettings.parts``):

``stage``
    Each augmentation stage, built by ``build_stages`` from the plan's config example with only
    its block enabled and probability 1 (so it always fires), plus rows for the non-default
    settings users pick (:data:`STAGE_VARIANTS`: noise in shared mode, SpecAugment with the mean
    fill), on simulated-editor samples (by
    default 128 mels with 30,000 raw / 20,000 edit frames, and 80 mels with 2,000 / 1,333): ms
    per sample, and the ratio to the floor, a ``clone()`` of the tensors the stage is given
    (raw mel, edit mel, pointers; both samples of a pair for concatenation). Every call uses a
    new sample key and every repetition a new epoch, so each call makes fresh draws. Timed on
    one torch thread (as in a DataLoader worker) in process CPU time, which other jobs on the
    machine barely change; wall time is kept in the JSON.
``reference``
    The same stages against :mod:`pipelines.bench_reference`, the plan's reference functions
    written the plan's way (per-frame Python mapping in chunk shuffle, ``random`` draws), timed
    in the same rounds: our stage's speed-up over the reference.
``e2e``
    Samples/s and MB/s (wall clock) through ``build_pipe`` with the full configuration (every
    augmentation block of the plan enabled, pairing included) from shards written to a
    temporary folder, against the read-only floor (the same config with augmentation off: same
    shards, shuffle buffer, batching and workers), for each worker count (0, 1, 2 by default;
    scaling is samples/s relative to 1 worker). CPU ms per sample, workers included, too.
``memory``
    In a child process (so the parent's allocations do not count): peak resident memory over
    three epochs of the full configuration (0 workers), against the bytes the shuffle and
    pairing buffers hold, and resident memory at the end of each epoch, plain and after
    ``malloc_trim`` returns the allocator's cached free pages (that one must stay flat).
``first-batch``
    Seconds from loading the demo config (``pipelines/configs/full.json``) to its first batch,
    in this process and from a fresh ``python`` process.

Targets (reported, never asserted): every stage <= 3x its floor; chunk shuffle >= 10x faster than
the reference on the long sample; full config >= 0.6x the read-only floor; 2 workers >= 1.6x one
worker; peak memory <= 1.5x buffered bytes + a stated constant; no growth across epochs.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from streams import Batch, MemorySource, Pipe, Sample, Stage
from streams.seeding import derive_seed
from streams.tools.shard_writer import write_shards
from streams.tools.synthetic import synthetic_sample

from .bench_reference import REFERENCE_AUGMENTATIONS, reference_generators
from .bench_reference import concatenate_samples as reference_concatenate
from .build import build_pipe, build_stages
from .build import load_config
from .config import Config

__all__ = [
    "AUGMENTATION_BLOCKS",
    "PARTS",
    "STAGE_ROWS",
    "STAGE_VARIANTS",
    "BenchSettings",
    "ShardSet",
    "StageShape",
    "augmentation_stage",
    "bench_e2e",
    "bench_first_batch",
    "bench_memory",
    "bench_sample",
    "bench_stages",
    "e2e_config",
    "render_report",
    "run_benchmarks",
    "write_bench_shards",
    "write_json",
]

PARTS = ("stage", "reference", "e2e", "memory", "first-batch")
AUGMENTATION_BLOCKS = ("crop", "chunk_shuffle", "gain", "channel_dropout", "spec_augment", "noise", "concatenation")
"""The plan's augmentation blocks, in pipeline order (concatenation is the pairing stage)."""
STAGE_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "spec_augment fill=mean": ("spec_augment", {"fill": "mean"}),
    "noise mode=shared": ("noise", {"mode": "shared"}),
}
"""Extra per-stage rows: a block with non-default config fields users pick, by row name."""
STAGE_ROWS = ("crop", "chunk_shuffle", "gain", "channel_dropout", "spec_augment", "spec_augment fill=mean", "noise",
              "noise mode=shared", "concatenation")
"""The per-stage rows, in report order: every block, each variant after its block."""

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DEMO_CONFIG = os.path.join(CONFIG_DIR, "full.json")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STAGE_FLOOR_TARGET = 3.0
CHUNK_SHUFFLE_SPEEDUP_TARGET = 10.0
E2E_FLOOR_TARGET = 0.6
SCALING_TARGET = 1.6
MEMORY_BUFFER_FACTOR = 1.5
GROWTH_TOLERANCE = 0.02
"""Epoch-end resident memory counts as flat if it grows by at most this fraction of the peak."""


# --- settings --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class StageShape:
    """A per-stage benchmark sample: ``(n_mels, raw_frames)`` raw and ``(n_mels, edit_frames)`` edit.

    >>> StageShape.parse("128x30000x20000")
    StageShape(n_mels=128, raw_frames=30000, edit_frames=20000)
    >>> StageShape.parse("80x2000").edit_frames
    1333
    """

    n_mels: int
    raw_frames: int
    edit_frames: int

    def __post_init__(self) -> None:
        for name in ("n_mels", "raw_frames", "edit_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"stage shape {name} must be an int >= 1 ({value!r} given)")

    @classmethod
    def parse(cls, text: str) -> StageShape:
        """``"MELSxRAWxEDIT"``, or ``"MELSxRAW"`` with two thirds of the raw frames as edit frames."""
        parts = text.strip().lower().split("x")
        try:
            numbers = [int(part) for part in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (2, 3):
            raise ValueError(f"stage shape must look like 128x30000x20000 (mels x raw x edit frames) "
                             f"or 80x2000 ({text!r} given)")
        if len(numbers) == 2:
            numbers.append(max(1, numbers[1] * 2 // 3))
        return cls(*numbers)

    @property
    def label(self) -> str:
        return f"{self.n_mels}x{self.raw_frames}/{self.edit_frames}"


def _parse_ints(text: str, field: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise ValueError(f"{field} must be comma-separated integers like 0,1,2 ({text!r} given)") from err


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What :func:`run_benchmarks` measures, and how big.

    ``repeats`` applies to the stage, reference and first-batch parts, ``e2e_repeats`` to each
    end-to-end configuration (one epoch each). The end-to-end shards hold ``e2e_samples`` samples
    of ``e2e_n_mels`` mels (float16 on disk, read as float32 like ``full.json``) with raw lengths
    drawn from ``[e2e_min_frames, e2e_max_frames]``. ``shuffle_buffer`` and ``pair_buffer`` are the
    buffer sizes of the end-to-end and memory runs. ``e2e_threads`` is the torch thread count of
    the process that reads with 0 workers (end to end and memory); DataLoader workers always run
    one thread each. One by default: then 0, 1 and 2 workers compare like with like, and torch's
    spinning thread pool cannot turn a busy machine's load into a threefold slowdown (measured:
    two threads spent 2.5x the CPU time of one for the same epoch while other jobs ran).
    ``shard_dir`` keeps the shards (a temporary folder otherwise).
    """

    parts: tuple[str, ...] = PARTS
    repeats: int = 5
    stage_shapes: tuple[StageShape, ...] = (StageShape(128, 30000, 20000), StageShape(80, 2000, 1333))
    stage_calls: int = 3
    e2e_repeats: int = 5
    e2e_samples: int = 48
    e2e_n_mels: int = 128
    e2e_min_frames: int = 2000
    e2e_max_frames: int = 10000
    samples_per_shard: int = 4
    workers: tuple[int, ...] = (0, 1, 2)
    e2e_threads: int = 1
    batch_size: int = 4
    shuffle_buffer: int = 16
    pair_buffer: int = 8
    memory_epochs: int = 3
    first_batch_config: str = DEMO_CONFIG
    first_batch_workers: tuple[int, ...] = (0, 2)
    seed: int = 0
    progress: bool = True
    shard_dir: str | None = None

    def __post_init__(self) -> None:
        unknown = [part for part in self.parts if part not in PARTS]
        if unknown or not self.parts:
            raise ValueError(f"parts must be a non-empty selection of {', '.join(PARTS)} "
                             f"({', '.join(self.parts) or 'none'} given)")
        minimums = {"repeats": 1, "stage_calls": 1, "e2e_repeats": 1, "e2e_samples": 2, "e2e_n_mels": 1,
                    "e2e_min_frames": 10, "samples_per_shard": 1, "e2e_threads": 1, "batch_size": 1,
                    "shuffle_buffer": 0, "pair_buffer": 2, "memory_epochs": 2}
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum} ({value!r} given)")
        if self.e2e_max_frames < self.e2e_min_frames:
            raise ValueError(f"e2e_max_frames must be >= e2e_min_frames ({self.e2e_max_frames} < "
                             f"{self.e2e_min_frames})")
        if not self.stage_shapes:
            raise ValueError("stage_shapes needs at least one shape, like 128x30000x20000")
        for name in ("workers", "first_batch_workers"):
            values = getattr(self, name)
            if not values or any(not isinstance(w, int) or w < 0 for w in values):
                raise ValueError(f"{name} must be one or more worker counts >= 0 ({values!r} given)")

    @classmethod
    def quick(cls, **overrides: Any) -> BenchSettings:
        """Tiny sizes and one repetition: checks that every part runs and reports (the test suite's smoke run)."""
        settings = dict(repeats=1, stage_shapes=(StageShape(16, 2400, 1600), StageShape(8, 300, 200)),
                        stage_calls=1, e2e_repeats=1, e2e_samples=8, e2e_n_mels=16, e2e_min_frames=200,
                        e2e_max_frames=600, samples_per_shard=2, workers=(0, 1), batch_size=2, shuffle_buffer=2,
                        pair_buffer=2, memory_epochs=2, first_batch_workers=(0,))
        settings.update(overrides)
        return cls(**settings)

    @classmethod
    def from_options(cls, *, quick: bool = False, parts: str | None = None, stage_shapes: str | None = None,
                     workers: str | None = None, first_batch_workers: str | None = None,
                     **options: Any) -> BenchSettings:
        """Settings from command-line strings (``parts="stage,e2e"``, ``workers="0,1,2"``,
        ``stage_shapes="128x30000x20000,80x2000"``); ``None`` keeps the default (or quick) value."""
        given: dict[str, Any] = {name: value for name, value in options.items() if value is not None}
        if parts is not None:
            given["parts"] = tuple(part.strip() for part in parts.split(",") if part.strip())
        if stage_shapes is not None:
            given["stage_shapes"] = tuple(StageShape.parse(s) for s in stage_shapes.split(",") if s.strip())
        if workers is not None:
            given["workers"] = _parse_ints(workers, "workers")
        if first_batch_workers is not None:
            given["first_batch_workers"] = _parse_ints(first_batch_workers, "first_batch_workers")
        return cls.quick(**given) if quick else cls(**given)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["stage_shapes"] = [shape.label for shape in self.stage_shapes]
        return out


# --- measurement helpers ---------------------------------------------------------------------------

def _spread(seconds: Sequence[float], scale: float = 1e3) -> dict[str, float]:
    """Median, min and max of ``seconds`` times ``scale`` (milliseconds by default)."""
    return {"median": statistics.median(seconds) * scale, "min": min(seconds) * scale, "max": max(seconds) * scale}


def _ratio_spread(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, float]:
    """The ratio of medians, and the min-max of the per-repetition ratios."""
    per_repeat = [n / d for n, d in zip(numerators, denominators)]
    return {"median": statistics.median(numerators) / statistics.median(denominators),
            "min": min(per_repeat), "max": max(per_repeat)}


@dataclasses.dataclass(frozen=True)
class _Timing:
    """Seconds per item of one repetition: process CPU time and wall-clock time."""

    cpu: float
    wall: float


_Measure = Callable[[int], _Timing]
"""A timed job: takes the repetition index (it enters the draws' epoch), returns seconds per item."""


def _timed(run: Callable[[], int]) -> _Timing:
    """Time ``run`` (which returns how many items it processed) in CPU and wall seconds per item."""
    cpu, wall = time.process_time(), time.perf_counter()
    items = run()
    return _Timing((time.process_time() - cpu) / items, (time.perf_counter() - wall) / items)


def _interleaved(measures: dict[str, _Measure], repeats: int, bar: tqdm | None) -> dict[str, list[_Timing]]:
    """Run every measure once per repetition, rotating their order so drift spreads evenly.

    One untimed warm-up run of each precedes the timed repetitions (its repetition index,
    ``repeats``, is one the timed runs do not use).
    """
    names = list(measures)
    for name in names:
        measures[name](repeats)
    times: dict[str, list[_Timing]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(measures[name](repeat))
            if bar is not None:
                bar.update(1)
    return times


def _clone_all(tensors: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    return [tensor.clone() for tensor in tensors]


def _sample_tensors(sample: Sample) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return sample.raw_mel, sample.edit_mel, sample.pointers


def _decoded_bytes(raw_frames: int, edit_frames: int, n_mels: int, mel_bytes: int = 4) -> int:
    """Bytes of a decoded sample: two mels of ``mel_bytes`` per value and int64 pointers."""
    return n_mels * (raw_frames + edit_frames) * mel_bytes + edit_frames * 8


def _bar(settings: BenchSettings, total: int | None, desc: str, unit: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=not settings.progress, dynamic_ncols=True, leave=False)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    return env


# --- configs ---------------------------------------------------------------------------------------

def _plan_config() -> dict[str, Any]:
    """``full.json`` as a dict: the plan's configuration example, shuffle buffer and batches of 4."""
    with open(DEMO_CONFIG) as f:
        return json.load(f)


def augmentation_stage(block: str, *, probability: float = 1.0, mel_dtype: str = "float32",
                       fields: dict[str, Any] | None = None) -> Stage:
    """The stage ``build_stages`` makes for augmentation ``block`` of the plan's config example.

    Only that block is enabled, with ``probability`` (1 by default, so it always fires) and the
    config ``fields`` given (``{"mode": "shared"}``); the other fields keep the example's values.
    ``concatenation`` gives the pairing stage with a buffer of 2. The config's source (the demo
    shards) is never opened.
    """
    if block not in AUGMENTATION_BLOCKS:
        raise ValueError(f"augmentation block must be one of {', '.join(AUGMENTATION_BLOCKS)} ({block!r} given)")
    data = _plan_config()
    data["source"] = {"urls": os.path.normpath(os.path.join(CONFIG_DIR, data["source"]["urls"])),
                      "mel_dtype": mel_dtype}
    data["shuffle"] = {"buffer_size": 0}
    data["batching"] = {}
    augmentation = data["augmentation"]
    for name in AUGMENTATION_BLOCKS:
        augmentation.setdefault(name, {})["enabled"] = name == block
    augmentation[block].update(fields or {})
    augmentation[block]["probability"] = probability
    if block == "concatenation":
        augmentation[block]["buffer_size"] = 2
    stages = build_stages(load_config(data))
    if len(stages) != 2:
        raise RuntimeError(f"expected the source and one {block} stage from build_stages, got {stages!r}")
    return stages[1]


def e2e_config(urls: str, settings: BenchSettings, *, augment: bool) -> Config:
    """The end-to-end config: the plan's example with every block enabled (pairing too).

    ``augment=False`` is the read-only floor: the same source, shuffle buffer and batching,
    with augmentation switched off. Mels are read as float32, as in ``full.json``.
    """
    data = _plan_config()
    data["seed"] = settings.seed
    data["source"] = {"urls": urls, "mel_dtype": "float32"}
    for block in AUGMENTATION_BLOCKS:
        data["augmentation"].setdefault(block, {})["enabled"] = True
    data["augmentation"]["concatenation"]["buffer_size"] = settings.pair_buffer
    data["augmentation_enabled"] = augment
    data["shuffle"] = {"buffer_size": settings.shuffle_buffer}
    data["batching"] = {"batch_size": settings.batch_size}
    return load_config(data)


# --- samples and shards ----------------------------------------------------------------------------

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
    """Benchmark shards on disk: their brace ``pattern``, sample count and sizes."""

    pattern: str
    samples: int
    raw_frames: int
    edit_frames: int
    n_mels: int
    disk_bytes: int

    @property
    def decoded_bytes(self) -> int:
        """Bytes of one epoch decoded as float32 mels and int64 pointers."""
        return _decoded_bytes(self.raw_frames, self.edit_frames, self.n_mels)


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
                         max_samples=settings.samples_per_shard, overwrite=True)  # a kept --shard-dir is rewritten
    return ShardSet(pattern=os.path.join(directory, f"bench-{{000000..{len(index) - 1:06d}}}.tar"),
                    samples=sum(e["samples"] for e in index.values()),
                    raw_frames=sum(e["raw_frames"] for e in index.values()),
                    edit_frames=sum(e["edit_frames"] for e in index.values()),
                    n_mels=settings.e2e_n_mels, disk_bytes=sum(e["bytes"] for e in index.values()))


# --- part 1 and 2: per stage, and against the plan's reference ------------------------------------

def _calls_per_repeat(shape: StageShape, settings: BenchSettings) -> int:
    """Items per timed repetition: ``stage_calls`` on the long sample, more on smaller ones (up to 50)
    so that every repetition runs long enough for the clock."""
    values = shape.n_mels * (shape.raw_frames + shape.edit_frames)
    return min(50, max(settings.stage_calls, math.ceil(settings.stage_calls * 2e6 / values)))


def _stage_measure(stage: Stage, block: str, sample: Sample, partner: Sample, calls: int, seed: int) -> _Measure:
    """Our stage on ``calls`` copies of ``sample`` with distinct keys (a new draw each); for
    concatenation, ``calls`` pairs through the pairing stage itself."""
    if block == "concatenation":
        items = [s for call in range(calls) for s in (sample.replace(key=f"{sample.key}/a{call}"),
                                                      partner.replace(key=f"{partner.key}/b{call}"))]

        def pairs(repeat: int) -> _Timing:
            pipe = Pipe([MemorySource(items, check=False), stage], seed=seed)
            pipe.set_epoch(repeat)

            def run() -> int:
                emitted = 0
                for pair in pipe:
                    emitted += 1
                    del pair  # free it before the next one, as the other measures do
                if emitted != calls:
                    raise RuntimeError(f"the pairing stage made {emitted} items from {2 * calls} samples; "
                                       f"expected {calls} pairs at probability 1")
                return calls

            return _timed(run)

        return pairs
    keyed = [sample.replace(key=f"{sample.key}/{call}") for call in range(calls)]

    def augment(repeat: int) -> _Timing:
        def run() -> int:
            for item in keyed:
                stage.augment(item, seed=seed, epoch=repeat)
            return calls

        return _timed(run)

    return augment


def _reference_measure(block: str, sample: Sample, partner: Sample, calls: int, seed: int) -> _Measure:
    """The plan's reference for ``block`` on ``sample``, ``calls`` times with fresh generators."""
    if block == "concatenation":
        def concatenate(repeat: int) -> _Timing:
            def run() -> int:
                for _ in range(calls):
                    reference_concatenate(_sample_tensors(sample), _sample_tensors(partner))
                return calls

            return _timed(run)

        return concatenate
    reference = REFERENCE_AUGMENTATIONS[block]

    def augment(repeat: int) -> _Timing:
        def run() -> int:
            for call in range(calls):
                draw_seed = derive_seed("bench-reference", seed, repeat, block, call)
                reference(*_sample_tensors(sample), *reference_generators(draw_seed))
            return calls

        return _timed(run)

    return augment


def _clone_measure(tensors: Sequence[torch.Tensor], calls: int) -> _Measure:
    """The floor: ``clone()`` of ``tensors``, ``calls`` times."""

    def clone(repeat: int) -> _Timing:
        def run() -> int:
            for _ in range(calls):
                _clone_all(tensors)
            return calls

        return _timed(run)

    return clone


def _reference_failure(block: str, sample: Sample, seed: int) -> str | None:
    """Why the plan's reference cannot run on ``sample`` (its own edge-case bugs), or ``None``."""
    if block == "concatenation":
        return None
    try:
        REFERENCE_AUGMENTATIONS[block](*_sample_tensors(sample), *reference_generators(seed))
    except (ValueError, RuntimeError, IndexError) as err:
        return f"{type(err).__name__}: {err}"
    return None


def _figures(timings: Sequence[_Timing]) -> dict[str, Any]:
    return {**_spread([t.cpu for t in timings]), "wall": _spread([t.wall for t in timings])}


def bench_stages(settings: BenchSettings, *, with_reference: bool = True) -> dict[str, Any]:
    """Per-stage ms per sample against the clone floor, and (optionally) against the plan's reference.

    Timed on one torch thread (as in a DataLoader worker) in process CPU time, which other jobs
    on a shared machine do not inflate the way they inflate wall time (kept as ``wall``).
    Returns ``{"stage": [rows], "reference": [rows]}``; each row names the shape and the block
    (a :data:`STAGE_ROWS` name: stage rows include the :data:`STAGE_VARIANTS`).
    """
    variants = {row: STAGE_VARIANTS.get(row, (row, {})) for row in STAGE_ROWS}  # row -> (block, fields)
    stages = {row: augmentation_stage(block, fields=fields) for row, (block, fields) in variants.items()}
    stage_rows: list[dict[str, Any]] = []
    reference_rows: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for shape_index, shape in enumerate(settings.stage_shapes):
            calls, seed = _calls_per_repeat(shape, settings), settings.seed
            sample = bench_sample(f"bench-{shape.label}", shape, seed=seed)
            partner = bench_sample(f"bench-{shape.label}-partner", shape, seed=seed + 1)
            measures: dict[str, _Measure] = {
                "floor": _clone_measure(_sample_tensors(sample), calls),
                "floor_pair": _clone_measure([*_sample_tensors(sample), *_sample_tensors(partner)], calls),
            }
            failures: dict[str, str] = {}
            for name, stage in stages.items():
                measures[f"ours:{name}"] = _stage_measure(stage, variants[name][0], sample, partner, calls, seed)
            for block in AUGMENTATION_BLOCKS if with_reference else ():
                failure = _reference_failure(block, sample, seed)
                if failure is None:
                    measures[f"reference:{block}"] = _reference_measure(block, sample, partner, calls, seed)
                else:
                    failures[block] = failure
            with _bar(settings, len(measures) * settings.repeats, f"bench: stages {shape.label}", "run") as bar:
                times = _interleaved(measures, settings.repeats, bar)
            cpu = {name: [t.cpu for t in timings] for name, timings in times.items()}
            for name in stages:  # a block, or a variant of one (compared with the plan's code only as a block)
                floor = "floor_pair" if name == "concatenation" else "floor"
                common = {"shape": shape.label, "long": shape_index == 0, "stage": name, "calls": calls}
                stage_rows.append({**common, "per": "pair" if name == "concatenation" else "sample",
                                   "ms": _figures(times[f"ours:{name}"]), "floor_ms": _figures(times[floor]),
                                   "ratio": _ratio_spread(cpu[f"ours:{name}"], cpu[floor])})
                if not with_reference or name not in AUGMENTATION_BLOCKS:
                    continue
                row: dict[str, Any] = {**common, "ours_ms": _figures(times[f"ours:{name}"])}
                if name in failures:
                    row.update(reference_ms=None, speedup=None, reference_error=failures[name])
                else:
                    row.update(reference_ms=_figures(times[f"reference:{name}"]),
                               speedup=_ratio_spread(cpu[f"reference:{name}"], cpu[f"ours:{name}"]))
                reference_rows.append(row)
    finally:
        torch.set_num_threads(threads)
    return {"stage": stage_rows, "reference": reference_rows}


# --- part 3: end to end ----------------------------------------------------------------------------

def _origin_parts(origin: Any) -> int:
    """Source samples inside an item with this origin (a pair counts its two parts)."""
    if isinstance(origin, (tuple, list)) and len(origin) == 3 and origin[0] == "pair":
        return _origin_parts(origin[1]) + _origin_parts(origin[2])
    return 1


def _item_parts(item: Any) -> int:
    if isinstance(item, Batch):
        return sum(_origin_parts(origin) for origin in item.origins)
    if isinstance(item, Sample):
        return _origin_parts(item.origin)
    raise TypeError(f"the pipe yielded a {type(item).__name__}; the benchmark expects samples or batches")


def _cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` and its live children (DataLoader workers)."""
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


def _epoch_timing(loader: DataLoader, epoch: int, expected: int, bar: tqdm) -> _Timing:
    """Wall and CPU seconds (this process and its workers) of one epoch of ``loader``'s pipe.

    Checks that every shard sample was read exactly once, so floor and full compare like with like.
    """
    loader.dataset.set_epoch(epoch)
    process = psutil.Process()
    cpu, wall = _cpu_seconds(process), time.perf_counter()
    read = 0
    for item in loader:
        parts = _item_parts(item)
        read += parts
        bar.update(parts)
        del item  # free it before the next one arrives
    timing = _Timing(cpu=_cpu_seconds(process) - cpu, wall=time.perf_counter() - wall)
    if read != expected:
        raise RuntimeError(f"an epoch read {read} samples from shards holding {expected}; "
                           "the benchmark's figures would not compare like with like")
    return timing


def bench_e2e(shards: ShardSet, settings: BenchSettings) -> dict[str, Any]:
    """Samples/s and MB/s of the full config and of the read-only floor, per worker count.

    Every (config, workers) pair gets one ``DataLoader`` with persistent workers, all alive at
    once: an untimed warm-up epoch each (worker start-up, first reads), then ``e2e_repeats``
    rounds in which each loader runs one timed epoch, in an order rotated every round, so that
    floor and full, and 1 and 2 workers, see the same machine load. Worker start-up belongs to
    the first-batch part, not to throughput.

    Samples/s counts samples read from the shards (a pair counts as its two parts); MB/s counts
    their decoded bytes (float32 mels, int64 pointers), so both configs move the same data.
    CPU ms per sample (this process plus its workers) is reported too: unlike throughput, other
    jobs on the machine barely change it. ``cores_busy`` (CPU seconds / wall seconds) shows how
    much of the machine the run actually got: scaling with workers needs free cores.
    """
    configs = {"floor": e2e_config(shards.pattern, settings, augment=False),
               "full": e2e_config(shards.pattern, settings, augment=True)}
    runs = [(workers, kind) for workers in settings.workers for kind in configs]
    timings: dict[tuple[int, str], list[_Timing]] = {run: [] for run in runs}
    loaders = {(workers, kind): DataLoader(build_pipe(configs[kind]), batch_size=None, num_workers=workers,
                                           persistent_workers=workers > 0) for workers, kind in runs}
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.e2e_threads)
    try:
        with _bar(settings, len(runs) * (settings.e2e_repeats + 1) * shards.samples, "bench: end to end",
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
    megabytes = shards.decoded_bytes / 1e6
    wall = {run: [t.wall for t in timings[run]] for run in runs}
    rows = []
    for workers in settings.workers:
        row: dict[str, Any] = {"workers": workers}
        for kind in configs:
            seconds = statistics.median(wall[workers, kind])
            row[kind] = {"seconds": _spread(wall[workers, kind], 1.0), "samples_per_s": shards.samples / seconds,
                         "mb_per_s": megabytes / seconds,
                         "cpu_ms_per_sample": _spread([t.cpu / shards.samples for t in timings[workers, kind]]),
                         "cores_busy": statistics.median(t.cpu / t.wall for t in timings[workers, kind])}
        row["ratio"] = _ratio_spread(wall[workers, "floor"], wall[workers, "full"])  # full / floor throughput
        row["cpu_ratio"] = _ratio_spread([t.cpu for t in timings[workers, "full"]],
                                         [t.cpu for t in timings[workers, "floor"]])  # full / floor CPU cost
        rows.append(row)
    scaling: dict[str, dict[str, float]] = {}
    if 1 in settings.workers:
        for kind in configs:
            one = statistics.median(wall[1, kind])
            scaling[kind] = {str(w): one / statistics.median(wall[w, kind]) for w in settings.workers}
    return {"samples": shards.samples, "decoded_mb": megabytes, "disk_mb": shards.disk_bytes / 1e6,
            "n_mels": shards.n_mels, "repeats": settings.e2e_repeats, "threads": settings.e2e_threads,
            "rows": rows, "scaling": scaling}


# --- part 4: memory --------------------------------------------------------------------------------

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


def _held_bytes(samples: Iterable[Any]) -> int:
    """Bytes of the tensor storages behind ``samples`` (a storage shared by views counts once)."""
    storages: dict[int, int] = {}
    for sample in samples:
        if isinstance(sample, Sample):
            for tensor in _sample_tensors(sample):
                storage = tensor.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _buffered(nodes: Sequence[Any]) -> tuple[int, int]:
    """(items, bytes) held in the ``buffer`` lists of live nodes: the shuffle and pairing buffers."""
    held: list[Any] = []
    for node in nodes:
        buffer = getattr(node, "buffer", None)
        if isinstance(buffer, list):
            held.extend(buffer)
    return len(held), _held_bytes(held)


def _batch_bytes(batch: Batch) -> int:
    return sum(t.untyped_storage().nbytes() for t in (batch.raw_mel, batch.edit_mel, batch.pointers,
                                                     batch.raw_mask, batch.edit_mask))


def _largest_sample_bytes(batch: Batch) -> int:
    n_mels, mel_bytes = batch.raw_mel.shape[1], batch.raw_mel.element_size()
    return max(_decoded_bytes(int(r), int(e), n_mels, mel_bytes)
               for r, e in zip(batch.raw_lengths, batch.edit_lengths))


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


def _warm_up(config: Config, settings: BenchSettings) -> None:
    """Run the config's stages once over a few small in-memory samples (1,200 raw frames), so
    that torch's and the stages' one-off allocations land in the baseline, not in the figure."""
    count = settings.shuffle_buffer + settings.pair_buffer + 2 * settings.batch_size + 8
    samples = [bench_sample(f"warm-up-{i}", StageShape(settings.e2e_n_mels, 1200, 800), seed=settings.seed)
               for i in range(count)]
    for batch in Pipe([MemorySource(samples), *build_stages(config)[1:]], seed=config.seed):
        del batch


_MEMORY_CHILD_SETTINGS = ("seed", "shuffle_buffer", "pair_buffer", "batch_size", "memory_epochs", "e2e_n_mels",
                          "e2e_threads")


def _memory_child_main() -> None:
    """Entry point of the memory child process: settings JSON on stdin, result JSON on stdout."""
    request = json.load(sys.stdin)
    settings = BenchSettings(**request["settings"])
    torch.set_num_threads(settings.e2e_threads)
    config = e2e_config(request["pattern"], settings, augment=True)
    pipe = build_pipe(config)
    _warm_up(config, settings)
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
    print(json.dumps({"baseline_rss": baseline, "epochs": epochs, "high_water_rss": high_water,
                      "rss_samples": sampler.samples}))


def bench_memory(shards: ShardSet, settings: BenchSettings) -> dict[str, Any]:
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
    request = {"pattern": shards.pattern,
               "settings": {name: getattr(settings, name) for name in _MEMORY_CHILD_SETTINGS}}
    with _bar(settings, None, "bench: memory (child process)", "s") as bar:
        bar.refresh()
        child = subprocess.run([sys.executable, "-c", "from pipelines.bench import _memory_child_main; "
                                "_memory_child_main()"], input=json.dumps(request), capture_output=True,
                               text=True, env=_child_env(), timeout=1800)
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
    bound = constant + MEMORY_BUFFER_FACTOR * buffered
    ends = [e["end_rss"] for e in epochs]
    trimmed = [e["trimmed_rss"] for e in epochs]
    judged = trimmed if None not in trimmed else ends
    growth = judged[-1] - judged[0]
    return {
        "shuffle_buffer": settings.shuffle_buffer, "pair_buffer": settings.pair_buffer,
        "batch_size": settings.batch_size, "epochs": len(epochs),
        "baseline_mb": baseline / mb, "peak_mb": peak / mb, "high_water_mb": (measured["high_water_rss"] or 0) / mb,
        "buffered_mb": buffered / mb, "buffered_items": max(e["buffered_items_max"] for e in epochs),
        "in_flight_mb": in_flight / mb, "constant_mb": constant / mb, "bound_mb": bound / mb,
        "peak_over_baseline_per_buffered": (peak - baseline) / buffered if buffered else None,
        "epoch_end_mb": [end / mb for end in ends], "epoch_peak_mb": [e["peak_rss"] / mb for e in epochs],
        "epoch_end_trimmed_mb": None if judged is ends else [value / mb for value in trimmed],
        "growth_mb": growth / mb, "growth_fraction_of_peak": growth / peak,
        "growth_measured_on": "trimmed" if judged is trimmed else "plain",
        "rss_samples": measured["rss_samples"],
    }


# --- part 5: time to first batch -------------------------------------------------------------------

_FIRST_BATCH_CHILD = """\
import sys, time
start = time.perf_counter()
from torch.utils.data import DataLoader
from pipelines import build_pipe, load_config
loader = DataLoader(build_pipe(load_config(sys.argv[1])), batch_size=None, num_workers=int(sys.argv[2]))
next(iter(loader))
print(time.perf_counter() - start, flush=True)
"""


def _first_batch_seconds(config_path: str, workers: int) -> float:
    start = time.perf_counter()
    loader = DataLoader(build_pipe(load_config(config_path)), batch_size=None, num_workers=workers)
    batches = iter(loader)
    next(batches)
    seconds = time.perf_counter() - start
    del batches  # shuts the workers down
    return seconds


def _fresh_process_first_batch(config_path: str, workers: int) -> tuple[float, float]:
    """(seconds from starting ``python`` to the first batch, seconds of that inside the child)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", _FIRST_BATCH_CHILD, config_path, str(workers)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env())
    line = child.stdout.readline()
    wall = time.perf_counter() - start
    _, errors = child.communicate(timeout=600)
    if child.returncode != 0 or not line.strip():
        raise RuntimeError(f"the first-batch child process failed:\n{errors[-3000:]}")
    return wall, float(line)


def bench_first_batch(settings: BenchSettings) -> dict[str, Any]:
    """Seconds from ``load_config`` to the first batch of the demo config, per worker count.

    In process: config loading, ``build_pipe``, the ``DataLoader`` and its workers' start, the
    first batch (imports done). Fresh process: from starting ``python`` (imports included).
    """
    path = settings.first_batch_config
    fresh_repeats = min(settings.repeats, 3)
    total = len(settings.first_batch_workers) * (settings.repeats + fresh_repeats)
    rows = []
    with _bar(settings, total, "bench: first batch", "run") as bar:
        for workers in settings.first_batch_workers:
            in_process, fresh_wall, fresh_inside = [], [], []
            for _ in range(settings.repeats):
                in_process.append(_first_batch_seconds(path, workers))
                bar.update(1)
            for _ in range(fresh_repeats):
                wall, inside = _fresh_process_first_batch(path, workers)
                fresh_wall.append(wall)
                fresh_inside.append(inside)
                bar.update(1)
            rows.append({"workers": workers, "in_process_s": _spread(in_process, 1.0),
                         "fresh_process_s": _spread(fresh_wall, 1.0),
                         "fresh_after_start_s": _spread(fresh_inside, 1.0)})
    return {"config": os.path.relpath(path, REPO_ROOT) if path.startswith(REPO_ROOT) else path, "rows": rows}


# --- the whole run ---------------------------------------------------------------------------------

def _targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []

    def add(part: str, what: str, figure: float | None, target: str, met: bool | None) -> None:
        targets.append({"part": part, "what": what, "figure": figure, "target": target, "met": met})

    for row in result.get("stage", ()):
        ratio = row["ratio"]["median"]
        add("stage", f"{row['stage']} {row['shape']} / clone floor", ratio, f"<= {STAGE_FLOOR_TARGET:g}x",
            ratio <= STAGE_FLOOR_TARGET)
    for row in result.get("reference", ()):
        if row["stage"] == "chunk_shuffle" and row["long"]:
            speedup = row["speedup"]["median"] if row["speedup"] else None
            add("reference", f"chunk_shuffle {row['shape']} speed-up over the plan", speedup,
                f">= {CHUNK_SHUFFLE_SPEEDUP_TARGET:g}x",
                None if speedup is None else speedup >= CHUNK_SHUFFLE_SPEEDUP_TARGET)
    e2e = result.get("e2e")
    if e2e:
        for row in e2e["rows"]:
            ratio = row["ratio"]["median"]
            add("e2e", f"full / read-only floor, {row['workers']} worker(s)", ratio, f">= {E2E_FLOOR_TARGET:g}x",
                ratio >= E2E_FLOOR_TARGET)
        scaling = e2e["scaling"].get("full", {})
        if "2" in scaling:
            add("e2e", "full config, 2 workers / 1 worker", scaling["2"], f">= {SCALING_TARGET:g}x",
                scaling["2"] >= SCALING_TARGET)
    memory = result.get("memory")
    if memory:
        add("memory", "peak RSS (MB)", memory["peak_mb"],
            f"<= {memory['constant_mb']:.0f} MB + {MEMORY_BUFFER_FACTOR:g} x {memory['buffered_mb']:.0f} MB buffered "
            f"= {memory['bound_mb']:.0f} MB", memory["peak_mb"] <= memory["bound_mb"])
        add("memory", f"RSS growth over {memory['epochs']} epochs (MB, {memory['growth_measured_on']})",
            memory["growth_mb"],
            f"<= {GROWTH_TOLERANCE:.0%} of peak = {GROWTH_TOLERANCE * memory['peak_mb']:.0f} MB",
            memory["growth_fraction_of_peak"] <= GROWTH_TOLERANCE)
    return targets


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (how busy the shared machine was), if the OS has them."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_benchmarks(settings: BenchSettings = BenchSettings()) -> dict[str, Any]:
    """Run the parts ``settings`` selects; return every figure as a JSON-friendly dict.

    Keys: ``settings``, ``environment``, one key per part that ran (``stage`` and ``reference``
    rows, ``e2e``, ``memory``, ``first_batch``), ``targets`` (each figure against its target,
    ``met`` true or false) and ``seconds`` (the whole run).
    """
    started = time.perf_counter()
    result: dict[str, Any] = {
        "settings": settings.to_json(),
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                        "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "load_average_start": _load_average()},
    }
    parts = set(settings.parts)
    if parts & {"stage", "reference"}:
        stage_result = bench_stages(settings, with_reference="reference" in parts)
        for part in ("stage", "reference"):
            if part in parts:
                result[part] = stage_result[part]
    if parts & {"e2e", "memory"}:
        with tempfile.TemporaryDirectory(prefix="pipelines-bench-") as temporary:
            directory = settings.shard_dir or temporary
            shards = write_bench_shards(directory, settings)
            if "e2e" in parts:
                result["e2e"] = bench_e2e(shards, settings)
            if "memory" in parts:
                result["memory"] = bench_memory(shards, settings)
    if "first-batch" in parts:
        result["first_batch"] = bench_first_batch(settings)
    result["environment"]["load_average_end"] = _load_average()
    result["targets"] = _targets(result)
    result["seconds"] = time.perf_counter() - started
    return result


def write_json(result: dict[str, Any], path: str) -> None:
    """Write ``result`` to ``path`` as indented JSON."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


# --- rendering -------------------------------------------------------------------------------------

def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the first left-aligned, the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _ms(spread: dict[str, float]) -> str:
    return f"{spread['median']:.2f} [{spread['min']:.2f}-{spread['max']:.2f}]"


def _x(spread: dict[str, float]) -> str:
    return f"{spread['median']:.2f}x [{spread['min']:.2f}-{spread['max']:.2f}]"


def render_report(result: dict[str, Any]) -> str:
    """The figures of :func:`run_benchmarks` as plain-text tables, then the targets."""
    env = result["environment"]
    out = [f"pipelines bench: {env['cpus']} CPU(s), torch {env['torch']} ({env['torch_threads']} threads), "
           f"Python {env['python']}; load average {env['load_average_start']} at the start, "
           f"{env.get('load_average_end')} at the end; median [min-max] over repeats"]
    if "stage" in result:
        out += ["", "Per stage (forced to fire, 1 torch thread): CPU ms per sample vs clone() of its tensors"]
        out += _table(["stage", "shape", "ms", "floor ms", "ratio"],
                      [[row["stage"] + (" (per pair)" if row["per"] == "pair" else ""), row["shape"], _ms(row["ms"]),
                        _ms(row["floor_ms"]), _x(row["ratio"])] for row in result["stage"]])
    if "reference" in result:
        out += ["", "Against the plan's reference code (pipelines/bench_reference.py): speed-up = reference / ours"]
        out += _table(["stage", "shape", "ours ms", "reference ms", "speed-up"],
                      [[row["stage"], row["shape"], _ms(row["ours_ms"]),
                        _ms(row["reference_ms"]) if row["reference_ms"] else "fails: " + row["reference_error"][:40],
                        _x(row["speedup"]) if row["speedup"] else "-"] for row in result["reference"]])
    if "e2e" in result:
        e2e = result["e2e"]
        out += ["", f"End to end: {e2e['samples']} samples, {e2e['n_mels']} mels, {e2e['decoded_mb']:.0f} MB decoded "
                    f"per epoch ({e2e['disk_mb']:.0f} MB float16 on disk); {e2e['repeats']} timed epochs per row, "
                    f"wall clock; {e2e['threads']} torch thread(s) per reading process"]
        out += _table(["workers", "floor samples/s", "floor MB/s", "full samples/s", "full MB/s", "full / floor",
                       "CPU ms/sample floor", "full", "full / floor CPU", "cores busy (full)"],
                      [[str(row["workers"]), f"{row['floor']['samples_per_s']:.1f}", f"{row['floor']['mb_per_s']:.0f}",
                        f"{row['full']['samples_per_s']:.1f}", f"{row['full']['mb_per_s']:.0f}", _x(row["ratio"]),
                        f"{row['floor']['cpu_ms_per_sample']['median']:.1f}",
                        f"{row['full']['cpu_ms_per_sample']['median']:.1f}", _x(row["cpu_ratio"]),
                        f"{row['full']['cores_busy']:.2f}"]
                       for row in e2e["rows"]])
        for kind, scaling in e2e["scaling"].items():
            out.append(f"scaling ({kind}, samples/s vs 1 worker): "
                       + ", ".join(f"{w} worker(s) {s:.2f}x" for w, s in scaling.items()))
    if "memory" in result:
        m = result["memory"]
        out += ["", f"Memory (child process, 0 workers, shuffle buffer {m['shuffle_buffer']}, pairing buffer "
                    f"{m['pair_buffer']}, batches of {m['batch_size']}, {m['epochs']} epochs)"]
        out += _table(["figure", "MB"], [
            ["baseline RSS before the first item (warmed up, trimmed)", f"{m['baseline_mb']:.0f}"],
            ["in-flight allowance (2 batches + 2 samples)", f"{m['in_flight_mb']:.0f}"],
            ["stated constant (baseline + in-flight)", f"{m['constant_mb']:.0f}"],
            [f"buffered bytes, max ({m['buffered_items']} samples)", f"{m['buffered_mb']:.0f}"],
            ["peak RSS", f"{m['peak_mb']:.0f}"],
            ["bound: constant + 1.5 x buffered", f"{m['bound_mb']:.0f}"],
            ["RSS at the end of each epoch", ", ".join(f"{v:.0f}" for v in m["epoch_end_mb"])],
            *([["... after malloc_trim (memory still in use)",
                ", ".join(f"{v:.0f}" for v in m["epoch_end_trimmed_mb"])]] if m["epoch_end_trimmed_mb"] else []),
        ])
        if m["peak_over_baseline_per_buffered"] is not None:
            out.append(f"(peak - baseline) / buffered = {m['peak_over_baseline_per_buffered']:.2f}")
    if "first_batch" in result:
        fb = result["first_batch"]
        out += ["", f"Time to first batch ({fb['config']}), seconds"]
        out += _table(["workers", "in process", "fresh python process", "(after interpreter start)"],
                      [[str(row["workers"]), _ms(row["in_process_s"]), _ms(row["fresh_process_s"]),
                        _ms(row["fresh_after_start_s"])] for row in fb["rows"]])
    targets = result.get("targets", [])
    if targets:
        out += ["", "Targets"]
        out += _table(["part", "figure", "value", "target", ""],
                      [[t["part"], t["what"], "-" if t["figure"] is None else f"{t['figure']:.2f}", t["target"],
                        {True: "met", False: "MISSED", None: "n/a"}[t["met"]]] for t in targets])
        met = sum(1 for t in targets if t["met"])
        out.append(f"{met} of {len(targets)} targets met; bench took {result['seconds']:.1f} s")
    return "\n".join(out)
