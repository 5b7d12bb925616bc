"""Frame-budget batching: batches of similar-length samples whose padded size stays under a budget.

Fixed-size batches of varied lengths waste memory on padding and overflow it on long samples.
:class:`FrameBudgetBatchStage` (``pipe.batch_by_frames(...)``) instead collects a bounded bucket
of samples, sorts it by length and cuts batches greedily so that ``batch size x longest raw`` and
``batch size x longest edit`` both stay within ``max_frames``. The cutting is the pure function
:func:`cut_frame_budget_batches`; the stage only buffers, orders and collates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..checks import check_int
from ..origin import Origin
from ..pipe import Node, Stage, StreamContext, pipe_method
from ..sample import Sample
from .buffered import BufferedNode, held_origin
from .collate import Batch, collate_samples

__all__ = ["FrameBudgetBatchStage", "cut_frame_budget_batches"]


def cut_frame_budget_batches(lengths: Sequence[tuple[int, int]], max_frames: int,
                             max_batch_size: int | None = None) -> list[list[int]]:
    """Group sample indices into batches within a padded-frame budget.

    ``lengths[i]`` is sample ``i``'s ``(raw_frames, edit_frames)``. Samples are sorted by
    ``raw + edit`` frames (then raw frames, then index, so the cut is deterministic) and batches
    are cut greedily along that order: a sample joins the current batch while
    ``size x max raw <= max_frames``, ``size x max edit <= max_frames`` and
    ``size <= max_batch_size``. A sample over the budget on its own becomes a batch of one.
    Batches come out shortest first, oversized ones last; every index appears exactly once.

    >>> cut_frame_budget_batches([(5, 4), (2, 2), (3, 1), (9, 9)], max_frames=8)
    [[1, 2], [0], [3]]
    >>> cut_frame_budget_batches([(1, 1)] * 5, max_frames=100, max_batch_size=2)
    [[0, 1], [2, 3], [4]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i][0] + lengths[i][1], lengths[i][0], i))
    batches: list[list[int]] = []
    oversized: list[list[int]] = []
    current: list[int] = []
    longest_raw = longest_edit = 0
    for index in order:
        raw, edit = lengths[index]
        if raw > max_frames or edit > max_frames:
            oversized.append([index])
            continue
        size = len(current) + 1
        new_raw, new_edit = max(longest_raw, raw), max(longest_edit, edit)
        if current and (size * new_raw > max_frames or size * new_edit > max_frames
                        or (max_batch_size is not None and size > max_batch_size)):
            batches.append(current)
            current, new_raw, new_edit = [], raw, edit
        current.append(index)
        longest_raw, longest_edit = new_raw, new_edit
    if current:
        batches.append(current)
    return batches + oversized


class _FrameBudgetBatchNode(BufferedNode):
    held_key = "pending"
    counters = ("batches", "samples", "oversized", "real_frames", "padded_frames", "largest_padded_frames",
                "largest_batch_size")

    def __init__(self, upstream: Node, stage: FrameBudgetBatchStage, ctx: StreamContext,
                 state: dict[str, Any] | None):
        self.pending: list[list[Sample]] = []  # batches cut from the last flush, in emission order
        super().__init__(upstream, stage, ctx, state)

    def __next__(self) -> Batch:
        if not self.pending:
            bucket: list[Sample] = []
            self.fill(bucket, self.stage.bucket_buffer)
            self._flush(bucket)
        if not self.pending:
            raise StopIteration
        samples = self.pending.pop(0)
        batch = collate_samples(samples)
        counts = self.counts
        counts["batches"] += 1
        counts["samples"] += len(samples)
        counts["oversized"] += len(samples) == 1 and self.stage.is_oversized(samples[0])
        counts["real_frames"] += batch.real_frames
        counts["padded_frames"] += batch.padded_frames
        counts["largest_padded_frames"] = max(counts["largest_padded_frames"], batch.padded_frames)
        counts["largest_batch_size"] = max(counts["largest_batch_size"], len(samples))
        return batch

    def _flush(self, bucket: list[Sample]) -> None:
        if not bucket:
            return
        groups = cut_frame_budget_batches([(s.raw_frames, s.edit_frames) for s in bucket],
                                          self.stage.max_frames, self.stage.max_batch_size)
        self.pending = [[bucket[i] for i in groups[k]] for k in self.rng.permutation(len(groups))]

    def held(self) -> list[list[Origin]]:
        return [[held_origin(s, "batch_by_frames") for s in batch] for batch in self.pending]

    def restore(self, held: list[list[Origin]]) -> None:
        samples = iter(self.replayed([origin for batch in held for origin in batch]))
        self.pending = [[next(samples) for _ in batch] for batch in held]

    def replay(self, origins: list[Origin]) -> Iterator[Any]:
        raise TypeError("batch_by_frames cannot replay batches; put buffering stages (shuffle, pair) before it")

    def stats(self) -> dict[str, Any]:
        padded = self.counts["padded_frames"]
        return {**self.counts, "padding_efficiency": self.counts["real_frames"] / padded if padded else 1.0}


@pipe_method("batch_by_frames")
class FrameBudgetBatchStage(Stage):
    """Dynamic batches of similar-length samples within a padded-frame budget.

    Args:
        max_frames: budget per batch, for raw and edit separately: ``batch size x longest raw
            frames <= max_frames`` and ``batch size x longest edit frames <= max_frames``.
        bucket_buffer: samples collected before a flush (>= 1). Each flush sorts them by length
            and cuts them into batches with :func:`cut_frame_budget_batches`; memory is bounded by
            this many samples.
        max_batch_size: an optional cap on samples per batch (``None``: only the budget limits).

    Fairness: every flush empties the bucket, so each sample leaves in the flush right after it
    arrives (it waits at most ``bucket_buffer`` samples) whatever its length; no short or long
    sample is held back for a better fit. The batches of one flush are emitted in a random order
    (``order_rng``), so lengths do not arrive sorted; at the end of the stream the remaining
    samples are flushed the same way (the last batches may be smaller). A sample over the budget
    on its own is yielded as a batch of one and counted as ``oversized``.

    Yields :class:`~streams.stages.collate.Batch` (pointers padded with -100); use
    ``DataLoader(pipe, batch_size=None)``. Stats: ``batches``, ``samples``, ``oversized``,
    ``real_frames`` and ``padded_frames`` (raw + edit, as in ``Batch``), ``padding_efficiency``
    (real / padded), ``largest_padded_frames`` (the largest ``Batch.padded_frames``) and
    ``largest_batch_size``. On resume, the samples of not yet emitted batches are read again by
    origin. Put buffering stages (shuffle, pair) before this one: batches cannot be replayed.
    """

    name = "batch_by_frames"
    node_class = _FrameBudgetBatchNode

    def __init__(self, max_frames: int, *, bucket_buffer: int = 64, max_batch_size: int | None = None):
        self.max_frames = check_int(max_frames, "max_frames", minimum=1)
        self.bucket_buffer = check_int(bucket_buffer, "bucket_buffer", minimum=1)
        self.max_batch_size = None if max_batch_size is None else check_int(max_batch_size, "max_batch_size", minimum=1)

    def is_oversized(self, sample: Sample) -> bool:
        """Whether ``sample`` alone exceeds the budget."""
        return sample.raw_frames > self.max_frames or sample.edit_frames > self.max_frames
