"""Source stages: where a pipe's samples come from (tar shards, or a list in memory)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..audio.sample import AudioSample, check_audio_sample
from ..checks import FieldError, check_choice, field_errors
from ..origin import MemoryOrigin, Origin, ShardOrigin, parse_origin
from ..pipe import Node, Stage, StreamContext, pipe_source
from ..sample import Sample, SampleError, check_sample
from .decode import MEL_DTYPES, decode_sample
from .epoch_plan import EpochPlanner, log_summary, warn_once
from .shardlist import check_shards_openable, expand_shard_urls, shard_sample_counts
from .skip_ledger import SkipLedger
from .skips import ON_ERROR_POLICIES, SkipEvent, SkipReport
from .tar_records import ReadLimits, Record, ShardReadError, iter_records, short_shard_error

__all__ = ["MemorySource", "ShardReadError", "ShardSource"]


@pipe_source("from_shards")
class ShardSource(Stage):
    """Read samples from WebDataset tar shards (the layout is in ``shards/README.md``).

    Args:
        urls: a URL or brace pattern (``train-{000000..000099}.tar``), or a list of them; local
            paths and every scheme webdataset opens (``file:``, ``pipe:``, ``http(s):``...).
        shuffle_shards: shuffle the shard order each epoch (from seed and epoch).
        mel_dtype: ``"float32"`` (default) or ``"float16"`` to halve memory.
        check: run :func:`~streams.sample.check_sample` on every sample (default on).
        equal_steps: ``None`` (each sample once per epoch; ranks may differ in length),
            ``"repeat"`` or ``"drop"``: every rank yields the same number of samples per epoch,
            repeating or dropping fewer samples than there are ranks (needs sample counts).
        resampled: draw shards with replacement, ``epoch_samples`` per rank and epoch (endless
            when ``epoch_samples`` is ``None``).
        epoch_samples: samples per rank and epoch, for ``resampled`` or ``equal_steps``.
        sample_counts: each shard's sample count: the path or URL of an ``index.json``, a mapping
            (shard URL or file name -> count) or a list aligned with the URLs; by default read from
            the ``index.json`` next to local shards (written by pack).
        on_error: ``"raise"`` (default) stops at the first bad sample or damaged shard with an
            error naming shard, key and member; ``"skip"`` drops them, counts them by reason and
            shard, and logs one warning per shard (see :mod:`streams.reading.skips`; totals from
            :meth:`skip_report` or ``pipe.skip_report()``). Under ``"skip"`` missing local shard
            files are counted when their turn comes instead of failing construction (unless
            none exists). Replays on resume raise under both policies.
        limits: a :class:`~streams.reading.tar_records.ReadLimits`: the largest ``.npy`` and
            ``meta.json`` member read into memory (larger ones are bad samples, never read) and
            the stall timeout of ``pipe:`` reads. Default: 1 GiB, 4 MiB, no timeout.

    Shards are split across distributed ranks and DataLoader workers by an
    :class:`~streams.reading.epoch_plan.EpochPlanner` (modes and guarantees in :mod:`streams.reading.epoch_plan`);
    each sample's ``origin`` is ``("shard", shard_index, record_index)``, with a fourth element,
    the reading's occurrence, when a record is read again in an epoch (equal steps' repeats,
    resampled draws). A shard that ends cleanly with fewer samples than its known count is
    damaged (``truncated_shard``). Fails at construction
    (``ValueError``) for local shards that do not exist, URL schemes that cannot be opened, and
    layouts where a rank of the current ``WORLD_SIZE`` would get no data.
    """

    name = "source"
    is_source = True

    def __init__(self, urls: str | Iterable[str], *, shuffle_shards: bool = True, mel_dtype: str = "float32",
                 check: bool = True, equal_steps: str | None = None, resampled: bool = False,
                 epoch_samples: int | None = None,
                 sample_counts: str | Mapping[str, object] | Sequence[int] | None = None, on_error: str = "raise",
                 limits: ReadLimits | None = None):
        self.on_error = check_choice(on_error, "on_error", ON_ERROR_POLICIES)
        self.mel_dtype = check_choice(mel_dtype, "mel_dtype", tuple(MEL_DTYPES))
        if limits is not None and not isinstance(limits, ReadLimits):
            raise FieldError("limits", f"limits must be a ReadLimits or None ({type(limits).__name__} given)")
        self.limits = limits or ReadLimits()
        with field_errors("urls"):
            self.urls = expand_shard_urls(urls)
            check_shards_openable(self.urls, skip_missing=on_error == "skip")  # then skipped when read, counted
        with field_errors("sample_counts"):
            counts = shard_sample_counts(self.urls, sample_counts, required=equal_steps is not None)
        self.planner = EpochPlanner(len(self.urls), counts, shuffle_shards=bool(shuffle_shards),
                                    equal_steps=equal_steps, resampled=bool(resampled), epoch_samples=epoch_samples)
        here = StreamContext.detect(seed=0, epoch=0)
        self.planner.check_layout(here.world_size)
        if here.world_size > 1 and equal_steps is None and not resampled:
            warn_once("unequal-steps", f"reading {len(self.urls)} shard(s) on {here.world_size} ranks without "
                      "equal_steps or resampled: ranks may get different numbers of samples, and a DDP loop whose "
                      "ranks take different numbers of steps hangs or fails at the last collective; set "
                      "source.equal_steps to 'repeat' or 'drop' (or resampled with epoch_samples)")
        log_summary(self.planner, here.world_size, here.rank)
        self._ledger = SkipLedger(shared=self.on_error == "skip")
        self.shuffle_shards = bool(shuffle_shards)
        self.check = bool(check)

    def open(self, upstream: Node | None, ctx: StreamContext, state: dict[str, Any] | None = None) -> Node:
        return _ShardReader(self, ctx, state)

    def samples_per_rank(self, world_size: int | None = None) -> int | None:
        """Samples each rank yields per epoch (equal steps or resampled; else ``None``).

        ``world_size`` defaults to the calling process's (``torch.distributed`` or ``WORLD_SIZE``).
        """
        return self.planner.samples_per_rank(world_size or StreamContext.detect(seed=0, epoch=0).world_size)

    def skip_report(self) -> SkipReport:
        """What this source's passes read, yielded and skipped so far (see :mod:`streams.reading.skips`)."""
        return self._ledger.report()

    def decode(self, record: Record, shard: int) -> Sample:
        """The checked sample of ``record``, read from shard number ``shard``."""
        sample = decode_sample(record, mel_dtype=self.mel_dtype, check=self.check)
        return sample.replace(origin=ShardOrigin(shard, record.index).stored())

    def records(self, shard: int) -> Iterator[Record]:
        """The records of shard number ``shard``; :func:`~streams.reading.tar_records.iter_records` turns
        every read failure into a :class:`ShardReadError` naming the shard."""
        return iter_records(self.urls[shard], limits=self.limits)


class _ShardReader(Node):
    """Reads the spans of its :class:`~streams.reading.epoch_plan.ReaderPlan` until they end or the budget is met."""

    def __init__(self, source: ShardSource, ctx: StreamContext, state: dict[str, Any] | None):
        self.source = source
        self.where = f"rank {ctx.rank} worker {ctx.worker}"
        self.plan = source.planner.reader_plan(seed=ctx.seed, epoch=ctx.epoch, rank=ctx.rank,
                                               world_size=ctx.world_size, worker=ctx.worker,
                                               num_workers=ctx.num_workers)
        self.position = 0  # index of the plan's span being read
        self.next_record = 0  # index of the next record to yield in that span's shard
        self.yielded = 0
        self.repeated = 0  # yielded samples planned earlier in the epoch (equal steps' wrap-around)
        self.refilled = 0  # yielded samples from past this reader's block (standing in for missing ones)
        self.idle_spans = 0  # spans ended since the last yielded sample
        self.opened = 0
        self.failed: Exception | None = None
        self._samples: Iterator[Sample] | None = None
        self.tally = source._ledger.open_pass(epoch=ctx.epoch, rank=ctx.rank, worker=ctx.worker)
        if state is not None:
            self._resume(state)

    def __next__(self) -> Sample:
        if self.failed is not None:  # a pass that raised stays failed: it must not skip on quietly
            raise self.failed
        budget = self.plan.budget
        while budget is None or self.yielded < budget:
            span = self.plan.span(self.position)
            if span is None:
                break
            if self._samples is None:
                self._samples = self._read(span.shard, skip=max(self.next_record, span.start), stop=span.stop,
                                           occurrence=span.occurrence)
                self.opened += 1
            try:
                sample = next(self._samples)
            except StopIteration:
                self._end_span()
                continue
            except Exception as err:
                self.failed = err
                self.close()
                raise
            record = parse_origin(sample.origin).record
            self.next_record = record + 1
            self.yielded += 1
            self.tally.add_yield()
            self.idle_spans = 0
            position = None if span.position is None else span.position + record
            self.repeated += self.plan.is_repeat(position)
            self.refilled += self.plan.is_refill(position)
            return sample
        self._read_past_budget()
        self.close()
        self.tally.finish()
        raise StopIteration

    def _read_past_budget(self) -> None:
        """The budget was met at the last record its count gives the current shard: look for one
        more record, so that a count lower than the shard holds warns here too (it warns when a
        reader goes on to the next shard)."""
        span = self.plan.span(self.position) if self.plan.budget is not None else None
        if self._samples is None or span is None or span.stop is None or self.next_record < span.stop:
            return
        next(self._samples, None)  # records at or past ``stop`` end the read with the warning, yielding nothing

    def _end_span(self) -> None:
        self.idle_spans += 1
        limit = self.plan.max_idle_spans
        if limit is not None and self.idle_spans > limit:
            url = self.source.urls[self.plan.span(self.position).shard]
            raise ShardReadError(f"{self.where}: {self.idle_spans} shards in a row gave no usable sample (last: "
                                 f"{url}), so its sample budget cannot be met; check the shards with `python -m "
                                 "pipelines check`", reason="no_usable_samples", url=url)
        self.position += 1
        self.next_record = 0
        self._samples = None

    def _read(self, shard: int, skip: int, stop: int | None = None, occurrence: int = 0) -> Iterator[Sample]:
        for record in self._records(shard, skip):
            if stop is not None and record.index >= stop:
                url = self.source.urls[shard]
                warn_once(f"long:{url}", f"shard {url} holds more than the {stop} samples its count says; the extra "
                                         "ones are not read; re-run pack or fix sample_counts")
                return
            if record.index >= skip:  # records before a resume point are passed over undecoded
                self.tally.add_read()
                try:
                    sample = self.source.decode(record, shard)
                except SampleError as err:
                    self._skip(SkipEvent(err.reason, record.url, record.key, err.member, str(err), 1, False), err)
                    self.next_record = record.index + 1  # a resumed pass does not count it again
                    continue
                if occurrence:
                    sample = sample.replace(origin=ShardOrigin(shard, record.index, occurrence).stored())
                yield sample

    def _records(self, shard: int, skip: int) -> Iterator[Record]:
        """The shard's records; a damaged shard raises, or under on_error="skip" ends early, counted. So does
        a shard that ends cleanly with fewer records than its count (equal steps then keeps its budget by
        reading on)."""
        seen = 0
        try:
            for record in self.source.records(shard):
                seen = record.index + 1
                yield record
        except ShardReadError as err:
            lost = err.lost_samples if err.complete_records >= skip else 0
            self.tally.add_read(lost)  # the record the damage cut, if any, was read in part
            self._skip(SkipEvent(err.reason, self.source.urls[shard], err.key, err.member, str(err), lost, True), err)
            return
        counts = self.source.planner.counts
        if counts is not None and seen < counts[shard]:
            err = short_shard_error(self.source.urls[shard], seen, counts[shard])
            self._skip(SkipEvent(err.reason, err.url, None, None, str(err), 0, True), err)

    def _skip(self, event: SkipEvent, err: Exception) -> None:
        """Raise ``err`` (on_error="raise"), or count ``event`` and warn once for its shard."""
        if self.source.on_error == "raise":
            raise err
        self.tally.add_skip(event)
        self.source._ledger.warn_once(event)

    def state_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.describe(), "position": self.position, "next_record": self.next_record,
                "yielded": self.yielded, "repeated": self.repeated, "refilled": self.refilled,
                "idle_spans": self.idle_spans, "accounting": self.tally.state_dict()}

    def _resume(self, state: dict[str, Any]) -> None:
        if state["plan"] != self.plan.describe():
            raise ValueError("the saved reading plan differs from this run's; resume with the same shard list, "
                             "sample counts, seed, epoch and source options")
        self.position, self.next_record, self.yielded = state["position"], state["next_record"], state["yielded"]
        self.repeated, self.refilled, self.idle_spans = state["repeated"], state["refilled"], state["idle_spans"]
        if "accounting" in state:  # states saved before skip accounting existed start counting afresh
            self.tally.load_state_dict(state["accounting"])

    def replay(self, origins: list[Origin]) -> Iterator[Sample]:
        parsed = [parse_origin(origin) for origin in origins]
        wanted: dict[int, set[int]] = {}
        for origin in parsed:
            if not isinstance(origin, ShardOrigin):
                raise ValueError(f"origin {origin.stored()!r} does not come from a shard")
            wanted.setdefault(origin.shard, set()).add(origin.record)
        found: dict[tuple[int, int], Sample] = {}
        for shard in sorted(wanted):
            needed = wanted[shard]
            try:  # replayed samples were good when first read: failing now raises whatever on_error says
                for record in self.source.records(shard):
                    if record.index in needed:
                        found[(shard, record.index)] = self.source.decode(record, shard)
                        needed.discard(record.index)
                        if not needed:
                            break
            except (SampleError, ShardReadError) as err:
                raise type(err)(f"{err} [while re-reading buffered samples to resume: they were good when first "
                                "read, so the shards changed since the state was saved; restore them, or restart "
                                "the epoch with load_state_dict(state, restart_epoch=True)]", reason=err.reason,
                                url=err.url, key=err.key, member=err.member) from err
            if needed:
                raise ValueError(f"shard {self.source.urls[shard]} no longer holds records {sorted(needed)}; "
                                 "the shards changed since the state was saved")
        return (found[(origin.shard, origin.record)].replace(origin=origin.stored()) for origin in parsed)

    def stats(self) -> dict[str, Any]:
        counts = {"shards_opened": self.opened, "yielded": self.yielded}
        if self.plan.budget is not None:
            counts.update(budget=self.plan.budget, repeated=self.repeated, refilled=self.refilled)
        return counts

    def close(self) -> None:
        if self._samples is not None:
            self._samples.close()
            self._samples = None


@pipe_source("from_samples")
class MemorySource(Stage):
    """Stream items held in memory (tests, notebooks, small sets); split across ranks and workers.

    Samples (and audio samples, :class:`~streams.audio.sample.AudioSample`) are checked once, here (unless
    ``check=False``), and get ``origin = ("memory", index)``.
    It never skips, so its :meth:`skip_report` is empty.
    """

    name = "source"
    is_source = True

    def __init__(self, items: Iterable[Any], *, check: bool = True):
        self.items = list(items)
        self.check = bool(check)
        if self.check:  # at construction, once: not per pass and per worker
            for item in self.items:
                if isinstance(item, Sample):
                    check_sample(item)
                elif isinstance(item, AudioSample):
                    check_audio_sample(item)

    def open(self, upstream: Node | None, ctx: StreamContext, state: dict[str, Any] | None = None) -> Node:
        return _MemoryReader(upstream, self, ctx, state)

    def skip_report(self) -> SkipReport:
        return SkipReport()

    def item(self, index: int) -> Any:
        item = self.items[index]
        return item.replace(origin=MemoryOrigin(index).stored()) if isinstance(item, (Sample, AudioSample)) else item


class _MemoryReader(Node):
    def __init__(self, upstream: Node | None, source: MemorySource, ctx: StreamContext, state: dict[str, Any] | None):
        super().__init__(upstream, source, ctx, state)
        self.source = source
        self.indices = range(ctx.global_worker, len(source.items), ctx.total_workers)
        self.position = state["position"] if state is not None else 0

    def __next__(self) -> Any:
        if self.position >= len(self.indices):
            raise StopIteration
        item = self.source.item(self.indices[self.position])
        self.position += 1
        return item

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def replay(self, origins: list[Origin]) -> Iterator[Any]:
        return (self.source.item(parse_origin(origin).index) for origin in origins)

    def stats(self) -> dict[str, Any]:
        return {"yielded": self.position}
