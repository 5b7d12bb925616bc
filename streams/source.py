"""Source stages: where a pipe's samples come from (tar shards, or a list in memory)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .decode import MEL_DTYPES, decode_record
from .pipe import Node, Stage, StreamContext
from .sample import Origin, Sample, SampleError, check_sample
from .shardlist import epoch_shard_order, expand_shard_urls, shards_for_reader
from .tar_records import Record, iter_records

__all__ = ["MemorySource", "ShardReadError", "ShardSource"]


class ShardReadError(RuntimeError):
    """A shard could not be opened or read (missing file, not a tar, cut short...)."""

    def __init__(self, message: str, *, url: str, reason: str):
        super().__init__(message)
        self.url = url
        self.reason = reason


class ShardSource(Stage):
    """Read samples from WebDataset tar shards (the layout is in ``shards/README.md``).

    Args:
        urls: a URL or brace pattern (``train-{000000..000099}.tar``), or a list of them; local
            paths and every scheme webdataset opens (``file:``, ``pipe:``, ``http(s):``...).
        shuffle_shards: shuffle the shard order each epoch (from seed and epoch).
        mel_dtype: ``"float32"`` (default) or ``"float16"`` to halve memory.
        check: run :func:`~streams.sample.check_sample` on every sample (default on).

    Shards are split across distributed ranks and DataLoader workers (see
    :mod:`streams.shardlist`); each sample's ``origin`` is ``("shard", shard_index, record_index)``.
    """

    name = "source"
    is_source = True

    def __init__(self, urls: str | Iterable[str], *, shuffle_shards: bool = True, mel_dtype: str = "float32",
                 check: bool = True):
        self.urls = expand_shard_urls(urls)
        if mel_dtype not in MEL_DTYPES:
            raise ValueError(f"mel_dtype must be one of {sorted(MEL_DTYPES)} (got {mel_dtype!r})")
        self.shuffle_shards = bool(shuffle_shards)
        self.mel_dtype = mel_dtype
        self.check = bool(check)

    def open(self, upstream: Node | None, ctx: StreamContext) -> Node:
        return _ShardReader(self, ctx)

    def decode(self, record: Record, shard: int) -> Sample:
        """The checked sample of ``record``, read from shard number ``shard``."""
        sample = decode_record(record, mel_dtype=self.mel_dtype)
        if self.check:
            check_sample(sample)
        return sample.replace(origin=("shard", shard, record.index))

    def records(self, shard: int) -> Iterator[Record]:
        """The records of shard number ``shard``, with read errors naming the shard."""
        url = self.urls[shard]
        try:
            yield from iter_records(url)
        except SampleError:
            raise
        except Exception as err:
            raise ShardReadError(f"shard {url}: cannot read it ({type(err).__name__}: {err}); check that the "
                                 "file exists, is a complete tar, and that its URL is right",
                                 url=url, reason="unreadable_shard") from err


class _ShardReader(Node):
    def __init__(self, source: ShardSource, ctx: StreamContext):
        self.source = source
        order = epoch_shard_order(len(source.urls), ctx.seed, ctx.epoch, source.shuffle_shards)
        self.shards = shards_for_reader(order, ctx.global_worker, ctx.total_workers)
        self.position = 0  # index into self.shards of the shard being read
        self.next_record = 0  # index of the next record to yield in that shard
        self.yielded = 0
        self._samples: Iterator[Sample] | None = None

    def __next__(self) -> Sample:
        while self.position < len(self.shards):
            if self._samples is None:
                self._samples = self._read(self.shards[self.position], skip=self.next_record)
            try:
                sample = next(self._samples)
            except StopIteration:
                self.position += 1
                self.next_record = 0
                self._samples = None
                continue
            self.next_record = sample.origin[2] + 1
            self.yielded += 1
            return sample
        raise StopIteration

    def _read(self, shard: int, skip: int) -> Iterator[Sample]:
        for record in self.source.records(shard):
            if record.index >= skip:  # records before a resume point are passed over undecoded
                yield self.source.decode(record, shard)

    def state_dict(self) -> dict[str, Any]:
        return {"shards": list(self.shards), "position": self.position, "next_record": self.next_record,
                "yielded": self.yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["shards"]) != self.shards:
            raise ValueError("the saved shard order differs from this run's; resume with the same shard list, "
                             "seed and epoch")
        self.position, self.next_record, self.yielded = state["position"], state["next_record"], state["yielded"]

    def replay(self, origins: list[Origin]) -> Iterator[Sample]:
        wanted: dict[int, set[int]] = {}
        for origin in origins:
            if origin[0] != "shard":
                raise ValueError(f"origin {origin!r} does not come from a shard")
            wanted.setdefault(origin[1], set()).add(origin[2])
        found: dict[tuple[int, int], Sample] = {}
        for shard in sorted(wanted):
            needed = wanted[shard]
            for record in self.source.records(shard):
                if record.index in needed:
                    found[(shard, record.index)] = self.source.decode(record, shard)
                    needed.discard(record.index)
                    if not needed:
                        break
            if needed:
                raise ValueError(f"shard {self.source.urls[shard]} no longer holds records {sorted(needed)}; "
                                 "the shards changed since the state was saved")
        return (found[(origin[1], origin[2])] for origin in origins)

    def stats(self) -> dict[str, Any]:
        return {"shards": len(self.shards), "yielded": self.yielded}


class MemorySource(Stage):
    """Stream items held in memory (tests, notebooks, small sets); split across ranks and workers.

    Samples are checked (unless ``check=False``) and get ``origin = ("memory", index)``.
    """

    name = "source"
    is_source = True

    def __init__(self, items: Iterable[Any], *, check: bool = True):
        self.items = list(items)
        self.check = bool(check)

    def open(self, upstream: Node | None, ctx: StreamContext) -> Node:
        return _MemoryReader(self, ctx)

    def item(self, index: int) -> Any:
        item = self.items[index]
        if isinstance(item, Sample):
            if self.check:
                check_sample(item)
            item = item.replace(origin=("memory", index))
        return item


class _MemoryReader(Node):
    def __init__(self, source: MemorySource, ctx: StreamContext):
        self.source = source
        self.indices = range(ctx.global_worker, len(source.items), ctx.total_workers)
        self.position = 0

    def __next__(self) -> Any:
        if self.position >= len(self.indices):
            raise StopIteration
        item = self.source.item(self.indices[self.position])
        self.position += 1
        return item

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = state["position"]

    def replay(self, origins: list[Origin]) -> Iterator[Any]:
        return (self.source.item(origin[1]) for origin in origins)

    def stats(self) -> dict[str, Any]:
        return {"yielded": self.position}
