"""Origins: where an item came from, enough to read it again on resume. One home for the format.

An origin is stored as a plain tuple of strings and ints (it goes into state dicts and JSON):

* ``("shard", shard, record)``: record ``record`` of the pipe's shard number ``shard``; a record
  read again within an epoch (equal steps' repeats, resampled draws) adds a fourth element, the
  reading's ``occurrence`` (1, 2...), which also enters the seed of its augmentations;
* ``("memory", index)``: item ``index`` of a :class:`~streams.reading.source.MemorySource`;
* ``("pair", origin_a, origin_b)``: a concatenated pair of two origins.

:func:`parse_origin` reads any of them (lists after a JSON round trip too) into a small named
tuple with ``parts()`` (the source readings inside, a pair's in order), ``occurrence`` and
``is_pair``; the ``*_origin`` functions make the stored tuples.
"""

from __future__ import annotations

from typing import NamedTuple, Union

__all__ = [
    "MemoryOrigin",
    "Origin",
    "PairOrigin",
    "ParsedOrigin",
    "ShardOrigin",
    "is_pair_origin",
    "memory_origin",
    "pair_origin",
    "parse_origin",
    "shard_origin",
    "source_samples",
]

Origin = tuple
"""The stored form of an origin: a plain tuple (see the module docstring)."""


class ShardOrigin(NamedTuple):
    """A record read from a shard: ``shard`` (index in the pipe's shard list), ``record`` (index
    in that shard) and ``occurrence`` (0 for the first reading in an epoch)."""

    shard: int
    record: int
    occurrence: int = 0

    is_pair = False

    def parts(self) -> tuple[ShardOrigin, ...]:
        return (self,)

    def stored(self) -> Origin:
        return shard_origin(self.shard, self.record, self.occurrence)


class MemoryOrigin(NamedTuple):
    """Item ``index`` of an in-memory source."""

    index: int

    is_pair = False
    occurrence = 0

    def parts(self) -> tuple[MemoryOrigin, ...]:
        return (self,)

    def stored(self) -> Origin:
        return memory_origin(self.index)


class PairOrigin(NamedTuple):
    """A concatenated pair: ``first`` then ``second`` (each any parsed origin, pairs included)."""

    first: ParsedOrigin
    second: ParsedOrigin

    is_pair = True
    occurrence = 0

    def parts(self) -> tuple[ShardOrigin | MemoryOrigin, ...]:
        """The source readings inside, in order (nested pairs flattened)."""
        return self.first.parts() + self.second.parts()

    def stored(self) -> Origin:
        return pair_origin(self.first.stored(), self.second.stored())


ParsedOrigin = Union[ShardOrigin, MemoryOrigin, PairOrigin]


def shard_origin(shard: int, record: int, occurrence: int = 0) -> Origin:
    """The stored origin of a shard record; the occurrence is written only when it is not 0.

    >>> shard_origin(2, 7), shard_origin(2, 7, 1)
    (('shard', 2, 7), ('shard', 2, 7, 1))
    """
    return ("shard", shard, record, occurrence) if occurrence else ("shard", shard, record)


def memory_origin(index: int) -> Origin:
    return ("memory", index)


def pair_origin(first: Origin | None, second: Origin | None) -> Origin:
    return ("pair", first, second)


def parse_origin(origin: object) -> ParsedOrigin:
    """The named tuple of a stored origin (tuples or, after JSON, lists); ``ValueError`` otherwise.

    >>> parse_origin(("shard", 0, 3, 2)).occurrence, parse_origin(["memory", 4])
    (2, MemoryOrigin(index=4))
    >>> pair = parse_origin(("pair", ("shard", 0, 1), ("pair", ("memory", 0), ("memory", 1))))
    >>> pair.is_pair, [part.stored() for part in pair.parts()]
    (True, [('shard', 0, 1), ('memory', 0), ('memory', 1)])
    """
    if isinstance(origin, (tuple, list)) and origin:
        kind, rest = origin[0], tuple(origin[1:])
        if kind == "shard" and len(rest) in (2, 3):
            return ShardOrigin(*map(int, rest))
        if kind == "memory" and len(rest) == 1:
            return MemoryOrigin(int(rest[0]))
        if kind == "pair" and len(rest) == 2:
            return PairOrigin(parse_origin(rest[0]), parse_origin(rest[1]))
    raise ValueError(f"{origin!r} is not an origin (('shard', shard, record[, occurrence]), ('memory', index) or "
                     "('pair', origin_a, origin_b)); items to resume or replay must come from a source")


def is_pair_origin(origin: object) -> bool:
    """Whether ``origin`` is a stored pair origin (a tuple, or a list after JSON).

    >>> is_pair_origin(("pair", ("memory", 0), ("memory", 1))), is_pair_origin(("memory", 0))
    (True, False)
    """
    return isinstance(origin, (tuple, list)) and len(origin) == 3 and origin[0] == "pair"


def source_samples(origin: object) -> int:
    """How many source samples an item with this ``origin`` holds: a pair's parts add up; an item
    without a readable origin counts as one.

    >>> source_samples(("shard", 0, 3)), source_samples(("pair", ("shard", 0, 1), ["shard", 2, 0]))
    (1, 2)
    """
    if is_pair_origin(origin):
        return len(parse_origin(origin).parts())
    return 1
