"""Checking shard sets and sample folders: every problem found, with its reason, shard and key."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from .decode import decode_record
from .sample import SampleError, check_sample
from .shardlist import expand_shard_urls
from .tar_records import Record, iter_records

__all__ = ["Problem", "check_records", "check_shards"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong in a shard set."""

    reason: str
    url: str
    key: str | None
    message: str

    def __str__(self) -> str:
        return self.message


def check_records(records: Iterable[Record]) -> Iterator[Problem]:
    """Decode and check each record; yield a :class:`Problem` for each bad one."""
    for record in records:
        try:
            check_sample(decode_record(record))
        except SampleError as err:
            yield Problem(err.reason, record.url, record.key, str(err))


def check_shards(urls: str | Iterable[str]) -> Iterator[tuple[str, int, list[Problem]]]:
    """For each shard: ``(url, samples read, problems)``; reading goes on past bad samples.

    A shard that cannot be read to its end (missing, not a tar, cut short) adds one problem after
    the samples read before the damage.
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
            problems.extend(check_records(counted(iter_records(url))))
        except SampleError as err:
            problems.append(Problem(err.reason, url, err.key, str(err)))
        except Exception as err:
            problems.append(Problem("unreadable_shard", url, None,
                                    f"shard {url}: cannot read it past sample {count} ({type(err).__name__}: {err})"))
        yield url, count, problems
