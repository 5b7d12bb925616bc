"""How the benchmark times things: CPU and wall seconds per item, interleaved repetitions, spreads.

The machine a benchmark runs on is shared and noisy, so no figure stands alone: each is a ratio
against a floor timed in the same run, interleaved with it (the order rotates every repetition),
over several repetitions: the median, with the min-max spread of the per-repetition ratios.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence

import psutil
from tqdm import tqdm

from .settings import REPO_ROOT, BenchSettings

__all__ = ["Measure", "Spread", "TimeSpread", "Timing", "child_env", "cpu_seconds", "interleaved", "progress_bar",
           "timed"]


@dataclasses.dataclass(frozen=True)
class Spread:
    """The median of some figures with their minimum and maximum."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float], scale: float = 1.0) -> Spread:
        """Median, min and max of ``values`` times ``scale``."""
        return cls(statistics.median(values) * scale, min(values) * scale, max(values) * scale)

    @classmethod
    def of_ratios(cls, numerators: Sequence[float], denominators: Sequence[float]) -> Spread:
        """The ratio of the medians, and the min-max of the per-repetition ratios."""
        per_repeat = [n / d for n, d in zip(numerators, denominators)]
        return cls(statistics.median(numerators) / statistics.median(denominators), min(per_repeat), max(per_repeat))


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per item of one repetition: process CPU time and wall-clock time."""

    cpu: float
    wall: float


@dataclasses.dataclass(frozen=True)
class TimeSpread(Spread):
    """Milliseconds per item over repetitions: CPU time (median, min, max) and wall time beside it."""

    wall: Spread

    @classmethod
    def of_timings(cls, timings: Sequence[Timing]) -> TimeSpread:
        cpu = Spread.of([t.cpu for t in timings], 1e3)
        return cls(cpu.median, cpu.min, cpu.max, wall=Spread.of([t.wall for t in timings], 1e3))


Measure = Callable[[int], Timing]
"""A timed job: takes the repetition index (it enters the draws' epoch), returns seconds per item."""


def timed(run: Callable[[], int]) -> Timing:
    """Time ``run`` (which returns how many items it processed) in CPU and wall seconds per item."""
    cpu, wall = time.process_time(), time.perf_counter()
    items = run()
    return Timing((time.process_time() - cpu) / items, (time.perf_counter() - wall) / items)


def interleaved(measures: dict[str, Measure], repeats: int, bar: tqdm | None) -> dict[str, list[Timing]]:
    """Run every measure once per repetition, rotating their order so drift spreads evenly.

    One untimed warm-up run of each precedes the timed repetitions (its repetition index,
    ``repeats``, is one the timed runs do not use).
    """
    names = list(measures)
    for name in names:
        measures[name](repeats)
    times: dict[str, list[Timing]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(measures[name](repeat))
            if bar is not None:
                bar.update(1)
    return times


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` and its live children (DataLoader workers)."""
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


def progress_bar(settings: BenchSettings, total: int | None, desc: str, unit: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=not settings.progress, dynamic_ncols=True, leave=False)


def child_env() -> dict[str, str]:
    """The environment of a benchmark child process: this one's, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    return env
