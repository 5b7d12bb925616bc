"""The benchmark's typed results: one small frozen dataclass per kind of row, JSON through ``asdict``."""

from __future__ import annotations

import dataclasses
from typing import Any

from .timing import Spread, TimeSpread

__all__ = ["AudioResult", "AudioRow", "BenchResult", "E2EFigures", "E2EResult", "E2ERow", "FirstBatchResult",
           "FirstBatchRow", "MemoryResult", "PeerRatio", "PeerRow", "PeersResult", "ReferenceRow", "StageRow", "Target"]


@dataclasses.dataclass(frozen=True)
class StageRow:
    """One augmentation stage on one sample shape, forced to fire, against the ``clone()`` floor."""

    shape: str
    long: bool
    stage: str
    calls: int
    per: str
    """``"sample"``, or ``"pair"`` for concatenation (timed per pair, against both samples' clone)."""
    ms: TimeSpread
    floor_ms: TimeSpread
    ratio: Spread


@dataclasses.dataclass(frozen=True)
class ReferenceRow:
    """Our stage against the plan's reference code on the same sample: speed-up = reference / ours."""

    shape: str
    long: bool
    stage: str
    calls: int
    ours_ms: TimeSpread
    reference_ms: TimeSpread | None
    speedup: Spread | None
    reference_error: str | None = None
    """Why the reference cannot run on this sample (its own edge-case bugs), when it cannot."""


@dataclasses.dataclass(frozen=True)
class PeerRow:
    """One loop of the peers part: CPU ms per sample on one torch thread."""

    loop: str
    description: str
    ms: TimeSpread


@dataclasses.dataclass(frozen=True)
class PeerRatio:
    """Our loop against the loop a user would write instead: speed-up = their time / ours."""

    what: str
    ours: str
    theirs: str
    speedup: Spread


@dataclasses.dataclass(frozen=True)
class PeersResult:
    shards: str
    samples: int
    mel_dtype: str
    repeats: int
    rows: list[PeerRow]
    ratios: list[PeerRatio]
    plan_function_failures: int
    """Calls of the plan's functions that failed in a pass (its crop on a sample shorter than its
    window), passed over by the peer loop; the most in any repetition."""


@dataclasses.dataclass(frozen=True)
class E2EFigures:
    """One pipe at one worker count, over the timed epochs."""

    seconds: Spread
    samples_per_s: float
    mb_per_s: float
    cpu_ms_per_sample: Spread
    cores_busy: float


@dataclasses.dataclass(frozen=True)
class E2ERow:
    """Every pipe at one worker count: ``kinds`` maps each of :data:`~pipelines.bench.settings.E2E_KINDS`
    to its figures; ``ratio`` is full / floor throughput, ``cpu_ratio`` full / floor CPU time."""

    workers: int
    kinds: dict[str, E2EFigures]
    ratio: Spread
    cpu_ratio: Spread


@dataclasses.dataclass(frozen=True)
class E2EResult:
    shards: str
    synthetic: bool
    samples: int
    n_mels: int
    mel_dtype: str
    decoded_mb: float
    disk_mb: float
    repeats: int
    threads: int
    rows: list[E2ERow]
    scaling: dict[str, dict[str, float]]
    """Per pipe, samples/s of each worker count relative to 1 worker."""
    in_process: dict[str, dict[str, Spread]]
    """Per pipe, samples/s of each worker count relative to 0 workers (the in-process rate),
    median and per-repetition spread."""


@dataclasses.dataclass(frozen=True)
class MemoryResult:
    shuffle_buffer: int
    pair_buffer: int
    batch_size: int
    epochs: int
    baseline_mb: float
    peak_mb: float
    high_water_mb: float
    buffered_mb: float
    buffered_items: int
    in_flight_mb: float
    constant_mb: float
    bound_mb: float
    peak_over_baseline_per_buffered: float | None
    epoch_end_mb: list[float]
    epoch_peak_mb: list[float]
    epoch_end_trimmed_mb: list[float] | None
    growth_mb: float
    growth_fraction_of_peak: float
    growth_measured_on: str
    rss_samples: int


@dataclasses.dataclass(frozen=True)
class FirstBatchRow:
    workers: int
    in_process_s: Spread
    fresh_process_s: Spread
    fresh_after_start_s: Spread


@dataclasses.dataclass(frozen=True)
class FirstBatchResult:
    config: str
    rows: list[FirstBatchRow]


@dataclasses.dataclass(frozen=True)
class AudioRow:
    """One pipe of the audio part, in one process on one torch thread (what one DataLoader worker
    delivers), over the timed epochs: ``ratio`` is its epoch time / the mel-shard floor's (how many
    times slower; per-epoch spread), ``realtime`` seconds of recording read per wall second."""

    path: str
    samples_per_s: float
    realtime: float
    seconds: Spread
    """Wall seconds per epoch."""
    cpu_ms_per_sample: Spread
    ratio: Spread


@dataclasses.dataclass(frozen=True)
class AudioResult:
    source: str
    """The ``simulate-edits`` folder read, or ``"synthetic"``."""
    synthetic: bool
    recordings: int
    recording_seconds: list[float]
    """Each raw recording's length, in key order."""
    epochs: int
    rows: list[AudioRow]
    """The mel-shard floor first, then each audio path."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One figure against its target; ``met`` is ``None`` when it could not be measured."""

    part: str
    what: str
    figure: float | None
    target: str
    met: bool | None


@dataclasses.dataclass
class BenchResult:
    """Everything one run measured; ``None`` for the parts it did not run."""

    settings: dict[str, Any]
    environment: dict[str, Any]
    stage: list[StageRow] | None = None
    reference: list[ReferenceRow] | None = None
    peers: PeersResult | None = None
    e2e: E2EResult | None = None
    memory: MemoryResult | None = None
    first_batch: FirstBatchResult | None = None
    audio: AudioResult | None = None
    targets: list[Target] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict, without the parts that did not run."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}
