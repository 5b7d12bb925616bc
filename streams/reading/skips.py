"""Skipping bad input: counting every sample and shard a source drops, across DataLoader workers.

A shard source reads under one of two policies (``on_error``, see :data:`ON_ERROR_POLICIES`):

* ``"raise"`` (default): the first bad sample or shard stops the stream with an error naming
  the shard, the sample key and the member, and saying what would fix it;
* ``"skip"``: a bad sample is dropped and the source goes on; a damaged shard (missing, not a
  tar, cut short...) is dropped from the point of damage on. Each drop is a :class:`SkipEvent`
  (reason, shard, key, member, message), counted by reason and shard; the first drop in a shard
  logs one warning (logger ``streams.reading.skips``), per process.

Accounting: every pass of a source keeps a :class:`PassTally` in which ``read == yielded +
skipped`` holds between any two items. ``read`` counts the records the source formed from the
tar (a bad record counts, and so does a record cut short by damage, which is then skipped);
``skipped`` counts the samples dropped; a damaged shard is also counted once in
``damaged_shards``, its unread tail being of unknown size. Counts are in samples as the source
read them: downstream, a concatenated pair holds two (see :func:`source_samples`). The counts
are part of the source's state dict; a pass resumed from it replaces, in reports, the pass it
continues, so resuming never counts a sample twice.

Where the counts go. A pass that runs in the process that built the source (no DataLoader
workers) registers its live tally with the source's :class:`SkipLedger`, so a report is always
current. A pass in another process (a DataLoader worker, under fork or spawn, persistent or not)
appends one JSON line per skip, and one when its pass ends, to its own file in the ledger's
directory (made with ``tempfile.mkdtemp`` when the source is built, removed when it is garbage
collected in that process). Writes are finished before the worker raises ``StopIteration``, so
once a DataLoader pass is over its report is complete; a worker pass still running shows its
skips so far, with the read and yielded counts as of its last skip. The directory's path is a
plain string, so the source pickles anywhere (spawn, ``copy.deepcopy``), and nothing can block:
there is no queue to fill. Each distributed rank builds its own pipe, so its report covers its own
reads; add them up with ``torch.distributed`` if needed.

:meth:`SkipLedger.report` merges everything into a :class:`SkipReport`: ``pipe.skip_report()``
in code, and the summary of ``python -m pipelines run``.

Replays (refilling a buffer on resume) never skip: a replayed sample was good when it was first
read, so a failure then means the shards changed, and it raises whatever the policy.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Iterable
from typing import Any

from ..sample import Origin

__all__ = [
    "ON_ERROR_POLICIES",
    "PassTally",
    "SkipEvent",
    "SkipLedger",
    "SkipReport",
    "check_on_error",
    "source_samples",
]

logger = logging.getLogger(__name__)

ON_ERROR_POLICIES = ("raise", "skip")
"""``on_error`` values: stop at the first bad sample or shard, or skip, count and report it."""


def check_on_error(value: str) -> str:
    """``value`` if it is a known ``on_error`` policy, else ``ValueError`` saying which are.

    >>> check_on_error("skip")
    'skip'
    """
    if value not in ON_ERROR_POLICIES:
        raise ValueError(f"on_error must be 'raise' or 'skip' ({value!r} given)")
    return value


def source_samples(origin: Origin | None) -> int:
    """How many source samples an item with this ``origin`` holds: a pair's parts add up.

    Pair origins are ``("pair", origin_a, origin_b)`` (lists after JSON count too).

    >>> source_samples(("shard", 0, 3)), source_samples(("pair", ("shard", 0, 1), ("shard", 2, 0)))
    (1, 2)
    """
    if isinstance(origin, (tuple, list)) and len(origin) == 3 and origin[0] == "pair":
        return source_samples(origin[1]) + source_samples(origin[2])
    return 1


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

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SkipEvent:
        return cls(**data)

    def __str__(self) -> str:
        return self.message


# counts are keyed by (reason, url) and hold [samples skipped, shards damaged]
_Counts = dict[tuple[str, str], list[int]]


def _add_counts(counts: _Counts, rows: Iterable[tuple[str, str, int, int]]) -> None:
    for reason, url, samples, shards in rows:
        cell = counts.setdefault((reason, url), [0, 0])
        cell[0] += samples
        cell[1] += shards


def _rows(counts: _Counts) -> list[list[Any]]:
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

    def by_reason(self) -> dict[str, int]:
        """Samples skipped per reason (reasons that only damaged shards, with 0 samples, included)."""
        out: collections.Counter[str] = collections.Counter()
        for reason, _, samples, shards in self.counts:
            out[reason] += samples
        return dict(sorted(out.items()))

    def by_shard(self) -> dict[str, int]:
        """Samples skipped per shard URL."""
        out: collections.Counter[str] = collections.Counter()
        for _, url, samples, _ in self.counts:
            out[url] += samples
        return dict(sorted(out.items()))

    def damaged_by_reason(self) -> dict[str, int]:
        """Damaged shards per reason."""
        out: collections.Counter[str] = collections.Counter()
        for reason, _, _, shards in self.counts:
            if shards:
                out[reason] += shards
        return dict(sorted(out.items()))

    @property
    def skipped_keys(self) -> list[str]:
        """Keys of the samples dropped, in the order the drops were recorded."""
        return [event.key for event in self.events if event.key is not None]

    @classmethod
    def merge(cls, reports: Iterable[SkipReport]) -> SkipReport:
        """One report adding up ``reports``; events sorted by shard, key and reason, so the same
        skips give the same report whatever order the passes posted them in."""
        reports = list(reports)
        counts: _Counts = {}
        for report in reports:
            _add_counts(counts, report.counts)
        return cls(read=sum(r.read for r in reports), yielded=sum(r.yielded for r in reports),
                   counts=tuple(tuple(row) for row in _rows(counts)),
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


@dataclasses.dataclass(frozen=True)
class _PassRecord:
    """One pass as the ledger sees it: its report, and the pass its state was restored from."""

    pass_id: str
    continues: tuple[str, int] | None  # (id of the pass resumed, how many of its events came before the save)
    report: SkipReport


class PassTally:
    """The live accounting of one pass of a source node.

    The node calls :meth:`add_read` for every record it forms, then :meth:`add_yield` or
    :meth:`add_skip`; so ``read == yielded + skipped`` between items. The state dict keeps the
    counts by reason and shard (not the events) and the pass's id: a pass resumed from it goes
    on counting, and the ledger reports it *instead of* the pass it continues (with that pass's
    events up to the save, when the ledger has them), so a resume never counts a sample twice.
    """

    def __init__(self, pass_id: str, *, epoch: int = 0, rank: int = 0, worker: int = 0, path: str | None = None):
        self.pass_id = pass_id
        self.epoch, self.rank, self.worker = epoch, rank, worker
        self.read = 0
        self.yielded = 0
        self.counts: _Counts = {}
        self.events: list[SkipEvent] = []
        self.finished = False
        self.continues: tuple[str, int] | None = None
        self._base: list[list[Any]] = []  # counts restored from a state dict
        self._path = path  # where a pass outside the owner process posts its lines
        self._posted = False

    @property
    def skipped(self) -> int:
        return sum(samples for samples, _ in self.counts.values())

    def add_read(self, count: int = 1) -> None:
        self.read += count

    def add_yield(self) -> None:
        self.yielded += 1

    def add_skip(self, event: SkipEvent) -> None:
        """Count ``event`` (its record, if any, was already counted as read)."""
        _add_counts(self.counts, [(event.reason, event.url, event.samples, int(event.shard))])
        self.events.append(event)
        self._post({"skip": event.to_json()})

    def finish(self) -> None:
        """Mark the pass as ended (posts the final counts from a worker)."""
        if not self.finished:
            self.finished = True
            self._post({"end": True})

    def state_dict(self) -> dict[str, Any]:
        inherited = self.continues[1] if self.continues is not None else 0
        return {"read": self.read, "yielded": self.yielded, "counts": _rows(self.counts), "pass": self.pass_id,
                "events": inherited + len(self.events)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.read, self.yielded = int(state["read"]), int(state["yielded"])
        self.counts = {}
        _add_counts(self.counts, state["counts"])
        self._base = [list(row) for row in state["counts"]]
        self.continues = (str(state["pass"]), int(state["events"]))
        self._post({"resumed": True})  # the ledger drops the continued pass from now on

    def record(self) -> _PassRecord:
        report = SkipReport(read=self.read, yielded=self.yielded, counts=tuple(tuple(r) for r in _rows(self.counts)),
                            events=tuple(self.events), passes=1, finished_passes=int(self.finished))
        return _PassRecord(self.pass_id, self.continues, report)

    def _post(self, line: dict[str, Any]) -> None:
        if self._path is None:
            return
        line = {**line, "read": self.read, "yielded": self.yielded}
        if not self._posted:
            line.update({"pass": {"id": self.pass_id, "epoch": self.epoch, "rank": self.rank, "worker": self.worker,
                                  "continues": self.continues}, "base": self._base})
        try:
            with open(self._path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        except OSError as err:  # the owner is gone (its directory removed) or the disk is full
            logger.warning("cannot post skip accounting to %s (%s); the run summary will miss this pass",
                           self._path, err)
            self._path = None
            return
        self._posted = True


def _read_pass_file(path: str) -> _PassRecord | None:
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    parsed = []
    for number, text in enumerate(lines):
        try:
            parsed.append(json.loads(text))
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                break  # the worker is writing this line right now
            raise
    if not parsed:
        return None
    counts: _Counts = {}
    events = []
    finished = False
    for line in parsed:
        if "base" in line:
            _add_counts(counts, line["base"])
        if "skip" in line:
            event = SkipEvent.from_json(line["skip"])
            events.append(event)
            _add_counts(counts, [(event.reason, event.url, event.samples, int(event.shard))])
        finished = finished or bool(line.get("end"))
    last = parsed[-1]
    report = SkipReport(read=last["read"], yielded=last["yielded"], counts=tuple(tuple(r) for r in _rows(counts)),
                        events=tuple(events), passes=1, finished_passes=int(finished))
    header = parsed[0]["pass"]
    continues = tuple(header["continues"]) if header["continues"] is not None else None
    return _PassRecord(header["id"], continues, report)


def _event_order(event: SkipEvent) -> tuple:
    """Events of merged passes in an order that does not depend on which worker posted first."""
    return (event.url, event.key or "", event.reason, event.member or "", event.shard)


def _resolve(records: list[_PassRecord]) -> list[SkipReport]:
    """The reports of the passes no other pass continues, each with the events it inherited."""
    by_id = {record.pass_id: record for record in records}
    continued = {record.continues[0] for record in records if record.continues is not None}

    def events(record: _PassRecord) -> tuple[SkipEvent, ...]:
        if record.continues is None or record.continues[0] not in by_id:
            return record.report.events
        parent_id, before_save = record.continues
        return events(by_id[parent_id])[:before_save] + record.report.events

    return [dataclasses.replace(record.report, events=events(record))
            for record in records if record.pass_id not in continued]


def _remove_directory(path: str, owner: int) -> None:
    if os.getpid() == owner:  # forked workers hold a copy of this finalizer: only the owner cleans up
        shutil.rmtree(path, ignore_errors=True)


class SkipLedger:
    """Where a source's passes post their accounting; read it with :meth:`report`.

    Built in the process that builds the source (its *owner*); see the module docstring for how
    passes in other processes reach it. Pickles as the owner's pid and directory path.
    """

    def __init__(self) -> None:
        self._owner = os.getpid()
        self._directory = tempfile.mkdtemp(prefix="streams-skips-")
        self._finalizer = weakref.finalize(self, _remove_directory, self._directory, self._owner)
        self._reset_process_state()

    def _reset_process_state(self) -> None:
        self._local: list[PassTally] = []
        self._warned: set[str] = set()
        self._serial = itertools.count()

    def __getstate__(self) -> dict[str, Any]:
        return {"owner": self._owner, "directory": self._directory}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._owner, self._directory = state["owner"], state["directory"]
        self._finalizer = None
        self._reset_process_state()

    @property
    def directory(self) -> str:
        return self._directory

    def open_pass(self, *, epoch: int = 0, rank: int = 0, worker: int = 0) -> PassTally:
        """A new tally for a pass starting in the calling process, registered with this ledger."""
        # pid and clock: a later worker may reuse a pid, never at the same nanosecond
        pass_id = f"{os.getpid()}-{time.monotonic_ns()}-{next(self._serial)}"
        if os.getpid() == self._owner:
            tally = PassTally(pass_id, epoch=epoch, rank=rank, worker=worker)
            self._local.append(tally)
            return tally
        path = os.path.join(self._directory, f"pass-{pass_id}.jsonl")
        return PassTally(pass_id, epoch=epoch, rank=rank, worker=worker, path=path)

    def warn_once(self, event: SkipEvent) -> None:
        """Log ``event`` as a warning if it is the first skip in its shard in this process."""
        if event.url in self._warned:
            return
        self._warned.add(event.url)
        logger.warning("skipping bad input (on_error='skip'): %s. Further skips in shard %s are counted "
                       "without a warning; see pipe.skip_report() or the run summary.", event.message, event.url)

    def report(self) -> SkipReport:
        """Everything posted so far: live passes of this process, plus every worker's file."""
        records = [tally.record() for tally in self._local]
        if os.path.isdir(self._directory):
            for name in sorted(os.listdir(self._directory)):
                if name.endswith(".jsonl"):
                    record = _read_pass_file(os.path.join(self._directory, name))
                    if record is not None:
                        records.append(record)
        return SkipReport.merge(_resolve(records))
