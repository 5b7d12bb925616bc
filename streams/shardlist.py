"""Which shards a reader reads: expanding URL patterns, ordering them per epoch, splitting them.

The order of an epoch is one permutation of the whole list, drawn from (seed, epoch) alone, so
every rank and worker computes the same order; reader ``g`` of ``G`` (``g = rank * workers +
worker``) then takes every ``G``-th shard of it, starting at ``g``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import braceexpand
from webdataset.shardlists import expand_urls

from .seeding import order_rng

__all__ = ["epoch_shard_order", "expand_shard_urls", "is_local", "local_path", "shards_for_reader"]


def expand_shard_urls(urls: str | Iterable[str]) -> list[str]:
    """Expand brace patterns (``train-{000000..000099}.tar``) and ``::``-joined lists into URLs.

    Accepts one pattern or a list of patterns; raises ``ValueError`` for an unbalanced pattern or
    an empty result.

    >>> expand_shard_urls("a-{0..2}.tar")
    ['a-0.tar', 'a-1.tar', 'a-2.tar']
    """
    patterns = [urls] if isinstance(urls, str) else list(urls)
    expanded: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"shard URLs must be non-empty strings (got {pattern!r})")
        try:
            expanded.extend(expand_urls(pattern))
        except braceexpand.UnbalancedBracesError as err:
            raise ValueError(f"shard pattern {pattern!r} has unbalanced braces ({err}); "
                             "write ranges as name-{000000..000099}.tar") from err
    if not expanded:
        raise ValueError(f"no shard URLs in {urls!r}")
    return expanded


def is_local(url: str) -> bool:
    """True for a plain path or a ``file:`` URL (opened directly, not through a command)."""
    return url.startswith("file:") or ":" not in url.split("/", 1)[0]


def local_path(url: str) -> str:
    """The file system path of a local shard URL."""
    return url[len("file:"):] if url.startswith("file:") else url


def epoch_shard_order(num_shards: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """Indices of all shards in the order of ``epoch``; the same on every rank and worker."""
    if not shuffle:
        return list(range(num_shards))
    return order_rng(seed, epoch, "shards").permutation(num_shards).tolist()


def shards_for_reader(order: list[int], reader: int, num_readers: int) -> list[int]:
    """The part of ``order`` that reader ``reader`` of ``num_readers`` reads."""
    if not 0 <= reader < num_readers:
        raise ValueError(f"reader {reader} is outside [0, {num_readers})")
    return order[reader::num_readers]
