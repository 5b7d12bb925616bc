"""Batches made in DataLoader workers reuse shared buffers only after the main process let them go."""

from __future__ import annotations

import gc
import os
import pickle
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
from torch.utils.data import DataLoader

from streams import Pipe, Sample, worker_buffers
from streams.stages.collate import collate_samples
from streams.worker_buffers import SLOTS, _Pool, attach_release


def test_a_buffer_is_handed_out_again_only_after_its_release():
    pool = _Pool()
    first, slot = pool.take(1000)
    assert slot is not None and first.is_shared() and first.nbytes() >= 1000
    second, other = pool.take(1000)
    assert other != slot and second.data_ptr() != first.data_ptr()  # the first is still out
    # the main process's mapping of the buffer: another storage object (here, a stand-in)
    tensor = torch.zeros(1000, dtype=torch.uint8).share_memory_()
    view = tensor[10:20]
    attach_release({"t": tensor}, (os.getpid() + 1, pool.flags, {"t": slot}))  # as if unpickled elsewhere
    del tensor
    gc.collect()
    assert pool.flags[slot] == 1  # a view still holds the buffer
    del view
    gc.collect()
    assert pool.flags[slot] == 0
    again, same = pool.take(900)
    assert same == slot and again.data_ptr() == first.data_ptr()


def test_a_copy_made_in_the_worker_itself_releases_nothing():
    pool = _Pool()
    storage, slot = pool.take(64)
    tensor = torch.empty(0, dtype=torch.uint8).set_(storage, 0, (64,))
    attach_release({"t": tensor.clone().share_memory_()}, (os.getpid(), pool.flags, {"t": slot}))
    gc.collect()
    assert pool.flags[slot] == 1


def test_when_every_slot_is_out_the_pool_says_so():
    pool = _Pool()
    assert all(pool.take(16)[1] is not None for _ in range(SLOTS))
    assert pool.take(16) == (None, None)


def test_a_batch_pickled_outside_a_worker_carries_no_ticket():
    assert worker_buffers.tickets({"t": torch.zeros(3)}) is None


def _rows(item) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each sample's (raw, edit) mels in a sample or a batch, as views."""
    if isinstance(item, Sample):
        return {item.key: (item.raw_mel, item.edit_mel)}
    return {key: (item.raw_mel[row, :, :int(item.raw_lengths[row])],
                  item.edit_mel[row, :, :int(item.edit_lengths[row])]) for row, key in enumerate(item.keys)}


def _by_key(loader: DataLoader, *, hold: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    out, held = {}, []
    for item in loader:
        if hold:
            held.append(item)  # nothing released: the workers must not write into these
        out.update({key: (raw.clone(), edit.clone()) for key, (raw, edit) in _rows(item).items()})
    for item in held:  # still intact after the whole epoch
        assert all(torch.equal(raw, out[key][0]) and torch.equal(edit, out[key][1])
                   for key, (raw, edit) in _rows(item).items())
    return out


@pytest.mark.parametrize("batched", [True, False])
def test_worker_items_equal_in_process_items_held_or_dropped(make_shards, batched):
    pattern, _ = make_shards(24, 3, n_mels=64, min_frames=200, max_frames=400)  # mels over MIN_POOLED_BYTES
    pipe = Pipe.from_shards(pattern, seed=1)
    pipe = pipe.batch(2) if batched else pipe
    expected = _by_key(DataLoader(pipe, batch_size=None, num_workers=0), hold=False)
    for hold in (False, True):
        loader = DataLoader(pipe, batch_size=None, num_workers=2, persistent_workers=True)
        for _epoch in range(2):  # the second epoch reuses the buffers released in the first
            got = _by_key(loader, hold=hold)
            assert got.keys() == expected.keys()
            for key, (raw, edit) in expected.items():
                assert torch.equal(got[key][0], raw) and torch.equal(got[key][1], edit)


def test_a_batch_round_trips_through_pickle():
    batch = collate_samples([Sample("a", torch.ones(2, 3), torch.ones(2, 1), torch.tensor([2]))])
    copy = pickle.loads(pickle.dumps(batch))  # plain pickling is untouched: only the trip between processes
    assert copy.keys == ["a"] and torch.equal(copy.raw_mel, batch.raw_mel) and copy.pointers.tolist() == [[2]]
    sample = Sample("b", torch.ones(2, 3), torch.ones(2, 1), torch.tensor([2]), meta={"x": 1}, origin=("shard", 0, 1))
    copy = pickle.loads(pickle.dumps(sample))
    assert copy.key == "b" and copy.meta == {"x": 1} and copy.origin == ("shard", 0, 1)


def test_an_item_sent_on_to_another_process_keeps_its_buffers():
    pool = _Pool()
    _, slot = pool.take(1 << 17)
    raw = torch.zeros(4, 1 << 13).share_memory_()  # the main process's mapping (a stand-in)
    sample = Sample("a", raw, raw[:, :2], torch.tensor([0, 1]))
    attach_release({"raw_mel": raw}, (os.getpid() + 1, pool.flags, {"raw_mel": slot}))
    ForkingPickler.dumps(sample)  # sent on, as to a third process
    del sample, raw
    gc.collect()
    assert pool.flags[slot] == 1  # the third process may still read it: never reused
