"""The base of nodes that hold items back: shuffle, pairing and frame-budget bucketing.

Such a node pulls items from upstream into a buffer (:meth:`BufferedNode.fill`) until it is full
or the upstream is ``exhausted``, decides with an order generator keyed by (seed, epoch, stage,
rank, worker) what leaves, and counts what it did. Its state is that generator's state, the
``exhausted`` flag, the counts and the *origins* of the items it holds, never the items: opened
with a saved state, the node reads the held items again through ``upstream.replay`` (the source
re-reads them, every stage between re-applies its keyed work), so a resumed buffer is the saved
one, bit for bit.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..origin import Origin
from ..pipe import Node, Stage, StreamContext
from ..seeding import order_rng

__all__ = ["BufferedNode", "held_origin"]


def held_origin(item: Any, stage: str) -> Origin:
    """The origin a buffered ``item`` is saved as; ``ValueError`` for items a source did not make."""
    origin = getattr(item, "origin", None)
    if origin is None:
        raise ValueError(f"{stage} can save its buffer only for items with an origin (samples read by a source), "
                         f"not {type(item).__name__}; put it before a map that drops the origin, or do not save "
                         "this pipe")
    return origin


class BufferedNode(Node):
    """Keyed order generator, ``exhausted`` flag and held origins on top of a node's counts.

    Subclasses set ``held_key`` (the state key of their held origins) and define :meth:`held`
    (the origins of what they hold, any nesting of lists) and :meth:`restore` (rebuild what they
    hold from those origins with :meth:`replayed`); they make their empty buffer before calling
    ``super().__init__``, which restores a saved one.
    """

    held_key: ClassVar[str] = "buffer"

    def __init__(self, upstream: Node, stage: Stage, ctx: StreamContext, state: dict[str, Any] | None):
        super().__init__(upstream, stage, ctx, state)
        self.rng = order_rng(ctx.seed, ctx.epoch, ctx.stage, ctx.rank, ctx.worker)
        self.exhausted = False
        if state is not None:
            self.rng.bit_generator.state = state["rng"]
            self.exhausted = state["exhausted"]
            self.restore(state[self.held_key])

    def fill(self, buffer: list[Any], size: int) -> int:
        """Pull items into ``buffer`` until it holds ``size`` or the upstream ends; returns how many came."""
        start = len(buffer)
        while not self.exhausted and len(buffer) < size:
            try:
                buffer.append(next(self.upstream))
            except StopIteration:
                self.exhausted = True
        return len(buffer) - start

    def replayed(self, origins: list[Origin]) -> list[Any]:
        """The items with these origins, read again through the upstream, in this order."""
        return list(self.upstream.replay(list(origins)))

    def held(self) -> list[Any]:
        raise TypeError(f"{type(self).__name__} must define held()")

    def restore(self, held: list[Any]) -> None:
        raise TypeError(f"{type(self).__name__} must define restore()")

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "rng": self.rng.bit_generator.state, self.held_key: self.held(),
                "exhausted": self.exhausted}
