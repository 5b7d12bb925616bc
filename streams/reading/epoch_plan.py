"""Per-epoch reading plans: which records each reader (rank × DataLoader worker) yields, and how many.

An :class:`EpochPlanner` holds a shard source's reading mode; for one reader and epoch it makes a
:class:`ReaderPlan`, a sequence of :class:`Span` (records ``[start, stop)`` of one shard) and an
optional budget of samples. The plan depends only on (seed, epoch, layout, shard counts), so every
rank computes every other rank's plan identically before the epoch starts. Three modes:

* **exactly once** (default): rank ``r`` reads every ``R``-th shard of the epoch's order, its
  worker ``w`` every ``W``-th of those, whole. Each sample is yielded once per epoch in total, but
  ranks may yield different numbers of samples (a DDP loop then hangs at the epoch's end), and
  readers without a shard yield nothing (warned at start).
* **equal steps** (``equal_steps="repeat"`` or ``"drop"``): the epoch's ``N`` samples, in shard
  order, are one sequence, and rank ``r`` reads positions ``[r*T, (r+1)*T)`` of it, where
  ``T = ceil(N / R)`` (``"repeat"``: positions past ``N`` wrap to the epoch's first samples, so at
  most ``R - 1`` samples are read twice) or ``floor(N / R)`` (``"drop"``: the last ``N - R*T < R``
  samples are not read), or ``T = epoch_samples`` when given. The rank's ``T`` is split between
  its workers as evenly as possible (:func:`split_evenly`), identically on every rank, so with a
  fixed batch size every rank also yields the same number of batches
  (:func:`batches_per_rank`). Each worker reads a contiguous block (it may start inside a shard:
  the records before its start are read and passed over). A sample that cannot be yielded
  (skipped as bad, or missing because a shard is shorter than its count) is replaced by the next
  position after the block, so the budget always holds; such samples are counted as ``refilled``.
  Needs every shard's sample count (``index.json`` from pack, or given).
* **resampled** (``resampled=True``): each reader draws shards with replacement (weighted by
  sample count when counts are known, so every sample is equally likely; else uniformly) from
  (seed, epoch, rank, worker, draw number) and yields ``epoch_samples`` per rank and epoch (split
  between workers as above), or forever when ``epoch_samples`` is ``None``.

Layouts that cannot work fail at start with ``ValueError`` (:meth:`EpochPlanner.check_layout`);
layouts that work but waste readers warn once per process (:class:`ShardLayoutWarning`).

What equal steps does and does not cover. It equalises the samples *out of the source*. Stages
that keep the count (augmentations, the shuffle buffer) keep it equal, and fixed-size batching
in the pipe or in the DataLoader (``drop_last`` or not) gives every rank exactly
:func:`batches_per_rank` batches. Stages whose output count depends on the data differ per rank:
concatenation (pairing), filters, and batching by frame budget; with them, run the loop under
DDP's ``model.join()`` (uneven inputs), or agree on a step count with an all_reduce. Costs and
edges: readers whose block starts inside a shard read that shard's earlier records and pass
over them (about one shard per reader per epoch of extra reading); a sample read again in an
epoch (a repeat, or a later draw in resampled mode) carries its reading's ``occurrence`` in its
origin and so gets fresh augmentations; with ``shuffle_shards=False`` the same samples are repeated or
dropped every epoch.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..checks import FieldError, check_int
from ..seeding import derive_seed
from .shardlist import epoch_shard_order, shards_for_worker

__all__ = [
    "EQUAL_STEPS_POLICIES",
    "CyclicPlan",
    "EpochPlanner",
    "ReaderPlan",
    "ResampledPlan",
    "ShardLayoutWarning",
    "ShardListPlan",
    "Span",
    "batches_per_rank",
    "log_summary",
    "split_evenly",
    "warn_once",
]

EQUAL_STEPS_POLICIES = ("repeat", "drop")
RESAMPLED_IDLE_DRAWS_PER_SHARD = 30
"""A resampled reader gives up after this many draws per shard in a row without a usable sample."""

logger = logging.getLogger("streams.reading.epoch_plan")


class ShardLayoutWarning(UserWarning):
    """The layout works but wastes readers or makes ranks unequal (turn into errors with ``warnings``)."""


_said: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Emit ``message`` as a :class:`ShardLayoutWarning` the first time ``key`` is seen in this process."""
    if key not in _said:
        _said.add(key)
        warnings.warn(message, ShardLayoutWarning, stacklevel=3)


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` shares differing by at most one, larger shares first.

    >>> split_evenly(10, 4)
    [3, 3, 2, 2]
    >>> split_evenly(1, 3)
    [1, 0, 0]
    """
    if parts < 1:
        raise ValueError(f"parts must be >= 1 ({parts!r} given)")
    share, extra = divmod(total, parts)
    return [share + (part < extra) for part in range(parts)]


def batches_per_rank(samples_per_rank: int, num_workers: int, batch_size: int, drop_last: bool = False) -> int:
    """Batches a rank yields per epoch when a pipe batches ``samples_per_rank`` samples in each worker.

    Each DataLoader worker batches its own share (:func:`split_evenly`), so the last batch of every
    worker may be short (or dropped with ``drop_last``). ``num_workers=0`` means the main process.

    >>> batches_per_rank(10, num_workers=2, batch_size=4)
    4
    >>> batches_per_rank(10, num_workers=2, batch_size=4, drop_last=True)
    2
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 ({batch_size!r} given)")
    shares = split_evenly(samples_per_rank, max(1, num_workers))
    return sum(share // batch_size if drop_last else -(-share // batch_size) for share in shares)


@dataclasses.dataclass(frozen=True)
class Span:
    """Records ``[start, stop)`` of shard number ``shard`` (``stop=None``: to the shard's end).

    ``position`` is where the shard's record 0 lies in the epoch's sample sequence, counting
    repeated passes on (equal steps only; ``None`` otherwise). ``occurrence`` tells readings of
    the same records apart within an epoch: 0 for a first reading, then the pass number (equal
    steps' wrap-around) or the draw number (resampled); the source puts it into the samples'
    origins, so that a sample read again gets fresh augmentations.
    """

    shard: int
    start: int = 0
    stop: int | None = None
    position: int | None = None
    occurrence: int = 0


class ReaderPlan:
    """What one reader reads in one epoch: ``span(k)`` for ``k = 0, 1, ...`` until ``None``, and
    at most ``budget`` samples (``None``: until the spans run out).

    ``span(k)`` is a pure function of ``k``, so a resumed reader needs only its span index.
    """

    budget: int | None = None
    max_idle_spans: int | None = None
    """Spans in a row without a usable sample after which the reader gives up (``None``: never)."""

    def span(self, k: int) -> Span | None:
        raise TypeError(f"{type(self).__name__} must define span()")

    def describe(self) -> dict[str, Any]:
        """A small JSON-friendly identity, saved with a reader's state to refuse a mismatched resume."""
        raise TypeError(f"{type(self).__name__} must define describe()")

    def is_repeat(self, position: int | None) -> bool:
        """Whether the record at epoch ``position`` was already planned earlier in the epoch."""
        return False

    def is_refill(self, position: int | None) -> bool:
        """Whether the record at epoch ``position`` lies past this reader's own block."""
        return False


class ShardListPlan(ReaderPlan):
    """Whole shards, each once (the exactly-once mode)."""

    def __init__(self, shards: Sequence[int]):
        self.shards = list(shards)

    def span(self, k: int) -> Span | None:
        return Span(self.shards[k]) if k < len(self.shards) else None

    def describe(self) -> dict[str, Any]:
        return {"mode": "exactly_once", "shards": list(self.shards)}


class CyclicPlan(ReaderPlan):
    """A contiguous block of the epoch's sample sequence, wrapping around (the equal-steps mode).

    ``counts[i]`` is shard ``i``'s sample count, ``order`` the epoch's shard order; the reader
    yields ``budget`` samples from position ``block_start`` on.
    """

    def __init__(self, counts: Sequence[int], order: Sequence[int], block_start: int, budget: int):
        self.counts = list(counts)
        self.sequence = [shard for shard in order if self.counts[shard] > 0]
        self.offsets = [0, *itertools.accumulate(self.counts[shard] for shard in self.sequence)]
        self.total = self.offsets[-1]  # > 0: EpochPlanner refuses equal steps over empty shards
        self.block_start = block_start
        self.budget = budget
        self.max_idle_spans = len(self.sequence) + 1
        cycle, within = divmod(block_start, self.total)
        first = bisect.bisect_right(self.offsets, within) - 1
        self._first = (cycle, first, within - self.offsets[first])

    def span(self, k: int) -> Span:
        cycle, first, first_record = self._first
        turns, index = divmod(first + k, len(self.sequence))
        shard = self.sequence[index]
        return Span(shard, first_record if k == 0 else 0, self.counts[shard],
                    (cycle + turns) * self.total + self.offsets[index], occurrence=cycle + turns)

    def describe(self) -> dict[str, Any]:
        return {"mode": "equal_steps", "block_start": self.block_start, "budget": self.budget, "total": self.total,
                "order": derive_seed(*self.sequence, *(self.counts[shard] for shard in self.sequence))}

    def is_repeat(self, position: int | None) -> bool:
        return position is not None and position >= self.total

    def is_refill(self, position: int | None) -> bool:
        return position is not None and position >= self.block_start + self.budget


class ResampledPlan(ReaderPlan):
    """Shards drawn with replacement, ``span(k)`` from (seed, epoch, rank, worker, k) alone."""

    def __init__(self, num_shards: int, counts: Sequence[int] | None, *, seed: int, epoch: int, rank: int,
                 worker: int, budget: int | None):
        weights = np.asarray(counts if counts is not None else [1] * num_shards, dtype=np.float64)
        if weights.sum() <= 0:
            raise ValueError("resampled: the shards hold no samples (every sample count is 0)")
        self.cumulative = np.cumsum(weights)
        self.counts = list(counts) if counts is not None else None
        self.key = (seed, epoch, rank, worker)
        self.budget = budget
        self.max_idle_spans = RESAMPLED_IDLE_DRAWS_PER_SHARD * num_shards + 10
        self._last: tuple[int, Span] | None = None  # a reader asks for its current span once per sample

    def span(self, k: int) -> Span:
        if self._last is not None and self._last[0] == k:
            return self._last[1]
        draw = np.random.Generator(np.random.PCG64(derive_seed("resample", *self.key, k))).random()
        shard = int(np.searchsorted(self.cumulative, draw * self.cumulative[-1], side="right"))
        shard = min(shard, len(self.cumulative) - 1)
        span = Span(shard, 0, self.counts[shard] if self.counts is not None else None, occurrence=k)
        self._last = (k, span)
        return span

    def describe(self) -> dict[str, Any]:
        return {"mode": "resampled", "key": list(self.key), "budget": self.budget,
                "weights": derive_seed(*self.cumulative.tolist())}


@dataclasses.dataclass(frozen=True)
class EpochPlanner:
    """A shard source's reading mode; makes each reader's :class:`ReaderPlan` per epoch.

    Args:
        num_shards: how many shards the source lists.
        counts: each shard's sample count, or ``None`` when unknown (required for equal steps).
        shuffle_shards: shuffle the shard order per epoch (from seed and epoch).
        equal_steps: ``None`` (exactly once), ``"repeat"`` or ``"drop"`` (see the module docstring).
        resampled: draw shards with replacement.
        epoch_samples: samples per rank and epoch; resampled (``None``: endless) or equal steps
            (``None``: from ``equal_steps``' rounding).

    >>> planner = EpochPlanner(3, [5, 5, 4], equal_steps="repeat")
    >>> planner.samples_per_rank(world_size=2), planner.repeated_per_epoch(2)
    (7, 0)
    >>> EpochPlanner(3, [5, 5, 4], equal_steps="drop").samples_per_rank(world_size=4)
    3
    """

    num_shards: int
    counts: tuple[int, ...] | None = None
    shuffle_shards: bool = True
    equal_steps: str | None = None
    resampled: bool = False
    epoch_samples: int | None = None

    def __post_init__(self) -> None:
        if self.counts is not None:
            object.__setattr__(self, "counts", tuple(self.counts))
            if len(self.counts) != self.num_shards:
                raise ValueError(f"{len(self.counts)} sample counts for {self.num_shards} shards")
        if self.equal_steps is not None and self.equal_steps not in EQUAL_STEPS_POLICIES:
            raise FieldError("equal_steps", f"equal_steps must be None, \"repeat\" or \"drop\" "
                                            f"({self.equal_steps!r} given)")
        if self.epoch_samples is not None:
            check_int(self.epoch_samples, "epoch_samples", minimum=1)
        if self.resampled and self.equal_steps is not None:
            raise FieldError("equal_steps", "resampled streams already give every rank epoch_samples samples per "
                                            "epoch; leave equal_steps unset (None; null in a config) with "
                                            "resampled=True")
        if self.epoch_samples is not None and not self.resampled and self.equal_steps is None:
            raise FieldError("epoch_samples", f"epoch_samples={self.epoch_samples} needs resampled=True or "
                                              "equal_steps (\"repeat\" or \"drop\"); an exactly-once epoch is as "
                                              "long as the shards")
        if self.equal_steps is not None and self.counts is None:
            raise FieldError("sample_counts", "equal_steps needs every shard's sample count (index.json written by "
                                              "pack next to the shards, or sample_counts)")
        if self.counts is not None and sum(self.counts) == 0 and (self.equal_steps or self.resampled):
            raise ValueError("the shards hold no samples (every sample count is 0)")

    @property
    def total_samples(self) -> int | None:
        """All shards' samples together (``None`` when the counts are unknown)."""
        return sum(self.counts) if self.counts is not None else None

    def samples_per_rank(self, world_size: int) -> int | None:
        """Samples every rank yields per epoch (``None``: it varies by rank, or endless)."""
        if self.equal_steps is None or self.epoch_samples is not None:  # resampled has no equal_steps
            return self.epoch_samples
        total = sum(self.counts)
        return -(-total // world_size) if self.equal_steps == "repeat" else total // world_size

    def repeated_per_epoch(self, world_size: int) -> int:
        """Samples read a second time per epoch, over all ranks (equal steps; 0 otherwise)."""
        if self.equal_steps is None:
            return 0
        return max(0, self.samples_per_rank(world_size) * world_size - sum(self.counts))

    def dropped_per_epoch(self, world_size: int) -> int:
        """Samples not read per epoch, over all ranks (equal steps; 0 otherwise)."""
        if self.equal_steps is None:
            return 0
        return max(0, sum(self.counts) - self.samples_per_rank(world_size) * world_size)

    def check_layout(self, world_size: int) -> None:
        """Raise ``ValueError`` if some rank of ``world_size`` would have no data."""
        if self.resampled:
            return
        if self.equal_steps is None:
            if self.num_shards < world_size:
                idle = (f"rank {self.num_shards}" if self.num_shards == world_size - 1
                        else f"ranks {self.num_shards}..{world_size - 1}")
                raise ValueError(
                    f"{self.num_shards} shard(s) for {world_size} ranks: {idle} would get no data; use at least as "
                    "many shards as ranks, equal_steps=\"repeat\" (ranks then share shards by samples) or "
                    "resampled=True")
            return
        if self.samples_per_rank(world_size) == 0:
            raise ValueError(f"equal_steps=\"drop\" leaves 0 samples per rank ({sum(self.counts)} samples for "
                             f"{world_size} ranks); use equal_steps=\"repeat\" or more data")

    def summary(self, world_size: int) -> str:
        """One line saying how an epoch is laid out over ``world_size`` ranks (logged at start)."""
        if self.resampled:
            per_rank = "endless" if self.epoch_samples is None else f"{self.epoch_samples} samples per rank"
            weighting = "by sample count" if self.counts is not None else "uniformly"
            return f"resampled: {self.num_shards} shards drawn with replacement {weighting}, {per_rank} per epoch"
        if self.equal_steps is None:
            total = f"{self.total_samples} samples" if self.counts is not None else "samples"
            return (f"exactly once: {total} in {self.num_shards} shards over {world_size} rank(s), "
                    "whole shards per reader")
        return (f"equal steps ({self.equal_steps}): {self.total_samples} samples in {self.num_shards} shards over "
                f"{world_size} rank(s) -> {self.samples_per_rank(world_size)} samples per rank per epoch; "
                f"{self.repeated_per_epoch(world_size)} repeated, {self.dropped_per_epoch(world_size)} dropped")

    def reader_plan(self, *, seed: int, epoch: int, rank: int, world_size: int, worker: int,
                    num_workers: int) -> ReaderPlan:
        """The plan of DataLoader worker ``worker`` of rank ``rank`` in ``epoch``; warns once per
        process about readers without data and ranks of unequal length."""
        self.check_layout(world_size)
        where = f"rank {rank} worker {worker} (of {world_size} rank(s) x {num_workers} worker(s))"
        per_rank = self.samples_per_rank(world_size)  # None: exactly once, or resampled without end
        budgets = None if per_rank is None else split_evenly(per_rank, num_workers)
        if budgets is not None and budgets[worker] == 0:
            warn_once("empty-worker", f"{where}: no samples to read ({per_rank} per rank for {num_workers} "
                                      "workers); use fewer DataLoader workers")
        if self.resampled:
            return ResampledPlan(self.num_shards, self.counts, seed=seed, epoch=epoch, rank=rank, worker=worker,
                                 budget=None if budgets is None else budgets[worker])
        order = epoch_shard_order(self.num_shards, seed, epoch, self.shuffle_shards)
        if self.equal_steps is not None:
            return CyclicPlan(self.counts, order, rank * per_rank + sum(budgets[:worker]), budgets[worker])
        shards = shards_for_worker(order, rank, world_size, worker, num_workers)
        if not shards:
            warn_once("empty-worker", f"{where}: no shard to read ({self.num_shards} shards for "
                                      f"{world_size * num_workers} readers); this worker yields nothing; use fewer "
                                      "DataLoader workers, more shards, or equal_steps to split shards by samples")
        if world_size > 1 and worker == 0:
            self._check_rank_totals(order, world_size, epoch)
        return ShardListPlan(shards)

    def _check_rank_totals(self, order: list[int], world_size: int, epoch: int) -> None:
        if self.counts is None:
            if self.num_shards % world_size:
                warn_once("unequal-ranks", f"{self.num_shards} shards over {world_size} ranks: ranks read different "
                                           "numbers of shards, so a DDP loop that syncs every step can hang at the "
                                           "epoch's end; set equal_steps (with sample counts) or resampled")
            return
        totals = [sum(self.counts[shard] for shard in order[rank::world_size]) for rank in range(world_size)]
        if min(totals) == 0:
            raise ValueError(f"epoch {epoch}: rank {totals.index(0)} gets only empty shards; use equal_steps or "
                             "resampled, or remove the empty shards")
        if min(totals) != max(totals):
            warn_once("unequal-ranks", f"epoch {epoch}: ranks yield {min(totals)} to {max(totals)} samples, so a DDP "
                                       "loop that syncs every step can hang at the epoch's end; set equal_steps "
                                       "(\"repeat\" or \"drop\") or resampled")


def log_summary(planner: EpochPlanner, world_size: int, rank: int) -> None:
    """Log the planner's summary once per process (at INFO; warnings are separate)."""
    key = f"summary:{planner.summary(world_size)}"
    if key not in _said:
        _said.add(key)
        logger.info("rank %d: %s", rank, planner.summary(world_size))
