"""Checking shard sets: every problem found, with its reason, shard, sample key and member.

:func:`check_shards` reads every shard to its end the way a source with ``on_error="skip"``
would, but instead of dropping bad samples it lists them: each bad sample, and each shard that
cannot be read to its end (missing, not a tar, empty, cut short, garbled), is one
:class:`Problem`. ``python -m pipelines check`` prints them and exits non-zero if there is any.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from ..reading.decode import decode_record
from ..sample import SampleError, check_sample
from ..reading.shardlist import expand_shard_urls
from ..reading.tar_records import Record, ShardReadError, iter_records

__all__ = ["Problem", "ShardCheck", "check_records", "check_shards"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong in a shard set.

    ``key`` is the sample (``None`` for a shard-wide problem that cut no sample), ``member`` the
    tar member at fault when known; ``message`` names all of them and says what would fix it.
    """

    reason: str
    url: str
    key: str | None
    message: str
    member: str | None = None

    def __str__(self) -> str:
        return self.message


class ShardCheck(NamedTuple):
    """The result for one shard: ``samples`` records read (bad ones included), and its problems."""

    url: str
    samples: int
    problems: list[Problem]


def check_records(records: Iterable[Record], *, mel_dtype: str = "float32") -> Iterator[Problem]:
    """Decode and check each record; yield a :class:`Problem` for each bad one."""
    for record in records:
        try:
            check_sample(decode_record(record, mel_dtype=mel_dtype))
        except SampleError as err:
            yield Problem(err.reason, record.url, record.key, str(err), err.member)


def check_shards(urls: str | Iterable[str], *, mel_dtype: str = "float32") -> Iterator[ShardCheck]:
    """For each shard of ``urls`` (patterns expanded): a :class:`ShardCheck`.

    Reading goes on past bad samples. A shard that cannot be read to its end adds one problem
    after those of the samples read before the damage; a sample the damage cut counts as read.
    ``mel_dtype`` is the source's (float64 mels that overflow float16 show up as ``not_finite``).
    """
    for url in expand_shard_urls(urls):
        problems: list[Problem] = []
        count = 0

        def counted(records: Iterable[Record]) -> Iterator[Record]:
            nonlocal count
            for record in records:
                count += 1
                yield record

        try:
            problems.extend(check_records(counted(iter_records(url)), mel_dtype=mel_dtype))
        except ShardReadError as err:
            count += err.lost_samples
            problems.append(Problem(err.reason, url, err.key, str(err), err.member))
        yield ShardCheck(url, count, problems)
