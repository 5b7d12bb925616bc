"""The skip ledger: how every pass of a source, in this process or a DataLoader worker, reaches one report.

Every pass of a source keeps a :class:`PassTally` (``read == yielded + skipped`` between items; saved
in the source's state dict, so that a resumed pass replaces the one it continues in reports).

Where the counts go. A pass that runs in the process that built the source (no DataLoader
workers) registers its live tally with the source's :class:`SkipLedger`, so a report is always
current. Under ``on_error="skip"``, a pass in another process (a DataLoader worker, under fork or
spawn, persistent or not) appends one JSON line per skip, and one when its pass ends, to its own
file in the ledger's directory. That directory's path is fixed when the ledger is made, but the
folder is made only when first used (by the first worker pass that posts, or by reading
:attr:`SkipLedger.directory`), and removed when the ledger is garbage collected in its owner
process; under ``on_error="raise"`` worker passes post nothing (the first bad sample ends the
run), so no folder is ever made. Writes are finished before the worker raises ``StopIteration``,
so once a DataLoader pass is over its report is complete; a worker pass still running shows its
skips so far, with the read and yielded counts as of its last skip. The path is a plain string,
so the source pickles anywhere (spawn, ``copy.deepcopy``), and nothing can block: there is no
queue to fill. Each distributed rank builds its own pipe, so its report covers its own reads;
add them up with ``torch.distributed`` if needed.

:meth:`SkipLedger.report` merges everything into a :class:`~streams.reading.skips.SkipReport`:
``pipe.skip_report()`` in code, and the summary of ``python -m pipelines run``.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
import weakref
from typing import Any

from . import skips
from .skips import Counts, SkipEvent, SkipReport, add_counts, count_rows

__all__ = ["PassTally", "SkipLedger"]

logger = logging.getLogger(__name__)


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
        self.counts: Counts = {}
        self.events: list[SkipEvent] = []
        self.finished = False
        self.continues: tuple[str, int] | None = None  # (id of the pass resumed, its events before the save)
        self._base: list[list[Any]] = []  # counts restored from a state dict
        self._path = path  # where a pass outside the owner process posts its lines
        self._posted = False

    def add_read(self, count: int = 1) -> None:
        self.read += count

    def add_yield(self) -> None:
        self.yielded += 1

    def add_skip(self, event: SkipEvent) -> None:
        """Count ``event`` (its record, if any, was already counted as read)."""
        add_counts(self.counts, [(event.reason, event.url, event.samples, int(event.shard))])
        self.events.append(event)
        self._post({"skip": dataclasses.asdict(event)})

    def finish(self) -> None:
        """Mark the pass as ended (posts the final counts from a worker)."""
        if not self.finished:
            self.finished = True
            self._post({"end": True})

    def state_dict(self) -> dict[str, Any]:
        inherited = self.continues[1] if self.continues is not None else 0
        return {"read": self.read, "yielded": self.yielded, "counts": count_rows(self.counts), "pass": self.pass_id,
                "events": inherited + len(self.events)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.read, self.yielded = int(state["read"]), int(state["yielded"])
        self.counts = {}
        add_counts(self.counts, state["counts"])
        self._base = [list(row) for row in state["counts"]]
        self.continues = (str(state["pass"]), int(state["events"]))
        self._post({"resumed": True})  # the ledger drops the continued pass from now on

    def report(self) -> SkipReport:
        return SkipReport(read=self.read, yielded=self.yielded, counts=tuple(map(tuple, count_rows(self.counts))),
                          events=tuple(self.events), passes=1, finished_passes=int(self.finished))

    def _post(self, line: dict[str, Any]) -> None:
        if self._path is None:
            return
        line = {**line, "read": self.read, "yielded": self.yielded}
        if not self._posted:
            line.update({"pass": {"id": self.pass_id, "epoch": self.epoch, "rank": self.rank, "worker": self.worker,
                                  "continues": self.continues}, "base": self._base})
        try:
            if not self._posted:  # the first post of the first worker pass makes the ledger's folder
                os.makedirs(os.path.dirname(self._path), mode=0o700, exist_ok=True)
            with open(self._path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        except OSError as err:  # the owner is gone (its directory removed) or the disk is full
            logger.warning("cannot post skip accounting to %s (%s); the run summary will miss this pass",
                           self._path, err)
            self._path = None
            return
        self._posted = True


def _read_pass_file(path: str) -> PassTally | None:
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
    header = parsed[0]["pass"]
    tally = PassTally(header["id"])  # the worker's tally, rebuilt from what it posted
    tally.continues = tuple(header["continues"]) if header["continues"] is not None else None
    for line in parsed:
        add_counts(tally.counts, line.get("base", ()))
        if "skip" in line:
            tally.add_skip(SkipEvent(**line["skip"]))
        tally.finished = tally.finished or bool(line.get("end"))
    tally.read, tally.yielded = parsed[-1]["read"], parsed[-1]["yielded"]
    return tally


def _resolve(tallies: list[PassTally]) -> list[SkipReport]:
    """The reports of the passes no other pass continues, each with the events it inherited."""
    by_id = {tally.pass_id: tally for tally in tallies}
    continued = {tally.continues[0] for tally in tallies if tally.continues is not None}

    def events(tally: PassTally) -> tuple[SkipEvent, ...]:
        if tally.continues is None or tally.continues[0] not in by_id:
            return tuple(tally.events)
        parent_id, before_save = tally.continues
        return events(by_id[parent_id])[:before_save] + tuple(tally.events)

    return [dataclasses.replace(tally.report(), events=events(tally))
            for tally in tallies if tally.pass_id not in continued]


def _remove_directory(path: str, owner: int) -> None:
    if os.getpid() == owner:  # forked workers hold a copy of this finalizer: only the owner cleans up
        shutil.rmtree(path, ignore_errors=True)


class SkipLedger:
    """Where a source's passes post their accounting; read it with :meth:`report`.

    Built in the process that builds the source (its *owner*); see the module docstring for how
    passes in other processes reach it. ``shared=False`` (a source under ``on_error="raise"``)
    counts only the passes of the owner process. Pickles as the owner's pid and directory path.
    """

    def __init__(self, *, shared: bool = True) -> None:
        self._owner = os.getpid()
        self._shared = shared
        self._directory = os.path.join(tempfile.gettempdir(), f"streams-skips-{self._owner}-{uuid.uuid4().hex}")
        self._finalizer = weakref.finalize(self, _remove_directory, self._directory, self._owner)
        self._reset_process_state()

    def _reset_process_state(self) -> None:
        self._local: list[PassTally] = []
        self._warned: set[str] = set()
        self._serial = itertools.count()

    def __getstate__(self) -> dict[str, Any]:
        return {"owner": self._owner, "directory": self._directory, "shared": self._shared}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._owner, self._directory, self._shared = state["owner"], state["directory"], state["shared"]
        self._finalizer = None
        self._reset_process_state()

    @property
    def directory(self) -> str:
        """The folder worker passes post to; made on first use (here or by a worker's first post)."""
        os.makedirs(self._directory, mode=0o700, exist_ok=True)
        return self._directory

    def open_pass(self, *, epoch: int = 0, rank: int = 0, worker: int = 0) -> PassTally:
        """A new tally for a pass starting in the calling process, registered with this ledger."""
        # pid and clock: a later worker may reuse a pid, never at the same nanosecond
        pass_id = f"{os.getpid()}-{time.monotonic_ns()}-{next(self._serial)}"
        if os.getpid() == self._owner:
            tally = PassTally(pass_id, epoch=epoch, rank=rank, worker=worker)
            self._local.append(tally)
            return tally
        path = os.path.join(self._directory, f"pass-{pass_id}.jsonl") if self._shared else None
        return PassTally(pass_id, epoch=epoch, rank=rank, worker=worker, path=path)

    def warn_once(self, event: SkipEvent) -> None:
        """Log ``event`` as a warning if it is the first skip in its shard in this process."""
        if event.url in self._warned:
            return
        self._warned.add(event.url)
        skips.logger.warning("skipping bad input (on_error='skip'): %s. Further skips in shard %s are counted "
                       "without a warning; see pipe.skip_report() or the run summary.", event.message, event.url)

    def report(self) -> SkipReport:
        """Everything posted so far: live passes of this process, plus every worker's file."""
        pattern = os.path.join(glob.escape(self._directory), "*.jsonl")  # a worker pass's file each
        posted = [_read_pass_file(path) for path in sorted(glob.glob(pattern))]
        return SkipReport.merge(_resolve(self._local + [tally for tally in posted if tally is not None]))
