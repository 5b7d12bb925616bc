"""Part ``first-batch``: seconds from loading a config to its first batch, in this process and from a
fresh ``python`` process (:mod:`pipelines.bench.first_batch_child`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from torch.utils.data import DataLoader

from ..build import build_pipe, load_config
from .rows import FirstBatchResult, FirstBatchRow
from .settings import REPO_ROOT, BenchSettings
from .timing import Spread, child_env, progress_bar

__all__ = ["bench_first_batch"]


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
    child = subprocess.Popen([sys.executable, "-m", "pipelines.bench.first_batch_child", config_path, str(workers)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    line = child.stdout.readline()
    wall = time.perf_counter() - start
    _, errors = child.communicate(timeout=600)
    if child.returncode != 0 or not line.strip():
        raise RuntimeError(f"the first-batch child process failed:\n{errors[-3000:]}")
    return wall, float(line)


def bench_first_batch(settings: BenchSettings) -> FirstBatchResult:
    """Seconds from ``load_config`` to the first batch of ``settings.first_batch_config``, per worker count.

    In process: config loading, ``build_pipe``, the ``DataLoader`` and its workers' start, the
    first batch (imports done). Fresh process: from starting ``python`` (imports included).
    """
    path = settings.first_batch_config
    fresh_repeats = min(settings.repeats, 3)
    total = len(settings.first_batch_workers) * (settings.repeats + fresh_repeats)
    rows = []
    with progress_bar(settings, total, "bench: first batch", "run") as bar:
        for workers in settings.first_batch_workers:
            in_process, fresh = [], []
            for _ in range(settings.repeats):
                in_process.append(_first_batch_seconds(path, workers))
                bar.update(1)
            for _ in range(fresh_repeats):
                fresh.append(_fresh_process_first_batch(path, workers))
                bar.update(1)
            fresh_wall, fresh_inside = zip(*fresh)
            rows.append(FirstBatchRow(workers=workers, in_process_s=Spread.of(in_process),
                                      fresh_process_s=Spread.of(fresh_wall),
                                      fresh_after_start_s=Spread.of(fresh_inside)))
    shown = os.path.relpath(path, REPO_ROOT) if path.startswith(REPO_ROOT) else path
    return FirstBatchResult(config=shown, rows=rows)
