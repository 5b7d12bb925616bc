"""Shuffle buffer: a seeded, epoch-dependent reordering of the stream within a bounded window."""

from __future__ import annotations

from typing import Any

from ..checks import check_int
from ..pipe import Node, Stage, StreamContext, pipe_method
from .buffered import BufferedNode, held_origin

__all__ = ["ShuffleStage"]


class _ShuffleNode(BufferedNode):
    def __init__(self, upstream: Node, stage: ShuffleStage, ctx: StreamContext, state: dict[str, Any] | None):
        self.buffer: list[Any] = []
        super().__init__(upstream, stage, ctx, state)

    def __next__(self) -> Any:
        self.fill(self.buffer, self.stage.buffer_size)
        if not self.exhausted:
            try:
                incoming = next(self.upstream)
            except StopIteration:
                self.exhausted = True
            else:
                if not self.buffer:
                    return incoming
                index = int(self.rng.integers(len(self.buffer)))
                item, self.buffer[index] = self.buffer[index], incoming
                return item
        if not self.buffer:
            raise StopIteration
        index = int(self.rng.integers(len(self.buffer)))
        self.buffer[index], self.buffer[-1] = self.buffer[-1], self.buffer[index]
        return self.buffer.pop()

    def held(self) -> list[Any]:
        return [held_origin(item, "shuffle") for item in self.buffer]

    def restore(self, held: list[Any]) -> None:
        self.buffer = self.replayed(held)

    def stats(self) -> dict[str, Any]:
        return {"buffered": len(self.buffer)}


@pipe_method("shuffle")
class ShuffleStage(Stage):
    """Shuffle items within a buffer of ``buffer_size`` (held as references, not copies).

    Once the buffer is full, each new item replaces a uniformly drawn buffered item, which is
    yielded; at the end of the stream the buffer drains in random order. Draws come from
    (seed, epoch, stage, rank, worker). ``buffer_size`` 0 or 1 passes items through unchanged.
    On resume, the buffered items are read again by origin (they must carry one).
    """

    name = "shuffle"
    node_class = _ShuffleNode

    def __init__(self, buffer_size: int):
        self.buffer_size = check_int(buffer_size, "buffer_size")
