"""The pipe: fluent stages build new pipes; shuffle, map, filter and batch behave as documented."""

from __future__ import annotations

import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import IGNORE_INDEX, Batch, Pipe, Sample, collate_samples
from streams.tools.synthetic import synthetic_dataset

SAMPLES = synthetic_dataset(23, n_mels=4, min_frames=10, max_frames=40)


def keys(pipe) -> list[str]:
    return [s.key for s in pipe]


def test_fluent_methods_return_new_pipes_and_leave_the_original_alone():
    base = Pipe.from_samples(SAMPLES, seed=1)
    shuffled = base.shuffle(8)
    batched = shuffled.batch(4)
    assert len(base.stages) == 1 and len(shuffled.stages) == 2 and len(batched.stages) == 3
    assert keys(base) == [s.key for s in SAMPLES]
    assert sorted(keys(shuffled)) == sorted(keys(base))


def test_stage_names_are_unique():
    pipe = Pipe.from_samples(SAMPLES).shuffle(2).shuffle(3)
    assert pipe.stage_names == ("source", "shuffle", "shuffle#2")


@given(buffer_size=st.integers(0, 30), seed=st.integers(0, 2**31), epoch=st.integers(0, 5))
@settings(max_examples=40, deadline=None)
def test_shuffle_is_a_seeded_permutation(buffer_size, seed, epoch):
    pipe = Pipe.from_samples(SAMPLES, seed=seed).shuffle(buffer_size)
    pipe.set_epoch(epoch)
    first, second = keys(pipe), keys(pipe)
    assert first == second
    assert sorted(first) == sorted(s.key for s in SAMPLES)
    if buffer_size <= 1:
        assert first == [s.key for s in SAMPLES]


def test_shuffle_changes_with_epoch_and_seed():
    pipe = Pipe.from_samples(SAMPLES, seed=0).shuffle(10)
    orders = set()
    for epoch in range(4):
        pipe.set_epoch(epoch)
        orders.add(tuple(keys(pipe)))
    orders.add(tuple(keys(Pipe.from_samples(SAMPLES, seed=1).shuffle(10))))
    assert len(orders) == 5


def test_map_and_filter_count_what_they_drop():
    pipe = Pipe.from_samples(SAMPLES).filter(lambda s: s.raw_frames > 25, name="long").map(
        lambda s: s.replace(meta={"seen": True}))
    out = list(iter(pipe))
    assert all(s.raw_frames > 25 and s.meta == {"seen": True} for s in out)
    stats = pipe.stats()
    assert stats["long"]["kept"] == len(out)
    assert stats["long"]["kept"] + stats["long"]["dropped"] == len(SAMPLES)


def test_batches_pad_mels_and_pointers_with_masks():
    pipe = Pipe.from_samples(SAMPLES[:5]).batch(2)
    batches = list(pipe)
    assert [len(b) for b in batches] == [2, 2, 1]
    batch = batches[0]
    a, b = SAMPLES[0], SAMPLES[1]
    assert batch.raw_mel.shape == (2, 4, max(a.raw_frames, b.raw_frames))
    assert batch.raw_lengths.tolist() == [a.raw_frames, b.raw_frames]
    assert batch.raw_mask.sum(1).tolist() == [a.raw_frames, b.raw_frames]
    assert batch.edit_mask.sum(1).tolist() == [a.edit_frames, b.edit_frames]
    assert torch.equal(batch.pointers[0, : a.edit_frames], a.pointers)
    assert (batch.pointers[0, a.edit_frames:] == IGNORE_INDEX).all()
    assert torch.equal(batch.raw_mel[1, :, : b.raw_frames], b.raw_mel)
    assert (batch.raw_mel[1, :, b.raw_frames:] == 0).all()
    loss = torch.nn.functional.cross_entropy(torch.zeros(2, batch.raw_mel.shape[-1], batch.pointers.shape[1]),
                                             batch.pointers)  # -100 padding is ignored
    assert torch.isfinite(loss)


def test_drop_last_counts_the_dropped_samples():
    pipe = Pipe.from_samples(SAMPLES).batch(5, drop_last=True)
    assert [len(b) for b in pipe] == [5, 5, 5, 5]
    iterator = iter(pipe)
    list(iterator)
    assert iterator.stats()["batch"] == {"batches": 4, "dropped": 3}


def test_collate_refuses_mixed_mel_counts():
    a = Sample("a", torch.zeros(2, 3), torch.zeros(2, 1), torch.tensor([0]))
    b = Sample("b", torch.zeros(3, 3), torch.zeros(3, 1), torch.tensor([0]))
    with pytest.raises(ValueError, match="share n_mels"):
        collate_samples([a, b])


def test_batch_moves_and_pins():
    batch = next(iter(Pipe.from_samples(SAMPLES).batch(3)))
    moved = batch.to(torch.float64)
    assert isinstance(moved, Batch) and moved.raw_mel.dtype == torch.float64
    assert moved.pointers.dtype == torch.int64 and moved.raw_mask.dtype == torch.bool
    assert batch.raw_mel.dtype == torch.float32


def test_pipe_pickles_without_its_live_pass():
    pipe = Pipe.from_samples(SAMPLES).shuffle(4)
    iterator = iter(pipe)
    next(iterator)
    clone = pickle.loads(pickle.dumps(pipe))
    assert keys(clone) == keys(Pipe.from_samples(SAMPLES).shuffle(4))


@pytest.mark.parametrize("bad, message", [
    (lambda p: p.shuffle(-1), r"buffer_size must be an int >= 0 \(-1 given\)"),
    (lambda p: p.batch(0), r"batch_size must be an int >= 1 \(0 given\)"),
    (lambda p: p.map(3), "map needs a callable"),
    (lambda p: p.set_epoch(-2), r"epoch must be an int >= 0 \(-2 given\)"),
])
def test_bad_stage_arguments_fail_at_construction(bad, message):
    with pytest.raises(ValueError, match=message):
        bad(Pipe.from_samples(SAMPLES))


def test_a_pipe_needs_a_source():
    from streams import ShuffleStage

    with pytest.raises(ValueError, match="starts with a source"):
        Pipe([ShuffleStage(3)])
