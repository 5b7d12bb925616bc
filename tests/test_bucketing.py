"""Tests of frame-budget batching: the budget, exactly-once delivery, resume, padding efficiency."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.origin import is_pair_origin
from streams.pipe import Pipe
from streams.sample import Sample
from streams.stages.bucketing import FrameBudgetBatchStage, cut_frame_budget_batches
from streams.stages.collate import IGNORE_INDEX, Batch
from streams.tools.invariants import make_tagged_sample

from .resume_harness import resumed_rest

N_MELS = 2


def tagged(index: int, raw_frames: int, edit_frames: int) -> Sample:
    generator = torch.Generator().manual_seed(index)
    pointers = torch.randint(0, raw_frames, (edit_frames,), generator=generator)
    return make_tagged_sample(f"s{index}", N_MELS, raw_frames, pointers, generator=generator)


def leaf_origins(origin) -> list:
    if is_pair_origin(origin):
        return leaf_origins(origin[1]) + leaf_origins(origin[2])
    return [tuple(origin)]


def budget_frames(batch: Batch) -> int:
    """The budgeted size: batch size times the longest raw, or edit, whichever is larger."""
    return len(batch) * max(batch.raw_mel.shape[-1], batch.edit_mel.shape[-1])


def assert_same_batch(got: Batch, want: Batch) -> None:
    assert got.keys == want.keys
    for field in ("raw_mel", "raw_lengths", "raw_mask", "edit_mel", "edit_lengths", "edit_mask", "pointers"):
        assert torch.equal(getattr(got, field), getattr(want, field)), field
    assert got.meta == want.meta
    assert [leaf_origins(o) for o in got.origins] == [leaf_origins(o) for o in want.origins]




lengths = st.tuples(st.integers(1, 30), st.integers(1, 30))


# the pure cut ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(lengths, max_size=50), max_frames=st.integers(1, 100),
       max_batch_size=st.one_of(st.none(), st.integers(1, 8)))
def test_cut_uses_every_index_once_within_the_budget(sizes, max_frames, max_batch_size):
    batches = cut_frame_budget_batches(sizes, max_frames, max_batch_size)
    assert sorted(i for batch in batches for i in batch) == list(range(len(sizes)))
    for batch in batches:
        assert batch
        longest_raw = max(sizes[i][0] for i in batch)
        longest_edit = max(sizes[i][1] for i in batch)
        if len(batch) == 1 and max(longest_raw, longest_edit) > max_frames:
            continue  # an oversized sample alone
        assert len(batch) * longest_raw <= max_frames and len(batch) * longest_edit <= max_frames
        assert max_batch_size is None or len(batch) <= max_batch_size
    # greedy: a batch is only closed when the next sample in length order did not fit
    fitting = [b for b in batches if not (len(b) == 1 and max(sizes[b[0]]) > max_frames)]
    for batch, following in zip(fitting, fitting[1:]):
        grown = batch + following[:1]
        assert (len(grown) * max(sizes[i][0] for i in grown) > max_frames
                or len(grown) * max(sizes[i][1] for i in grown) > max_frames
                or (max_batch_size is not None and len(grown) > max_batch_size))


def test_cut_puts_oversized_samples_alone_and_last():
    assert cut_frame_budget_batches([(50, 1), (2, 2), (2, 60), (3, 3)], max_frames=10) == [[1, 3], [0], [2]]
    assert cut_frame_budget_batches([], max_frames=10) == []


# construction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, kwargs, message", [
    ((0,), {}, r"max_frames must be an int >= 1 \(0 given\)"),
    ((100.0,), {}, r"max_frames must be an int >= 1 \(100.0 given\)"),
    ((True,), {}, r"max_frames must be an int >= 1 \(True given\)"),
    ((100,), {"bucket_buffer": 0}, r"bucket_buffer must be an int >= 1 \(0 given\)"),
    ((100,), {"max_batch_size": 0}, r"max_batch_size must be an int >= 1 \(0 given\)"),
    ((100,), {"max_batch_size": "8"}, r"max_batch_size must be an int >= 1 \('8' given\)"),
])
def test_bad_settings_fail_at_construction(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrameBudgetBatchStage(*args, **kwargs)
    with pytest.raises(ValueError, match=message):
        Pipe.from_samples([]).batch_by_frames(*args, **kwargs)


def test_batch_by_frames_returns_a_new_pipe():
    pipe = Pipe.from_samples([tagged(0, 3, 2)])
    batched = pipe.batch_by_frames(500, bucket_buffer=8, max_batch_size=4)
    assert len(pipe.stages) == 1
    stage = batched.stages[-1]
    assert (stage.max_frames, stage.bucket_buffer, stage.max_batch_size) == (500, 8, 4)


# the stream -----------------------------------------------------------------------------------


@st.composite
def batching_cases(draw):
    sizes = draw(st.lists(lengths, max_size=40))
    stage = FrameBudgetBatchStage(draw(st.integers(1, 80)), bucket_buffer=draw(st.integers(1, 16)),
                                  max_batch_size=draw(st.one_of(st.none(), st.integers(1, 6))))
    return [tagged(i, raw, edit) for i, (raw, edit) in enumerate(sizes)], stage, draw(st.integers(0, 2**31))


@settings(max_examples=100, deadline=None)
@given(case=batching_cases())
def test_every_sample_once_and_no_batch_over_the_budget(case):
    samples, stage, seed = case
    pipe = Pipe.from_samples(samples, seed=seed).then(stage)
    batches = list(pipe)
    by_key = {s.key: s for s in samples}
    assert sorted(k for b in batches for k in b.keys) == sorted(by_key)
    oversized = 0
    for batch in batches:
        if budget_frames(batch) > stage.max_frames:
            assert len(batch) == 1
            oversized += 1
        assert stage.max_batch_size is None or len(batch) <= stage.max_batch_size
        for row, key in enumerate(batch.keys):  # each row holds its sample, padded
            sample = by_key[key]
            assert torch.equal(batch.raw_mel[row, :, :sample.raw_frames], sample.raw_mel)
            assert torch.equal(batch.edit_mel[row, :, :sample.edit_frames], sample.edit_mel)
            assert torch.equal(batch.pointers[row, :sample.edit_frames], sample.pointers)
            assert bool((batch.pointers[row, sample.edit_frames:] == IGNORE_INDEX).all())
    stats = pipe.stats()["batch_by_frames"]
    assert stats["oversized"] == oversized == sum(stage.is_oversized(s) for s in samples)
    assert (stats["batches"], stats["samples"]) == (len(batches), len(samples))
    assert stats["real_frames"] == sum(b.real_frames for b in batches)
    assert stats["padded_frames"] == sum(b.padded_frames for b in batches)
    assert stats["largest_padded_frames"] == max((b.padded_frames for b in batches), default=0)
    assert stats["largest_batch_size"] == max((len(b) for b in batches), default=0)


def test_every_sample_leaves_in_the_flush_after_it_arrives():
    sizes = [(1 + (7 * i) % 40, 1 + (3 * i) % 25) for i in range(100)]
    pipe = Pipe.from_samples([tagged(i, *size) for i, size in enumerate(sizes)], seed=2)
    emitted = 0
    for batch in pipe.batch_by_frames(120, bucket_buffer=16):
        emitted += len(batch)
        for key in batch.keys:
            flush = int(key[1:]) // 16
            assert emitted <= min(100, (flush + 1) * 16)  # out by the end of its own flush


def test_a_short_stream_is_flushed():
    batches = list(Pipe.from_samples([tagged(i, 3, 2) for i in range(5)]).batch_by_frames(1000, bucket_buffer=64))
    assert sorted(k for b in batches for k in b.keys) == [f"s{i}" for i in range(5)]
    assert list(Pipe.from_samples([]).batch_by_frames(10)) == []


def test_batches_cannot_be_replayed():
    pipe = Pipe.from_samples([tagged(0, 3, 2)]).batch_by_frames(10)
    iter(pipe)
    with pytest.raises(TypeError, match="put buffering stages"):
        pipe._live.nodes[-1].replay([("memory", 0)])


# resume ---------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(case=batching_cases(), fraction=st.floats(0.0, 1.0))
def test_resume_from_the_middle_reproduces_the_rest(case, fraction):
    samples, stage, seed = case
    pipe = Pipe.from_samples(samples, seed=seed).then(stage)
    total = len(list(pipe))
    expected, resumed = resumed_rest(pipe, round(fraction * total))
    assert len(resumed) == len(expected)
    for got, want in zip(resumed, expected):
        assert_same_batch(got, want)


@pytest.mark.parametrize("with_pairs", [False, True])
def test_resume_at_every_position(with_pairs):
    samples = [tagged(i, 2 + (5 * i) % 23, 1 + (3 * i) % 17) for i in range(40)]
    pipe = Pipe.from_samples(samples, seed=4).shuffle(6)
    if with_pairs:
        pipe = pipe.pair(0.5, buffer_size=4, max_raw_frames=30)
    pipe = pipe.batch_by_frames(60, bucket_buffer=10, max_batch_size=5)
    total = len(list(pipe))
    final_stats = pipe.stats()["batch_by_frames"]
    for consumed in range(total + 1):
        expected, resumed = resumed_rest(pipe, consumed)
        assert [b.keys for b in resumed] == [b.keys for b in expected]
        for got, want in zip(resumed, expected):
            assert_same_batch(got, want)
    iterator = iter(pipe)
    for _ in range(total // 2):
        next(iterator)
    resumed = Pipe(pipe.stages, seed=pipe.seed)
    resumed.load_state_dict(pipe.state_dict())
    list(resumed)
    assert resumed.stats()["batch_by_frames"] == final_stats


def test_state_saved_right_after_a_resume_resumes_the_same_way():
    samples = [tagged(i, 2 + (5 * i) % 23, 1 + (3 * i) % 17) for i in range(40)]
    pipe = Pipe.from_samples(samples, seed=4).batch_by_frames(60, bucket_buffer=10)
    iterator = iter(pipe)
    for _ in range(3):
        next(iterator)
    state = pipe.state_dict()
    expected = [b.keys for b in iterator]
    once = Pipe(pipe.stages, seed=pipe.seed)
    once.load_state_dict(state)
    iter(once)  # nodes restored, pending batches not yet replayed
    twice = Pipe(pipe.stages, seed=pipe.seed)
    twice.load_state_dict(once.state_dict())
    assert [b.keys for b in twice] == expected


def test_batches_of_a_flush_come_in_a_seeded_random_order():
    samples = [tagged(i, 1 + (7 * i) % 50, 1 + (3 * i) % 40) for i in range(64)]
    pipe = Pipe.from_samples(samples, seed=1).batch_by_frames(100, bucket_buffer=64)
    first = [b.keys for b in pipe]
    longest = [max(b.raw_lengths.max(), b.edit_lengths.max()) for b in pipe]
    assert len(longest) > 5 and longest != sorted(longest)
    assert [b.keys for b in pipe] == first
    pipe.set_epoch(1)
    assert [b.keys for b in pipe] != first


# padding --------------------------------------------------------------------------------------


def test_length_bucketing_pads_less_than_fixed_size_batches():
    # A fixed synthetic set of varied lengths (10 to 400 frames), seeded; both batchers see the
    # same samples in the same order, and the fixed-size one gets the same number of batches.
    generator = torch.Generator().manual_seed(0)
    raw = torch.randint(10, 401, (400,), generator=generator).tolist()
    edit = [max(1, r * k // 10) for r, k in zip(raw, torch.randint(5, 11, (400,), generator=generator).tolist())]
    samples = [tagged(i, r, e) for i, (r, e) in enumerate(zip(raw, edit))]
    source = Pipe.from_samples(samples, seed=0)

    bucketed = source.batch_by_frames(2000, bucket_buffer=128)
    bucketed_batches = list(bucketed)
    stats = bucketed.stats()["batch_by_frames"]
    batch_size = round(len(samples) / len(bucketed_batches))
    fixed_batches = list(source.batch(batch_size))

    def efficiency(batches: list[Batch]) -> float:
        return sum(b.real_frames for b in batches) / sum(b.padded_frames for b in batches)

    assert stats["padding_efficiency"] == pytest.approx(efficiency(bucketed_batches))
    assert stats["oversized"] == 0 and all(budget_frames(b) <= 2000 for b in bucketed_batches)
    assert efficiency(bucketed_batches) > 0.8  # 0.85 with this set
    assert efficiency(fixed_batches) < 0.6  # 0.55
    assert efficiency(bucketed_batches) - efficiency(fixed_batches) > 0.25
