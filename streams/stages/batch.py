"""Batching stages: fixed-size batches of padded samples."""

from __future__ import annotations

from typing import Any

from .collate import collate_samples
from ..pipe import Node, Stage, StreamContext, pipe_method

__all__ = ["BatchStage"]


@pipe_method("batch")
class BatchStage(Stage):
    """Group ``batch_size`` consecutive samples into a padded :class:`~streams.stages.collate.Batch`.

    The last, smaller batch of a pass is yielded unless ``drop_last`` (then its samples are
    counted as dropped in the stats). Use ``DataLoader(pipe, batch_size=None)`` after this stage.
    """

    name = "batch"

    def __init__(self, batch_size: int, *, drop_last: bool = False):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1 (got {batch_size!r})")
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)

    def open(self, upstream: Node | None, ctx: StreamContext) -> Node:
        return _BatchNode(upstream, self.batch_size, self.drop_last)


class _BatchNode(Node):
    def __init__(self, upstream: Node, batch_size: int, drop_last: bool):
        self.upstream = upstream
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.batches = 0
        self.dropped = 0

    def __next__(self) -> Any:
        samples = []
        for sample in self.upstream:
            samples.append(sample)
            if len(samples) == self.batch_size:
                break
        if not samples or (self.drop_last and len(samples) < self.batch_size):
            self.dropped += len(samples)
            raise StopIteration
        self.batches += 1
        return collate_samples(samples)

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "dropped": self.dropped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches, self.dropped = state["batches"], state["dropped"]

    def stats(self) -> dict[str, Any]:
        return {"batches": self.batches, "dropped": self.dropped}
