"""A whole benchmark run: the parts the settings select, then every figure against its target."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
import time
from typing import Any

import torch

from .audio import bench_audio
from .data import measure_shards, write_bench_shards
from .e2e import bench_e2e
from .first_batch import bench_first_batch
from .memory import bench_memory
from .peers import bench_peers
from .rows import BenchResult, Target
from .settings import TARGETS, BenchSettings
from .stages import bench_stages

__all__ = ["judge_targets", "run_benchmarks", "write_json"]


def judge_targets(result: BenchResult) -> list[Target]:
    """Each figure of ``result`` against its target (:class:`~pipelines.bench.settings.Targets`)."""
    targets: list[Target] = []

    def add(part: str, what: str, figure: float | None, goal: float, *, at_most: bool = False) -> None:
        """A figure against ``goal``: at least it (a speed-up, a ratio of rates), or at most it (a cost ratio)."""
        met = None if figure is None else (figure <= goal if at_most else figure >= goal)
        targets.append(Target(part, what, figure, f"{'<=' if at_most else '>='} {goal:g}x", met))

    for row in result.stage or ():
        add("stage", f"{row.stage} {row.shape} / clone floor", row.ratio.median, TARGETS.stage_floor, at_most=True)
    for row in result.reference or ():
        if row.stage == "chunk_shuffle" and row.long:
            add("reference", f"chunk_shuffle {row.shape} speed-up over the plan",
                row.speedup.median if row.speedup else None, TARGETS.chunk_shuffle_speedup)
    if result.peers:
        goals = (TARGETS.read_only_vs_webdataset, TARGETS.plan_config_vs_webdataset)
        for ratio, goal in zip(result.peers.ratios, goals):
            add("peers", ratio.what, ratio.speedup.median, goal)
    e2e = result.e2e
    if e2e:
        for row in e2e.rows:
            add("e2e", f"full / read-only floor, {row.workers} worker(s)", row.ratio.median, TARGETS.e2e_floor)
        full = e2e.scaling.get("full", {})
        if "2" in full:
            add("e2e", "full config, 2 workers / 1 worker", full["2"], TARGETS.scaling_two_vs_one)
        for kind, scaling in e2e.in_process.items():
            for workers, goal in (("1", TARGETS.one_worker_vs_in_process), ("2", TARGETS.two_workers_vs_in_process)):
                if workers in scaling:
                    add("e2e", f"{kind}, {workers} worker(s) / in process", scaling[workers].median, goal)
    memory = result.memory
    if memory:
        targets.append(Target(
            "memory", "peak RSS (MB)", memory.peak_mb,
            f"<= {memory.constant_mb:.0f} MB + {TARGETS.memory_buffer_factor:g} x {memory.buffered_mb:.0f} MB buffered "
            f"= {memory.bound_mb:.0f} MB", memory.peak_mb <= memory.bound_mb))
        targets.append(Target(
            "memory", f"RSS growth over {memory.epochs} epochs (MB, {memory.growth_measured_on})", memory.growth_mb,
            f"<= {TARGETS.growth_tolerance:.0%} of peak = {TARGETS.growth_tolerance * memory.peak_mb:.0f} MB",
            memory.growth_fraction_of_peak <= TARGETS.growth_tolerance))
    return targets


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (how busy the shared machine was), if the OS has them."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_benchmarks(settings: BenchSettings | None = None) -> BenchResult:
    """Run the parts ``settings`` selects (the defaults when ``None``); return every figure
    (``.to_json()`` for a JSON-friendly dict).

    The peers, end-to-end and memory parts read ``settings.shards`` when given, else simulated
    shards written to a temporary folder (or ``settings.shard_dir``); the audio part reads
    ``settings.audio_src`` when given, else recordings synthesised for the run.
    """
    settings = settings or BenchSettings()
    started = time.perf_counter()
    result = BenchResult(
        settings=settings.to_json(),
        environment={"python": platform.python_version(), "torch": torch.__version__,
                     "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                     "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "load_average_start": _load_average()})
    parts = set(settings.parts)
    if parts & {"stage", "reference"}:
        stage_rows, reference_rows = bench_stages(settings, with_reference="reference" in parts)
        result.stage = stage_rows if "stage" in parts else None
        result.reference = reference_rows if "reference" in parts else None
    if parts & {"peers", "e2e", "memory"}:
        with tempfile.TemporaryDirectory(prefix="pipelines-bench-") as temporary:
            if settings.shards:
                shards = measure_shards(settings.shards, settings)
            else:
                shards = write_bench_shards(settings.shard_dir or temporary, settings)
            if "peers" in parts:
                result.peers = bench_peers(shards, settings)
            if "e2e" in parts:
                result.e2e = bench_e2e(shards, settings)
            if "memory" in parts:
                result.memory = bench_memory(shards, settings)
    if "first-batch" in parts:
        result.first_batch = bench_first_batch(settings)
    if "audio" in parts:
        result.audio = bench_audio(settings)
    result.environment["load_average_end"] = _load_average()
    result.targets = judge_targets(result)
    result.seconds = time.perf_counter() - started
    return result


def write_json(result: BenchResult | dict[str, Any], path: str) -> None:
    """Write ``result`` to ``path`` as indented JSON."""
    data = result.to_json() if dataclasses.is_dataclass(result) else result
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
