"""Shared-memory buffers that DataLoader workers reuse for what they send, instead of a new segment
per tensor.

An item a worker yields reaches the main process through shared memory. Left to torch, every
tensor goes into a new segment: creating it, the worker's page faults on first write (the kernel
zeroes each page) and its teardown cost about three times the copy itself (measured: 20 ms for
an 18 MB tensor against 6 ms for a ``clone()``). Here each worker keeps a few segments
(:data:`SLOTS`) and writes into one the main process has let go: batches are collated straight
into them (:func:`shared_empty`), and a sample's tensors are copied into them when the sample is
pickled for the trip (:func:`register_transport`: only the pickling that sends an object to
another process, not ``copy.deepcopy`` or ``torch.save``).

The handshake: a small shared array of flags, one per slot. The worker sets a slot's flag when it
hands out the slot's buffer and never touches a flagged slot. The item carries its slots when
pickled (:func:`tickets`); where it is unpickled in another process (the main process), a
finalizer on each tensor's storage clears the flag when the last tensor or view on that storage
is gone (:func:`attach_release`). So a buffer is written again only after the main process holds
nothing on it. An item that never reaches another process keeps its slots flagged: the pool then
falls back to what torch does, never to a buffer in use. A slot's buffer is replaced by a larger
one when an item does not fit. A ``Sample`` or ``Batch`` the main process sends on to a third
process keeps its buffers for good (the release is cancelled, :func:`_keep_forever`), since the
main process cannot see when the third one is done; a bare tensor taken out of it and sent on
alone is not tracked, so ``clone()`` such a tensor first.

One consequence: a tensor from a worker may sit in a buffer larger than itself (a buffer made for
a larger batch), and ``torch.save`` of such a tensor writes the whole buffer, as for any view;
save ``tensor.clone()`` to keep only the tensor.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import weakref
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any

import torch
from torch.utils.data import get_worker_info

__all__ = ["MIN_POOLED_BYTES", "SLOTS", "attach_release", "register_transport", "shared_empty", "tickets"]

SLOTS = 16
"""Buffers per worker: enough for the items in flight (``prefetch_factor`` per worker), the one
the loop holds and the one being made, three large tensors each (raw mel, edit mel, pointers)."""

MIN_POOLED_BYTES = 1 << 16
"""Tensors smaller than this (lengths, masks of short batches) take torch's own path: a new
segment costs little for them, and they would take slots the mels need."""


class _Pool:
    """One worker's buffers and their flags (1: handed out, not yet let go by the main process)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.flags = torch.zeros(SLOTS, dtype=torch.int32).share_memory_()
        self.storages: list[torch.UntypedStorage | None] = [None] * SLOTS
        self.slot_of: dict[int, int] = {}  # buffer address -> slot
        self.lock = threading.Lock()  # the worker's loop and its queue's feeder thread both take buffers

    def take(self, nbytes: int) -> tuple[torch.UntypedStorage | None, int | None]:
        """A shared buffer of at least ``nbytes`` and its slot, or ``(None, None)`` when every slot is out."""
        with self.lock:
            flags = self.flags.numpy()
            free = [slot for slot in range(SLOTS) if not flags[slot]]
            if not free:
                return None, None
            fitting = [s for s in free if self.storages[s] is not None and self.storages[s].nbytes() >= nbytes]
            if fitting:
                slot = min(fitting, key=lambda s: self.storages[s].nbytes())  # the tightest fit
            else:
                slot = min(free, key=lambda s: -1 if self.storages[s] is None else self.storages[s].nbytes())
                old = self.storages[slot]
                if old is not None:
                    self.slot_of.pop(old.data_ptr(), None)
                capacity = -(-(nbytes + nbytes // 8) // 64) * 64  # room for slightly larger items; whole elements
                storage = torch.UntypedStorage._new_shared(capacity)
                self.storages[slot] = storage
                self.slot_of[storage.data_ptr()] = slot
            flags[slot] = 1
            return self.storages[slot], slot


_pool: _Pool | None = None


def _worker_pool() -> _Pool:
    global _pool
    if _pool is None or _pool.pid != os.getpid():  # one pool per worker process
        _pool = _Pool()
    return _pool


def _pooled_empty(like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor | None:
    storage, _ = _worker_pool().take(max(math.prod(shape), 1) * like.element_size())
    return None if storage is None else like.new_empty(0).set_(storage, 0, shape)


def shared_empty(like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``like``'s dtype and ``shape``: in a DataLoader worker,
    in one of the worker's reusable shared buffers (a new segment when every one is out, or for a
    tensor under :data:`MIN_POOLED_BYTES`); elsewhere, ordinary memory."""
    if get_worker_info() is None or like.device.type != "cpu":
        return like.new_empty(shape)
    numel = math.prod(shape)
    out = None if numel * like.element_size() < MIN_POOLED_BYTES else _pooled_empty(like, shape)
    if out is None:
        storage = like._typed_storage()._new_shared(max(1, numel), device=like.device)
        return like.new(storage).view(shape)
    return out


def tickets(tensors: dict[str, torch.Tensor]) -> tuple[Any, ...] | None:
    """What an item pickled in a worker carries about its pooled buffers: ``(worker pid, flags,
    {field: slot})``, or ``None`` outside a worker or when no tensor sits in a pooled buffer."""
    pool = _pool
    if pool is None or pool.pid != os.getpid():
        return None
    slots = {name: pool.slot_of[tensor.untyped_storage().data_ptr()] for name, tensor in tensors.items()
             if tensor.untyped_storage().data_ptr() in pool.slot_of}
    return (pool.pid, pool.flags, slots) if slots else None


_releases: dict[int, weakref.finalize] = {}
"""The pending releases of this process, by buffer address (see :func:`_keep_forever`)."""


def _release(flags: torch.Tensor, slot: int, address: int) -> None:
    _releases.pop(address, None)
    flags[slot] = 0


def _keep_forever(tensors: dict[str, torch.Tensor]) -> None:
    """Cancel the release of the buffers behind ``tensors``: they are being sent on to yet another
    process, whose use of them this process cannot see. The worker then never reuses them."""
    for tensor in tensors.values():
        release = _releases.pop(tensor.untyped_storage().data_ptr(), None)
        if release is not None:
            release.detach()


def attach_release(tensors: dict[str, torch.Tensor], ticket: tuple[Any, ...] | None) -> None:
    """Where an item is unpickled in another process than the worker that made it, let each pooled
    buffer go back to that worker once the last tensor or view on it here is gone."""
    if ticket is None:
        return
    pid, flags, slots = ticket
    if pid == os.getpid():  # unpickled inside the worker itself: the original still holds the buffer
        return
    for name, slot in slots.items():
        storage = tensors[name].untyped_storage()
        address = storage.data_ptr()
        if storage.is_shared() and address not in _releases:  # two fields may view one buffer
            _releases[address] = weakref.finalize(storage, _release, flags, slot, address)


def _for_the_trip(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` itself if it is already shared, small, or no buffer is free; else a copy in a pooled buffer."""
    if tensor.device.type != "cpu" or tensor.is_shared() or tensor.numel() * tensor.element_size() < MIN_POOLED_BYTES:
        return tensor
    out = _pooled_empty(tensor, tuple(tensor.shape))
    return tensor if out is None else out.copy_(tensor)


def _rebuild(cls: type, values: dict[str, Any], ticket: tuple[Any, ...] | None) -> Any:
    attach_release({name: value for name, value in values.items() if isinstance(value, torch.Tensor)}, ticket)
    return cls(**values)


def _reduce(item: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    values = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    tensors = {name: value for name, value in values.items() if isinstance(value, torch.Tensor)}
    _keep_forever(tensors)
    if get_worker_info() is not None:
        tensors = {name: _for_the_trip(tensor) for name, tensor in tensors.items()}
    return _rebuild, (type(item), {**values, **tensors}, tickets(tensors))


def register_transport(cls: type) -> type:
    """Send instances of dataclass ``cls`` between processes through the worker's pooled buffers.

    Registered with ``multiprocessing``'s ``ForkingPickler`` (what DataLoader's queues pickle with),
    so only the trip to another process uses it; other pickling is untouched. Returns ``cls``.
    """
    ForkingPickler.register(cls, _reduce)
    return cls
