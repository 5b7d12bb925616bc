"""What a benchmark run measures, and how big: :class:`BenchSettings`, :class:`StageShape`, the targets."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from streams.checks import check_choice, check_float, check_int

__all__ = ["AUGMENTATION_BLOCKS", "CONFIG_DIR", "DEMO_CONFIG", "E2E_KINDS", "MEL_DTYPES", "PARTS", "REPO_ROOT",
           "STAGE_ROWS", "STAGE_VARIANTS", "TARGETS", "BenchSettings", "StageShape", "Targets"]

PARTS = ("stage", "reference", "peers", "e2e", "memory", "first-batch", "audio")
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
E2E_KINDS = ("samples", "floor", "full")
"""The end-to-end pipes: read-only samples (no shuffle, no batching), the read-only floor (shuffle
buffer and batches like the full config) and the full config (every augmentation block on)."""
MEL_DTYPES = ("float32", "float16")

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
DEMO_CONFIG = os.path.join(CONFIG_DIR, "full.json")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class Targets:
    """The figures the benchmark judges (reported, never asserted)."""

    stage_floor: float = 3.0
    """Every stage at most this many times its copy floor."""
    chunk_shuffle_speedup: float = 10.0
    """Chunk shuffle at least this many times faster than the plan's reference (long sample)."""
    e2e_floor: float = 0.6
    """The full config at least this fraction of the read-only floor's throughput."""
    scaling_two_vs_one: float = 1.6
    """Two workers at least this many times one worker's throughput."""
    one_worker_vs_in_process: float = 0.9
    """One DataLoader worker at least this fraction of the in-process (0 workers) rate."""
    two_workers_vs_in_process: float = 1.5
    """Two DataLoader workers at least this many times the in-process rate."""
    read_only_vs_webdataset: float = 1.3
    """The read-only pipe at least this many times as fast as the plain webdataset loop."""
    plan_config_vs_webdataset: float = 1.5
    """The plan's example config at least this many times as fast as webdataset + the plan's functions."""
    memory_buffer_factor: float = 1.5
    """Peak memory at most the stated constant plus this many times the buffered bytes."""
    growth_tolerance: float = 0.02
    """Epoch-end resident memory counts as flat if it grows by at most this fraction of the peak."""


TARGETS = Targets()


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
            check_int(getattr(self, name), f"stage shape {name}", minimum=1)

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
    """What :func:`pipelines.bench.run_benchmarks` measures, and how big.

    ``repeats`` applies to the stage, reference, peers and first-batch parts, ``e2e_repeats`` to
    each end-to-end configuration (one epoch each). Without ``shards``, the peers, end-to-end and
    memory parts read shards written to a temporary folder (``shard_dir`` keeps them): ``e2e_samples``
    simulated-editor samples of ``e2e_n_mels`` mels (float16 on disk) with raw lengths drawn from
    ``[e2e_min_frames, e2e_max_frames]``. ``shards`` (a brace pattern or a list) reads those
    shards instead, real music say. ``mel_dtype`` is what those parts decode to (``"float16"``:
    half precision end to end, for both our pipes and the webdataset peers). ``shuffle_buffer``
    and ``pair_buffer`` are the buffer sizes of the end-to-end and memory runs. ``e2e_threads``
    is the torch thread count of the process that reads with 0 workers (end to end, peers and
    memory); DataLoader workers always run one thread each. One by default: then 0, 1 and 2
    workers compare like with like, and torch's spinning thread pool cannot turn a busy
    machine's load into a threefold slowdown (measured: two threads spent 2.5x the CPU time of
    one for the same epoch while other jobs ran).

    The audio part packs ``audio_recordings`` recordings both as audio shards and as mel shards
    and times ``audio_epochs`` epochs of each pipe: the first recordings (by key) of the
    ``simulate-edits`` folder ``audio_src``, or, without it, recordings of ``audio_seconds``
    seconds synthesised for the run.
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
    mel_dtype: str = "float32"
    first_batch_config: str = DEMO_CONFIG
    first_batch_workers: tuple[int, ...] = (0, 2)
    seed: int = 0
    progress: bool = True
    shard_dir: str | None = None
    shards: str | None = None
    audio_recordings: int = 4
    audio_seconds: float = 180.0
    audio_epochs: int = 3
    audio_src: str | None = None

    def __post_init__(self) -> None:
        unknown = [part for part in self.parts if part not in PARTS]
        if unknown or not self.parts:
            raise ValueError(f"parts must be a non-empty selection of {', '.join(PARTS)} "
                             f"({', '.join(self.parts) or 'none'} given)")
        minimums = {"repeats": 1, "stage_calls": 1, "e2e_repeats": 1, "e2e_samples": 2, "e2e_n_mels": 1,
                    "e2e_min_frames": 10, "samples_per_shard": 1, "e2e_threads": 1, "batch_size": 1,
                    "shuffle_buffer": 0, "pair_buffer": 2, "memory_epochs": 2,
                    "audio_recordings": 1, "audio_epochs": 1}
        for name, minimum in minimums.items():
            check_int(getattr(self, name), name, minimum=minimum)
        if self.e2e_max_frames < self.e2e_min_frames:
            raise ValueError(f"e2e_max_frames must be >= e2e_min_frames ({self.e2e_max_frames} < "
                             f"{self.e2e_min_frames})")
        if not self.stage_shapes:
            raise ValueError("stage_shapes needs at least one shape, like 128x30000x20000")
        for name in ("workers", "first_batch_workers"):
            values = getattr(self, name)
            if not values or any(not isinstance(w, int) or w < 0 for w in values):
                raise ValueError(f"{name} must be one or more worker counts >= 0 ({values!r} given)")
        check_choice(self.mel_dtype, "mel_dtype", MEL_DTYPES)
        check_float(self.audio_seconds, "audio_seconds", minimum=1.0)
        if self.audio_src is not None and not os.path.isdir(self.audio_src):
            raise ValueError(f"audio_src must be a simulate-edits folder (recordings + EDLs) ({self.audio_src!r} "
                             "given: no such folder)")

    @classmethod
    def quick(cls, **overrides: Any) -> BenchSettings:
        """Tiny sizes and one repetition: checks that every part runs and reports (the test suite's smoke run)."""
        settings = dict(repeats=1, stage_shapes=(StageShape(16, 2400, 1600), StageShape(8, 300, 200)),
                        stage_calls=1, e2e_repeats=1, e2e_samples=8, e2e_n_mels=16, e2e_min_frames=200,
                        e2e_max_frames=600, samples_per_shard=2, workers=(0, 1), batch_size=2, shuffle_buffer=2,
                        pair_buffer=2, memory_epochs=2, first_batch_workers=(0,),
                        audio_recordings=2, audio_seconds=3.0, audio_epochs=1)
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
        for name, text in (("workers", workers), ("first_batch_workers", first_batch_workers)):
            if text is not None:
                given[name] = _parse_ints(text, name)
        return cls.quick(**given) if quick else cls(**given)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["stage_shapes"] = [shape.label for shape in self.stage_shapes]
        return out
