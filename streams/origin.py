"""Origins: where an item came from, enough to read it again on resume; the one home of the format.

Stored as plain tuples (they go into state dicts and JSON): ``("shard", shard, record)`` for
record ``record`` of the pipe's shard number ``shard``, with a fourth element, the reading's
``occurrence`` (1, 2...), when a record is read again within an epoch (equal steps' repeats,
resampled draws; it enters the seed of its augmentations); ``("memory", index)`` for an item of a
:class:`~streams.reading.source.MemorySource`; ``("pair", origin_a, origin_b)`` for a concatenated
pair. :func:`parse_origin` reads any of them (lists after JSON too) into a small named tuple with
``parts()`` (the source readings inside, in order), ``occurrence``, ``is_pair`` and ``stored()``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MemoryOrigin", "Origin", "PairOrigin", "ShardOrigin", "is_pair_origin", "pair_origin", "parse_origin",
           "source_samples"]

Origin = tuple
"""The stored form of an origin (see the module docstring)."""


class ShardOrigin(NamedTuple):
    shard: int
    record: int
    occurrence: int = 0
    is_pair = False

    def parts(self) -> tuple[ShardOrigin, ...]:
        return (self,)

    def stored(self) -> Origin:
        return ("shard", self.shard, self.record) + ((self.occurrence,) if self.occurrence else ())


class MemoryOrigin(NamedTuple):
    index: int
    is_pair = False
    occurrence = 0

    def parts(self) -> tuple[MemoryOrigin, ...]:
        return (self,)

    def stored(self) -> Origin:
        return ("memory", self.index)


class PairOrigin(NamedTuple):
    first: ShardOrigin | MemoryOrigin | PairOrigin
    second: ShardOrigin | MemoryOrigin | PairOrigin
    is_pair = True
    occurrence = 0

    def parts(self) -> tuple[ShardOrigin | MemoryOrigin, ...]:
        return self.first.parts() + self.second.parts()

    def stored(self) -> Origin:
        return pair_origin(self.first.stored(), self.second.stored())


def pair_origin(first: Origin | None, second: Origin | None) -> Origin:
    return ("pair", first, second)


def parse_origin(origin: object) -> ShardOrigin | MemoryOrigin | PairOrigin:
    """The named tuple of a stored origin; ``ValueError`` for anything else.

    >>> parse_origin(("shard", 0, 3, 2)).occurrence, parse_origin(["memory", 4])
    (2, MemoryOrigin(index=4))
    >>> pair = parse_origin(("pair", ("shard", 0, 1), ("pair", ("memory", 0), ("shard", 1, 0, 1))))
    >>> pair.is_pair, [part.stored() for part in pair.parts()]
    (True, [('shard', 0, 1), ('memory', 0), ('shard', 1, 0, 1)])
    """
    kind, rest = (origin[0], tuple(origin[1:])) if isinstance(origin, (tuple, list)) and origin else (None, ())
    if kind == "shard" and len(rest) in (2, 3):
        return ShardOrigin(*map(int, rest))
    if kind == "memory" and len(rest) == 1:
        return MemoryOrigin(int(rest[0]))
    if kind == "pair" and len(rest) == 2:
        return PairOrigin(parse_origin(rest[0]), parse_origin(rest[1]))
    raise ValueError(f"{origin!r} is not an origin (('shard', shard, record[, occurrence]), ('memory', index) or "
                     "('pair', origin_a, origin_b)); items to resume or replay must come from a source")


def is_pair_origin(origin: object) -> bool:
    """Whether ``origin`` is a stored pair origin: ``is_pair_origin(("pair", a, b))`` is true."""
    return isinstance(origin, (tuple, list)) and len(origin) == 3 and origin[0] == "pair"


def source_samples(origin: object) -> int:
    """Source samples in an item with this ``origin``: a pair's parts add up; no origin counts one.

    >>> source_samples(("shard", 0, 3)), source_samples(("pair", ("shard", 0, 1), ["shard", 2, 0]))
    (1, 2)
    """
    return len(parse_origin(origin).parts()) if is_pair_origin(origin) else 1
