"""Shuffle buffer: a seeded, epoch-dependent reordering of the stream within a bounded window."""

from __future__ import annotations

from typing import Any

from ..pipe import Node, Stage, StreamContext, pipe_method
from ..seeding import order_rng

__all__ = ["ShuffleStage"]


@pipe_method("shuffle")
class ShuffleStage(Stage):
    """Shuffle items within a buffer of ``buffer_size`` (held as references, not copies).

    Once the buffer is full, each new item replaces a uniformly drawn buffered item, which is
    yielded; at the end of the stream the buffer drains in random order. Draws come from
    (seed, epoch, stage, rank, worker). ``buffer_size`` 0 or 1 passes items through unchanged.
    On resume, the buffered items are read again by origin (they must carry one).
    """

    name = "shuffle"

    def __init__(self, buffer_size: int):
        if not isinstance(buffer_size, int) or isinstance(buffer_size, bool) or buffer_size < 0:
            raise ValueError(f"shuffle buffer_size must be an int >= 0 (got {buffer_size!r})")
        self.buffer_size = buffer_size

    def open(self, upstream: Node | None, ctx: StreamContext) -> Node:
        return _ShuffleNode(upstream, self.buffer_size, ctx)


class _ShuffleNode(Node):
    def __init__(self, upstream: Node, buffer_size: int, ctx: StreamContext):
        self.upstream = upstream
        self.buffer_size = buffer_size
        self.rng = order_rng(ctx.seed, ctx.epoch, ctx.stage, ctx.rank, ctx.worker)
        self.buffer: list[Any] = []
        self.exhausted = False
        self._restore: list | None = None

    def __next__(self) -> Any:
        if self._restore is not None:
            self.buffer, self._restore = list(self.upstream.replay(self._restore)), None
        while not self.exhausted and len(self.buffer) < self.buffer_size:
            try:
                self.buffer.append(next(self.upstream))
            except StopIteration:
                self.exhausted = True
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

    def state_dict(self) -> dict[str, Any]:
        held = self._restore if self._restore is not None else [_origin(item) for item in self.buffer]
        return {"rng": self.rng.bit_generator.state, "buffer": list(held), "exhausted": self.exhausted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.exhausted = state["exhausted"]
        self._restore = list(state["buffer"])

    def stats(self) -> dict[str, Any]:
        return {"buffered": len(self.buffer)}


def _origin(item: Any) -> Any:
    origin = getattr(item, "origin", None)
    if origin is None:
        raise ValueError(f"shuffle can save its buffer only for items with an origin (samples read by a source), "
                         f"not {type(item).__name__}; shuffle before a map that drops it, or do not save this pipe")
    return origin

