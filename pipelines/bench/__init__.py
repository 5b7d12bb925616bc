"""Benchmarks: throughput and memory as ratios against floors and peers measured in the same run.

The machine is shared and noisy, so no figure stands alone: each is a ratio against a floor (or a
peer) timed in the same run (:mod:`~pipelines.bench.timing` says how). ``python -m pipelines bench``
runs the parts and prints a table; :func:`run_benchmarks` returns the same figures as typed rows
(:mod:`~pipelines.bench.rows`; ``.to_json()``, :func:`write_json`).

One module per part (``BenchSettings.parts``), each saying how its figures are made:

``stage``, ``reference`` (:mod:`~pipelines.bench.stages`)
    Each augmentation stage, forced to fire, against a ``clone()`` of its tensors, and against the
    plan's reference code (:mod:`~pipelines.bench.reference`).
``peers`` (:mod:`~pipelines.bench.peers`)
    The read-only pipe and the plan's example config against the webdataset loop a user would
    write instead, plain and with the plan's functions, on the same shards.
``e2e`` (:mod:`~pipelines.bench.e2e`)
    Samples/s through ``build_pipe`` and a ``DataLoader``: read-only samples, the read-only floor
    and the full config, per worker count, with scaling against the in-process rate.
``memory`` (:mod:`~pipelines.bench.memory`, child :mod:`~pipelines.bench.memory_child`)
    Peak and epoch-end resident memory of the full config against the buffered bytes.
``first-batch`` (:mod:`~pipelines.bench.first_batch`, child :mod:`~pipelines.bench.first_batch_child`)
    Seconds from loading a config to its first batch.
``audio`` (:mod:`~pipelines.bench.audio`)
    Samples/s and real-time factor of the audio-shard paths (mels made when read, re-edit, export)
    against mel shards of the same recordings, in one process: synthesised recordings, or the
    first of a ``simulate-edits`` folder (``bench --audio-src DIR``).

The peers, end-to-end and memory parts read simulated shards written for the run, or any shard
set given as ``BenchSettings(shards=PATTERN)`` (``bench --shards PATTERN``). Targets
(:class:`~pipelines.bench.settings.Targets`) are reported, never asserted.
"""

from .audio import AUDIO_PATHS
from .data import ShardSet, augmentation_stage, bench_sample, e2e_config, measure_shards, write_bench_shards
from .report import render_report
from .rows import BenchResult
from .run import judge_targets, run_benchmarks, write_json
from .settings import (
    AUGMENTATION_BLOCKS,
    E2E_KINDS,
    PARTS,
    STAGE_ROWS,
    STAGE_VARIANTS,
    TARGETS,
    BenchSettings,
    StageShape,
)

__all__ = [
    "AUDIO_PATHS",
    "AUGMENTATION_BLOCKS",
    "E2E_KINDS",
    "PARTS",
    "STAGE_ROWS",
    "STAGE_VARIANTS",
    "TARGETS",
    "BenchResult",
    "BenchSettings",
    "ShardSet",
    "StageShape",
    "augmentation_stage",
    "bench_sample",
    "e2e_config",
    "judge_targets",
    "measure_shards",
    "render_report",
    "run_benchmarks",
    "write_bench_shards",
    "write_json",
]
