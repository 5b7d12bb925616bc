"""Checking shard sets: every problem found, with its reason, shard, sample key and member.

:func:`check_shards` reads every shard to its end the way a source with ``on_error="skip"``
would, but instead of dropping bad samples it lists them: each bad sample, and each shard that
cannot be read to its end (missing, not a tar, empty, cut short, garbled, fewer samples than
its ``index.json`` count), is one :class:`Problem`; so is a key that appears in two shards
(``duplicate_key_across_shards``: a pattern would read the sample twice). No exception of one
shard stops the check of the others. ``python -m pipelines check`` prints them and exits
non-zero if there is any. Mel shards and audio shards (``pack-audio --store audio``) are both
checked, each record by what it holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from ..reading.decode import REQUIRED_MEMBERS, decode_sample
from ..reading.shardlist import expand_shard_urls, shard_sample_counts
from ..reading.tar_records import ANY_LAYOUT, AUDIO_LAYOUT, ReadLimits, Record, ShardReadError, iter_records
from ..sample import SampleError

__all__ = ["Problem", "ShardCheck", "check_records", "check_shards", "is_audio_record"]


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


def is_audio_record(record: Record) -> bool:
    """Whether ``record`` is an audio shard's (it holds audio-shard members and no mel array)."""
    members = set(record.members)
    return bool(members & AUDIO_LAYOUT.decoded - {"meta.json"}) and not members & set(REQUIRED_MEMBERS)


def check_records(records: Iterable[Record], *, mel_dtype: str = "float32") -> Iterator[Problem]:
    """Decode and check each record, mel or audio (:func:`is_audio_record`: its FLAC decoded, its EDL
    checked against the recording, its mel settings validated); yield a :class:`Problem` for each bad one."""
    for record in records:
        try:
            if is_audio_record(record):
                from ..reading.audio_decode import decode_audio_record  # the audio extra

                decode_audio_record(record)
            else:
                decode_sample(record, mel_dtype=mel_dtype)
        except SampleError as err:
            yield Problem(err.reason, record.url, record.key, str(err), err.member)


def _known_counts(urls: list[str]) -> list[int | None]:
    """Each shard's count from the ``index.json`` beside local shards, ``None`` where unknown."""
    with contextlib.suppress(ValueError):  # a bad or ambiguous index: counts unknown, as with none
        return shard_sample_counts(urls) or [None] * len(urls)
    return [None] * len(urls)


def check_shards(urls: str | Iterable[str], *, mel_dtype: str = "float32",
                 limits: ReadLimits | None = None) -> Iterator[ShardCheck]:
    """For each shard of ``urls`` (patterns expanded): a :class:`ShardCheck`.

    Reading goes on past bad samples. A shard that cannot be read to its end adds one problem
    after those of the samples read before the damage; a sample the damage cut counts as read.
    A shard holding fewer samples than the ``index.json`` beside it says is ``truncated_shard``.
    A key already seen in an earlier shard adds ``duplicate_key_across_shards``. ``mel_dtype``
    is the source's (float64 mels that overflow float16 show up as ``not_finite``); ``limits``
    bounds member sizes and ``pipe:`` stalls as in the source.
    """
    expanded = expand_shard_urls(urls)
    first_shard: dict[str, str] = {}  # key -> the shard it was first seen in
    for url, expected in zip(expanded, _known_counts(expanded)):
        tracker = _KeyTracker(first_shard)
        problems: list[Problem] = []
        try:
            records = tracker.track(iter_records(url, limits=limits, expected=expected, layout=ANY_LAYOUT))
            problems.extend(check_records(records, mel_dtype=mel_dtype))
        except ShardReadError as err:
            tracker.count += err.lost_samples
            problems.append(Problem(err.reason, url, err.key, str(err), err.member))
        except Exception as err:  # whatever else goes wrong in one shard, the others are still checked
            problems.append(Problem("unreadable_shard", url, None, f"shard {url}: checking it failed "
                                                                   f"({type(err).__name__}: {err})"))
        yield ShardCheck(url, tracker.count, [*problems, *tracker.repeated])


class _KeyTracker:
    """Counts the records of one shard and notes keys already seen in earlier shards."""

    def __init__(self, first_shard: dict[str, str]):
        self.first_shard = first_shard
        self.count = 0
        self.repeated: list[Problem] = []

    def track(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.count += 1
            first = self.first_shard.setdefault(record.key, record.url)
            if first != record.url:
                self.repeated.append(Problem(
                    "duplicate_key_across_shards", record.url, record.key,
                    f"sample {record.key!r} in shard {record.url}: the key is also in shard {first}; keys must be "
                    "unique across a shard set (rename one of the samples when packing)"))
            yield record
