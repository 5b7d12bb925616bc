"""Part ``peers``: our pipes against what a user would write instead, on the same shards.

What a user would otherwise write is a plain webdataset loop: ``wds.WebDataset(urls).decode()``
and ``torch.from_numpy(...)`` for each member, converted to the mel dtype the pipe decodes to,
with the plan's functions (:mod:`pipelines.bench.reference`) in a ``.map``. Five loops over every
sample of the shard set, shards in order, interleaved in one run (the order rotates every
repetition), each timed in process CPU time per sample on one torch thread:

``tar bytes``
    Reading the shard files alone (1 MB reads): the floor under any reader.
``webdataset``
    ``WebDataset(urls, shardshuffle=False).decode()``, then each mel ``torch.from_numpy(...)``
    converted to the mel dtype and the pointers ``torch.from_numpy(...)``. No checks.
``ours: read-only``
    ``Pipe.from_shards(urls, shuffle_shards=False, mel_dtype=...)``: decoding plus every check of
    the sample (shapes, dtypes, pointer ranges, finiteness).
``webdataset + plan``
    The webdataset loop plus the plan's functions, applied as its Augmentor would: each block of
    the plan's example config (``full.json``: crop, chunk shuffle, gain, channel dropout,
    SpecAugment, noise; pairing is off there) fires with its probability, drawn from one
    ``random.Random`` and one ``torch.Generator`` (per pass, seeded from the repetition).
``ours: plan config``
    ``build_pipe`` of that same config on these shards, without shuffle buffer and batching.

Ratios (their time / ours): the read-only pipe against the webdataset loop, and the plan config
against webdataset + the plan's functions.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
import webdataset as wds

from streams import Pipe

from ..build import build_pipe
from .data import ShardSet, e2e_config, plan_config
from .reference import REFERENCE_AUGMENTATIONS
from .rows import PeerRatio, PeerRow, PeersResult
from .settings import BenchSettings
from .timing import Measure, Spread, TimeSpread, Timing, interleaved, progress_bar, timed

__all__ = ["LOOPS", "PLAN_ORDER", "bench_peers", "webdataset_loop"]

LOOPS = {
    "tar bytes": "reading the shard files alone",
    "webdataset": "WebDataset(urls).decode() + torch.from_numpy(...).to(dtype)",
    "ours: read-only": "Pipe.from_shards(...): decode and check every sample",
    "webdataset + plan": "the webdataset loop + the plan's functions, the plan's example config",
    "ours: plan config": "build_pipe(the plan's example config), no shuffle buffer, no batching",
}
"""The peers part's loops, in report order, with what each does."""

PLAN_ORDER = ("crop", "chunk_shuffle", "gain", "channel_dropout", "spec_augment", "noise")
"""The plan's example blocks (pairing is off there), in the order ``build_pipe`` runs them."""

_RATIOS = (("read-only pipe vs the webdataset loop", "ours: read-only", "webdataset"),
           ("plan config vs webdataset + the plan's functions", "ours: plan config", "webdataset + plan"))


def webdataset_loop(urls: list[str], mel_dtype: torch.dtype,
                    augment: Callable[[tuple], tuple] | None = None) -> Iterator[tuple]:
    """The loop a user would write: ``(raw_mel, edit_mel, pointers)`` tensors from webdataset."""

    def to_tensors(sample: dict[str, Any]) -> tuple:
        return (torch.from_numpy(sample["raw_mel.npy"]).to(mel_dtype),
                torch.from_numpy(sample["edit_mel.npy"]).to(mel_dtype),
                torch.from_numpy(sample["pointers.npy"]))

    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode().map(to_tensors)
    if augment is not None:
        dataset = dataset.map(augment)
    return iter(dataset)


class _PlanAugmentor:
    """The plan's functions applied as its Augmentor would, with explicit generators; counts the
    calls that fail (the plan's crop on a sample shorter than its window) and passes those over."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.generator = torch.Generator().manual_seed(seed)
        blocks = plan_config()["augmentation"]  # each enabled block of the plan's example, in PLAN_ORDER
        self.probabilities = {name: float(blocks[name]["probability"]) for name in PLAN_ORDER
                              if blocks[name].get("enabled")}
        self.failures = 0

    def __call__(self, triple: tuple) -> tuple:
        for name, probability in self.probabilities.items():
            if self.rng.random() < probability:
                try:
                    triple = REFERENCE_AUGMENTATIONS[name](*triple, self.rng, self.generator)
                except (ValueError, RuntimeError, IndexError):
                    self.failures += 1
        return triple


def bench_peers(shards: ShardSet, settings: BenchSettings) -> PeersResult:
    """CPU ms per sample of each of :data:`LOOPS` on ``shards``; see the module docstring."""
    urls = list(shards.urls)
    mel_dtype = {"float32": torch.float32, "float16": torch.float16}[settings.mel_dtype]
    plan_pipe = build_pipe(e2e_config(urls, settings, kind="plan"))
    failures: list[int] = []

    def counted(items: Iterator[Any]) -> int:
        count = 0
        for item in items:
            count += 1
            del item
        if count != shards.samples:
            raise RuntimeError(f"a peer loop read {count} samples from shards holding {shards.samples}; "
                               "the figures would not compare like with like")
        return count

    def tar_bytes(repeat: int) -> Timing:
        def run() -> int:
            for url in urls:
                with open(url, "rb") as f:
                    while f.read(1 << 20):
                        pass
            return shards.samples

        return timed(run)

    def plain(repeat: int) -> Timing:
        return timed(lambda: counted(webdataset_loop(urls, mel_dtype)))

    def read_only(repeat: int) -> Timing:
        pipe = Pipe.from_shards(urls, seed=settings.seed, shuffle_shards=False, mel_dtype=settings.mel_dtype)
        return timed(lambda: counted(iter(pipe)))

    def with_plan(repeat: int) -> Timing:
        augmentor = _PlanAugmentor(seed=settings.seed * 1000 + repeat)
        timing = timed(lambda: counted(webdataset_loop(urls, mel_dtype, augmentor)))
        failures.append(augmentor.failures)
        return timing

    def plan(repeat: int) -> Timing:
        plan_pipe.set_epoch(repeat)
        return timed(lambda: counted(iter(plan_pipe)))

    local = all(os.path.isfile(url) for url in urls)
    measures: dict[str, Measure] = {"webdataset": plain, "ours: read-only": read_only,
                                    "webdataset + plan": with_plan, "ours: plan config": plan}
    if local:
        measures = {"tar bytes": tar_bytes, **measures}
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.e2e_threads)
    try:
        with progress_bar(settings, len(measures) * settings.repeats, "bench: peers", "pass") as bar:
            times = interleaved(measures, settings.repeats, bar)
    finally:
        torch.set_num_threads(threads)
    cpu = {name: [t.cpu for t in timings] for name, timings in times.items()}
    rows = [PeerRow(loop=name, description=LOOPS[name], ms=TimeSpread.of_timings(times[name])) for name in measures]
    ratios = [PeerRatio(what=what, ours=ours, theirs=theirs, speedup=Spread.of_ratios(cpu[theirs], cpu[ours]))
              for what, ours, theirs in _RATIOS]
    return PeersResult(shards=shards.pattern, samples=shards.samples, mel_dtype=settings.mel_dtype,
                       repeats=settings.repeats, rows=rows, ratios=ratios,
                       plan_function_failures=max(failures, default=0))
