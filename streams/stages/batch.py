"""Batching stages: fixed-size batches of padded samples."""

from __future__ import annotations

from typing import Any

from ..checks import check_int
from ..pipe import Node, Stage, pipe_method
from .collate import collate_samples

__all__ = ["BatchStage"]


class _BatchNode(Node):
    counters = ("batches", "dropped")

    def __next__(self) -> Any:
        size = self.stage.batch_size
        samples = []
        for sample in self.upstream:
            samples.append(sample)
            if len(samples) == size:
                break
        if not samples or (self.stage.drop_last and len(samples) < size):
            self.counts["dropped"] += len(samples)
            raise StopIteration
        self.counts["batches"] += 1
        return collate_samples(samples)


@pipe_method("batch")
class BatchStage(Stage):
    """Group ``batch_size`` consecutive samples into a padded :class:`~streams.stages.collate.Batch`.

    The last, smaller batch of a pass is yielded unless ``drop_last`` (then its samples are
    counted as dropped in the stats). Use ``DataLoader(pipe, batch_size=None)`` after this stage.
    """

    name = "batch"
    node_class = _BatchNode

    def __init__(self, batch_size: int, *, drop_last: bool = False):
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.drop_last = bool(drop_last)
