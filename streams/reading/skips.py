"""Skipping bad input: what a source dropped, as a report (counts by reason and shard, and events).

A shard source reads under one of two policies (``on_error``, see :data:`ON_ERROR_POLICIES`):

* ``"raise"`` (default): the first bad sample or shard stops the stream with an error naming
  the shard, the sample key and the member, and saying what would fix it;
* ``"skip"``: a bad sample is dropped and the source goes on; a damaged shard (missing, not a
  tar, cut short...) is dropped from the point of damage on. Each drop is a :class:`SkipEvent`
  (reason, shard, key, member, message), counted by reason and shard; the first drop in a shard
  logs one warning (:data:`logger`, ``streams.reading.skips``), per process.

Accounting: ``read == yielded + skipped`` holds in every report merged from whole passes.
``read`` counts the records the source formed from the tar (a bad record counts, and so does a
record cut short by damage, which is then skipped); ``skipped`` counts the samples dropped; a
damaged shard is also counted once in ``damaged_shards``, its unread tail being of unknown size.
Counts are in samples as the source read them: downstream, a concatenated pair holds two (see
:func:`streams.origin.source_samples`). How passes in DataLoader workers reach the report, and
how a resumed pass replaces the one it continues, is :mod:`streams.reading.skip_ledger`'s part.

Replays (refilling a buffer on resume) never skip: a replayed sample was good when it was first
read, so a failure then means the shards changed, and it raises whatever the policy.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["ON_ERROR_POLICIES", "Counts", "SkipEvent", "SkipReport", "add_counts", "count_rows"]

logger = logging.getLogger(__name__)
"""Where the first skip of each shard is logged as a warning (once per process)."""

ON_ERROR_POLICIES = ("raise", "skip")
"""``on_error`` values: stop at the first bad sample or shard, or skip, count and report it."""


@dataclasses.dataclass(frozen=True)
class SkipEvent:
    """One drop: a bad sample, or a shard (or its tail) that could not be read.

    ``samples`` is the number of samples this drop removed from the stream: 1 for a bad sample;
    for a damaged shard 1 if a sample was cut by the damage (``key`` names it), else 0.
    ``shard`` is true for a damaged shard. ``member`` is the tar member at fault, when known.
    """

    reason: str
    url: str
    key: str | None
    member: str | None
    message: str
    samples: int
    shard: bool

    def __str__(self) -> str:
        return self.message


# counts are keyed by (reason, url) and hold [samples skipped, shards damaged]
Counts = dict[tuple[str, str], list[int]]


def add_counts(counts: Counts, rows: Iterable[tuple[str, str, int, int]]) -> None:
    for reason, url, samples, shards in rows:
        cell = counts.setdefault((reason, url), [0, 0])
        cell[0] += samples
        cell[1] += shards


def count_rows(counts: Counts) -> list[list[Any]]:
    return [[reason, url, samples, shards] for (reason, url), (samples, shards) in sorted(counts.items())]


@dataclasses.dataclass(frozen=True)
class SkipReport:
    """Merged accounting of one or more passes of a source (see the module docstring).

    ``read == yielded + skipped`` holds for every report merged from whole passes; a pass still
    running in a DataLoader worker enters with its counts as of its last skip. ``counts`` rows
    are ``(reason, shard url, samples skipped, shards damaged)``.

    >>> report = SkipReport(read=3, yielded=2, counts=(("bad_npy", "a.tar", 1, 0),), passes=1)
    >>> report.skipped, report.balanced, report.by_reason(), report.by_shard()
    (1, True, {'bad_npy': 1}, {'a.tar': 1})
    """

    read: int = 0
    yielded: int = 0
    counts: tuple[tuple[str, str, int, int], ...] = ()
    events: tuple[SkipEvent, ...] = ()
    passes: int = 0
    finished_passes: int = 0

    @property
    def skipped(self) -> int:
        """Samples dropped (a pair's parts count one each; they are dropped before pairing)."""
        return sum(row[2] for row in self.counts)

    @property
    def damaged_shards(self) -> int:
        """Shards (per pass) that could not be read to their end."""
        return sum(row[3] for row in self.counts)

    @property
    def balanced(self) -> bool:
        """Whether ``read == yielded + skipped``."""
        return self.read == self.yielded + self.skipped

    def _totals(self, by: int, column: int) -> dict[str, int]:
        """Column ``column`` of the count rows summed per value of column ``by`` (0 reason, 1 url), sorted."""
        out: collections.Counter[str] = collections.Counter()
        for row in self.counts:
            out[row[by]] += row[column]
        return dict(sorted(out.items()))

    def by_reason(self) -> dict[str, int]:
        """Samples skipped per reason (reasons that only damaged shards, with 0 samples, included)."""
        return self._totals(0, 2)

    def by_shard(self) -> dict[str, int]:
        """Samples skipped per shard URL."""
        return self._totals(1, 2)

    def damaged_by_reason(self) -> dict[str, int]:
        """Damaged shards per reason."""
        return {reason: shards for reason, shards in self._totals(0, 3).items() if shards}

    @property
    def skipped_keys(self) -> list[str]:
        """Keys of the samples dropped, in the order the drops were recorded."""
        return [event.key for event in self.events if event.key is not None]

    @classmethod
    def merge(cls, reports: Iterable[SkipReport]) -> SkipReport:
        """One report adding up ``reports``; events sorted by shard, key and reason, so the same
        skips give the same report whatever order the passes posted them in."""
        reports = list(reports)
        counts: Counts = {}
        for report in reports:
            add_counts(counts, report.counts)
        return cls(read=sum(r.read for r in reports), yielded=sum(r.yielded for r in reports),
                   counts=tuple(tuple(row) for row in count_rows(counts)),
                   events=tuple(sorted((e for r in reports for e in r.events), key=_event_order)),
                   passes=sum(r.passes for r in reports), finished_passes=sum(r.finished_passes for r in reports))

    def lines(self, max_events: int = 10) -> list[str]:
        """Human-readable summary: totals, then up to ``max_events`` drops with shard and key."""
        head = f"source: read {self.read} samples, yielded {self.yielded}, skipped {self.skipped}"
        reasons = {reason: n for reason, n in self.by_reason().items() if n}
        if reasons:
            head += " (" + ", ".join(f"{reason} {n}" for reason, n in reasons.items()) + ")"
        if self.damaged_shards:
            head += f"; damaged shards {self.damaged_shards} (" + ", ".join(
                f"{reason} {n}" for reason, n in self.damaged_by_reason().items()) + ")"
        if self.passes > self.finished_passes:
            head += f"; {self.passes - self.finished_passes} pass(es) unfinished: counts as of their last skip"
        out = [head]
        for event in self.events[:max_events]:
            where = f"shard {event.url}" + (f", sample {event.key!r}" if event.key else "") + (
                f", member {event.member}" if event.member else "")
            out.append(f"  skipped {event.reason}: {where}")
        if len(self.events) > max_events:
            out.append(f"  ... and {len(self.events) - max_events} more (pipe.skip_report().events lists them all)")
        return out


def _event_order(event: SkipEvent) -> tuple:
    """Events of merged passes in an order that does not depend on which worker posted first."""
    return (event.url, event.key or "", event.reason, event.member or "", event.shard)
