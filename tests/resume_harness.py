"""One resume harness for any pipe: interrupted runs must equal the uninterrupted run, bit for bit.

``collect`` turns a loader's output into comparable records; ``interrupted_run`` consumes ``k``
items, saves the ``StatefulDataLoader`` state (through ``torch.save``, as a checkpoint would), and
finishes with a fresh pipe and loader that load it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from streams import Batch, Pipe, Sample

MakePipe = Callable[[], Pipe]


def record(item: Sample | Batch) -> tuple:
    """A comparable record of one yielded item: keys, metadata and every tensor."""
    if isinstance(item, Batch):
        tensors = (item.raw_mel, item.raw_lengths, item.raw_mask, item.edit_mel, item.edit_lengths,
                   item.edit_mask, item.pointers)
        return ("batch", tuple(item.keys), repr(item.meta), tuple(tensors))
    return ("sample", item.key, repr(item.meta), (item.raw_mel, item.edit_mel, item.pointers))


def same(a: Sequence[tuple], b: Sequence[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x[:3] != y[:3] or len(x[3]) != len(y[3]):
            return False
        if not all(t.dtype == u.dtype and torch.equal(t, u) for t, u in zip(x[3], y[3])):
            return False
    return True


def checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` after a round trip through ``torch.save``/``torch.load`` (as in a real checkpoint)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def loader_for(pipe: Pipe, num_workers: int, persistent_workers: bool = False) -> StatefulDataLoader:
    return StatefulDataLoader(pipe, batch_size=None, num_workers=num_workers,
                              persistent_workers=persistent_workers and num_workers > 0)


def full_run(make_pipe: MakePipe, *, num_workers: int, epoch: int = 0) -> list[tuple]:
    pipe = make_pipe()
    pipe.set_epoch(epoch)
    return [record(x) for x in loader_for(pipe, num_workers)]


def interrupted_run(make_pipe: MakePipe, cuts: Iterable[int], *, num_workers: int, epoch: int = 0,
                    persistent_workers: bool = False) -> list[tuple]:
    """Consume up to each cut (counted from the start of the epoch), checkpoint, resume afresh."""
    out: list[tuple] = []
    state = None
    for cut in [*cuts, None]:
        pipe = make_pipe()
        pipe.set_epoch(epoch)
        loader = loader_for(pipe, num_workers, persistent_workers)
        if state is not None:
            loader.load_state_dict(state)
        iterator = iter(loader)
        while cut is None or len(out) < cut:
            try:
                out.append(record(next(iterator)))
            except StopIteration:
                break
        if cut is not None:
            state = checkpoint(loader.state_dict())
        del iterator, loader
    return out


def resumed_rest(pipe: Pipe, consumed: int) -> tuple[list, list]:
    """(rest of an uninterrupted pass after ``consumed`` items, rest from a fresh pipe resumed there).

    In one process, without a DataLoader; the state goes through JSON, as a checkpoint might
    (tuples become lists).
    """
    iterator = iter(pipe)
    for _ in range(consumed):
        next(iterator)
    state = json.loads(json.dumps(pipe.state_dict()))
    expected = list(iterator)
    fresh = Pipe(pipe.stages, seed=pipe.seed)
    fresh.load_state_dict(state)
    return expected, list(fresh)
