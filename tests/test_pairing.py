"""Tests of sample concatenation and the buffered pairing stage (plan B3)."""

from __future__ import annotations

import collections
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from streams.origin import is_pair_origin
from streams.pipe import Pipe
from streams.sample import Sample
from streams.schedule import ProbabilitySchedule
from streams.stages.pairing import PairStage, concatenate_samples, lead_pairing_chance
from streams.tools.invariants import make_tagged_sample, pointer_content_error

from .resume_harness import resumed_rest

N_MELS = 3


def tagged(index: int, raw_frames: int, edit_frames: int, **meta) -> Sample:
    """A tagged sample ``s<index>`` (edit frames copy raw frames) with seeded pointers."""
    generator = torch.Generator().manual_seed(index)
    pointers = torch.randint(0, raw_frames, (edit_frames,), generator=generator)
    return make_tagged_sample(f"s{index}", N_MELS, raw_frames, pointers, generator=generator).replace(meta=meta)


def leaf_origins(origin) -> list:
    """The source origins inside ``origin`` (a pair's parts, recursively)."""
    if is_pair_origin(origin):
        return leaf_origins(origin[1]) + leaf_origins(origin[2])
    return [tuple(origin)]


def snapshot(sample: Sample) -> tuple:
    return sample.key, sample.raw_mel.clone(), sample.edit_mel.clone(), sample.pointers.clone(), json.dumps(sample.meta)


def assert_same_sample(got: Sample, want: Sample) -> None:
    assert got.key == want.key
    assert torch.equal(got.raw_mel, want.raw_mel)
    assert torch.equal(got.edit_mel, want.edit_mel)
    assert torch.equal(got.pointers, want.pointers)
    assert got.meta == want.meta
    assert leaf_origins(got.origin) == leaf_origins(want.origin)




lengths = st.tuples(st.integers(1, 12), st.integers(1, 12))
lengths_with_empty_edit = st.tuples(st.integers(1, 12), st.integers(0, 12))
probabilities = st.one_of(st.sampled_from([0.0, 1.0, 0.3, 0.7]), st.floats(0.0, 1.0))
limits = st.one_of(st.none(), st.integers(1, 20))


# concatenate_samples --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(first=lengths_with_empty_edit, second=lengths_with_empty_edit,
       dtype=st.sampled_from([torch.float32, torch.float16]))
def test_concatenation_keeps_pointer_content_and_inputs(first, second, dtype):
    a = tagged(1, *first, genre="x").replace(origin=("memory", 1), url="a.tar")
    b = tagged(2, *second).replace(origin=("memory", 2), url="b.tar")
    a, b = (s.replace(raw_mel=s.raw_mel.to(dtype), edit_mel=s.edit_mel.to(dtype)) for s in (a, b))
    before = snapshot(a), snapshot(b)

    pair = concatenate_samples(a, b)

    assert pointer_content_error(pair) == 0.0
    assert pair.raw_mel.shape == (N_MELS, first[0] + second[0])
    assert pair.edit_mel.shape == (N_MELS, first[1] + second[1])
    assert pair.raw_mel.dtype == dtype and pair.pointers.dtype == torch.int64
    assert pair.pointers.tolist() == a.pointers.tolist() + [p + first[0] for p in b.pointers.tolist()]
    assert pair.key == "s1+s2"
    assert pair.origin == ("pair", ("memory", 1), ("memory", 2))
    assert pair.url is None
    assert pair.meta["parts"] == [{"genre": "x"}, {}]
    assert pair.meta["augmentations"] == [{"stage": "pair", "keys": ["s1", "s2"], "urls": ["a.tar", "b.tar"],
                                           "raw_split": first[0], "edit_split": first[1]}]
    for sample, (key, raw, edit, pointers, meta) in zip((a, b), before):
        assert sample.key == key and sample.meta == json.loads(meta)
        assert torch.equal(sample.raw_mel, raw) and torch.equal(sample.edit_mel, edit)
        assert torch.equal(sample.pointers, pointers)


def test_concatenation_keeps_a_shared_url():
    a, b = tagged(1, 3, 2).replace(url="x.tar"), tagged(2, 3, 2).replace(url="x.tar")
    assert concatenate_samples(a, b).url == "x.tar"


def test_concatenation_refuses_different_mel_bins_or_dtypes():
    a = tagged(1, 3, 2)
    other_bins = make_tagged_sample("b", N_MELS + 1, 3, torch.tensor([0]))
    with pytest.raises(ValueError, match=r"'s1' \(3 mel bins\) and 'b' \(4 mel bins\)"):
        concatenate_samples(a, other_bins)
    half = a.replace(key="h", raw_mel=a.raw_mel.half(), edit_mel=a.edit_mel.half())
    with pytest.raises(ValueError, match="torch.float16"):
        concatenate_samples(a, half)


# construction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"probability": 1.5}, r"probability must be between 0.0 and 1.0 \(1.5 given\)"),
    ({"probability": -0.1}, r"probability must be between 0.0 and 1.0 \(-0.1 given\)"),
    ({"buffer_size": 1}, r"buffer_size must be an int >= 2 \(1 given\)"),
    ({"buffer_size": 4.0}, r"buffer_size must be an int >= 2 \(4.0 given\)"),
    ({"max_raw_frames": 0}, r"max_raw_frames must be None \(no limit\) or an int >= 1 \(0 given\)"),
    ({"max_edit_frames": "10"}, r"max_edit_frames must be None \(no limit\) or an int >= 1 \('10' given\)"),
    ({"pair_by": ""}, r"pair_by must be 'random', 'length' or a metadata field name \('' given\)"),
    ({"pair_by": None}, r"pair_by must be .* \(None given\)"),
    ({"schedule": 0.5}, r"schedule must be a ProbabilitySchedule \(got float\)"),
])
def test_bad_settings_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PairStage(**kwargs)
    with pytest.raises(ValueError, match=message):
        Pipe.from_samples([]).pair(**kwargs)


def test_pair_method_returns_a_new_pipe():
    pipe = Pipe.from_samples([tagged(0, 3, 2)])
    paired = pipe.pair(0.5, buffer_size=4, max_raw_frames=100, pair_by="length")
    assert len(pipe.stages) == 1 and len(paired.stages) == 2
    stage = paired.stages[-1]
    assert isinstance(stage, PairStage)
    assert (stage.probability, stage.buffer_size, stage.max_raw_frames, stage.pair_by) == (0.5, 4, 100, "length")


def test_lead_chance_gives_the_paired_fraction():
    for p in (0.0, 0.1, 0.2, 0.5, 0.9, 1.0):
        q = lead_pairing_chance(p)
        assert math.isclose(2 * q / (1 + q), p, abs_tol=1e-12)


# the stream guarantees ------------------------------------------------------------------------


@st.composite
def pairing_cases(draw):
    sizes = draw(st.lists(lengths, max_size=40))
    tags = draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=len(sizes), max_size=len(sizes)))
    samples = [tagged(i, raw, edit, **({} if tag is None else {"tag": tag}))
               for i, ((raw, edit), tag) in enumerate(zip(sizes, tags))]
    stage = PairStage(draw(probabilities), buffer_size=draw(st.integers(2, 12)),
                      max_raw_frames=draw(limits), max_edit_frames=draw(limits),
                      pair_by=draw(st.sampled_from(["random", "length", "tag"])))
    return samples, stage, draw(st.integers(0, 2**31))


@settings(max_examples=150, deadline=None)
@given(case=pairing_cases())
def test_every_sample_leaves_once_within_limits_and_pointer_safe(case):
    samples, stage, seed = case
    before = [snapshot(s) for s in samples]
    pipe = Pipe.from_samples(samples, seed=seed).then(stage)

    out = list(pipe)

    leaves = [origin for item in out for origin in leaf_origins(item.origin)]
    assert sorted(leaves) == sorted(("memory", i) for i in range(len(samples)))
    by_key = {s.key: s for s in samples}
    for item in out:
        if not is_pair_origin(item.origin):
            assert item.key in by_key
            continue
        assert pointer_content_error(item) == 0.0
        assert stage.fits(item.raw_frames, item.edit_frames)
        first, second = item.meta["augmentations"][-1]["keys"]
        assert item.key == f"{first}+{second}"
        assert int(first[1:]) < int(second[1:])  # the older sample comes first
        if stage.pair_by == "tag":
            assert "tag" in by_key[first].meta and by_key[first].meta["tag"] == by_key[second].meta.get("tag")
    stats = pipe.stats()["pair"]
    pairs = sum(is_pair_origin(item.origin) for item in out)
    assert (stats["in"], stats["pairs"], stats["singles"]) == (len(samples), pairs, len(out) - pairs)
    if stage.probability == 0.0:
        assert pairs == 0
    if stage.probability == 1.0 and stage.pair_by == "random" and stage.max_raw_frames is None \
            and stage.max_edit_frames is None:
        assert len(out) - pairs <= 1  # only the very last sample can lack a partner
    for sample, (key, raw, edit, pointers, meta) in zip(samples, before):
        assert sample.key == key and json.dumps(sample.meta) == meta
        assert torch.equal(sample.raw_mel, raw) and torch.equal(sample.edit_mel, edit)
        assert torch.equal(sample.pointers, pointers)


@st.composite
def resume_cases(draw):
    samples, stage, seed = draw(pairing_cases())
    pipe = Pipe.from_samples(samples, seed=seed)
    layout = draw(st.sampled_from(["pair", "shuffle-pair", "pair-shuffle"]))
    if layout == "shuffle-pair":
        pipe = pipe.shuffle(draw(st.integers(0, 6)))
    pipe = pipe.then(stage)
    if layout == "pair-shuffle":
        pipe = pipe.shuffle(draw(st.integers(0, 6)))
    return pipe, draw(st.floats(0.0, 1.0))


@settings(max_examples=80, deadline=None)
@given(case=resume_cases())
def test_resume_from_the_middle_reproduces_the_rest(case):
    pipe, fraction = case
    total = len(list(pipe))
    expected, resumed = resumed_rest(pipe, round(fraction * total))
    assert len(resumed) == len(expected)
    for got, want in zip(resumed, expected):
        assert_same_sample(got, want)


@pytest.mark.parametrize("layout", ["pair", "shuffle-pair", "pair-shuffle"])
@pytest.mark.parametrize("pair_by", ["random", "length", "tag"])
def test_resume_at_every_position(layout, pair_by):
    samples = [tagged(i, 2 + i % 7, 1 + i % 5, tag=i % 3) for i in range(24)]
    pipe = Pipe.from_samples(samples, seed=7)
    if layout == "shuffle-pair":
        pipe = pipe.shuffle(5)
    pipe = pipe.pair(0.5, buffer_size=5, max_raw_frames=14, pair_by=pair_by)
    if layout == "pair-shuffle":
        pipe = pipe.shuffle(4)
    total = len(list(pipe))
    for consumed in range(total + 1):
        expected, resumed = resumed_rest(pipe, consumed)
        assert [s.key for s in resumed] == [s.key for s in expected]
        for got, want in zip(resumed, expected):
            assert_same_sample(got, want)


def test_state_saved_right_after_a_resume_resumes_the_same_way():
    samples = [tagged(i, 4, 3) for i in range(30)]
    pipe = Pipe.from_samples(samples, seed=3).pair(0.6, buffer_size=5)
    iterator = iter(pipe)
    for _ in range(6):
        next(iterator)
    state = pipe.state_dict()
    expected = [s.key for s in iterator]
    once = Pipe(pipe.stages, seed=pipe.seed)
    once.load_state_dict(state)
    iter(once)  # nodes restored, buffer not yet replayed
    twice = Pipe(pipe.stages, seed=pipe.seed)
    twice.load_state_dict(once.state_dict())
    assert [s.key for s in twice] == expected


def test_resume_keeps_counters():
    samples = [tagged(i, 4, 3) for i in range(30)]
    pipe = Pipe.from_samples(samples, seed=3).pair(0.6, buffer_size=5)
    iterator = iter(pipe)
    for _ in range(7):
        next(iterator)
    state = pipe.state_dict()
    list(iterator)
    full = pipe.stats()["pair"]
    fresh = Pipe(pipe.stages, seed=pipe.seed)
    fresh.load_state_dict(state)
    list(fresh)
    assert fresh.stats()["pair"] == full


def test_replay_rebuilds_pairs_from_their_parts():
    samples = [tagged(i, 5, 4) for i in range(6)]
    pipe = Pipe.from_samples(samples).pair(1.0, buffer_size=3)
    out = list(pipe)
    node = pipe._live.nodes[-1]
    replayed = list(node.replay([item.origin for item in reversed(out)]))
    for got, want in zip(replayed, reversed(out)):
        assert_same_sample(got, want)


def test_buffer_bounds_the_samples_held():
    samples = [tagged(i, 3, 2) for i in range(50)]
    pipe = Pipe.from_samples(samples, seed=1).pair(0.7, buffer_size=6)
    for _ in pipe:
        stats = pipe.stats()["pair"]
        assert stats["in"] - 2 * stats["pairs"] - stats["singles"] == stats["buffered"] <= 6


def test_stream_shorter_than_the_buffer_is_flushed():
    samples = [tagged(i, 3, 2) for i in range(3)]
    out = list(Pipe.from_samples(samples).pair(1.0, buffer_size=16))
    assert [item.key for item in out] == ["s0+s1", "s2"] or [item.key for item in out] == ["s0+s2", "s1"]
    assert list(Pipe.from_samples([]).pair(1.0)) == []


# the probability ------------------------------------------------------------------------------


@pytest.mark.parametrize("probability, pair_by", [(0.2, "random"), (0.5, "random"), (0.8, "random"),
                                                  (0.3, "genre")])
def test_fraction_of_samples_paired_matches_the_probability(probability, pair_by):
    # Partners are always available: no limits, and two genres in a buffer of 16. A leave pairs
    # with chance q, so pairs ~ Binomial(E, q) over E ~ n / (1 + q) leaves; the tolerance is six
    # standard deviations of 2 * pairs / n, and the seed is fixed, so the test cannot flake.
    n = 100_000
    base = tagged(0, 4, 3)
    samples = [base.replace(key=f"s{i}", meta={"genre": i % 2}) for i in range(n)]
    pipe = Pipe.from_samples(samples, seed=11, check=False).pair(probability, buffer_size=16, pair_by=pair_by)
    for _ in pipe:
        pass
    stats = pipe.stats()["pair"]
    q = lead_pairing_chance(probability)
    leaves = n / (1 + q)
    tolerance = 6 * 2 * math.sqrt(leaves * q * (1 - q)) / n
    assert stats["no_partner"] <= 1
    assert abs(stats["paired_fraction"] - probability) < tolerance
    assert abs(2 * stats["pairs"] / n - probability) < tolerance


def test_schedule_scales_the_probability_per_epoch():
    samples = [tagged(i, 3, 2) for i in range(40)]
    pipe = Pipe.from_samples(samples).pair(1.0, buffer_size=4, schedule=ProbabilitySchedule(warmup_epochs=1))
    assert all(not is_pair_origin(item.origin) for item in pipe)
    pipe.set_epoch(1)
    assert all(is_pair_origin(item.origin) for item in pipe)


# partner choice and limits --------------------------------------------------------------------


def test_length_policy_picks_the_closest_length():
    sizes = [(10, 10), (3, 3), (11, 9), (20, 20), (4, 4), (21, 19)]
    samples = [tagged(i, raw, edit) for i, (raw, edit) in enumerate(sizes)]
    out = list(Pipe.from_samples(samples).pair(1.0, buffer_size=6, pair_by="length"))
    assert [item.key for item in out] == ["s0+s2", "s1+s4", "s3+s5"]


def test_tag_policy_pairs_only_shared_tags():
    tags = ["rock", "jazz", None, "rock", "solo", "jazz"]
    samples = [tagged(i, 3, 2, **({} if tag is None else {"genre": tag})) for i, tag in enumerate(tags)]
    pipe = Pipe.from_samples(samples).pair(1.0, buffer_size=6, pair_by="genre")
    assert [item.key for item in pipe] == ["s0+s3", "s1+s5", "s2", "s4"]
    assert pipe.stats()["pair"]["no_partner"] == 2


def test_limits_refuse_pairs_and_pass_long_samples_alone():
    sizes = [(30, 5), (6, 5), (8, 20), (7, 5), (3, 3), (7, 5)]
    samples = [tagged(i, raw, edit) for i, (raw, edit) in enumerate(sizes)]
    pipe = Pipe.from_samples(samples).pair(1.0, buffer_size=6, max_raw_frames=12, max_edit_frames=12)
    # s0 and s2 are over a limit alone; s1 fits only with s4; s3 + s5 would have 14 raw frames.
    assert [item.key for item in pipe] == ["s0", "s1+s4", "s2", "s3", "s5"]
    stats = pipe.stats()["pair"]
    assert (stats["over_limit"], stats["pairs"], stats["refused_limit"], stats["no_partner"]) == (2, 1, 1, 1)


def test_limits_count_refused_pairs():
    samples = [tagged(i, 7, 2) for i in range(4)]
    pipe = Pipe.from_samples(samples).pair(1.0, buffer_size=4, max_raw_frames=10)
    assert [item.key for item in pipe] == ["s0", "s1", "s2", "s3"]
    assert pipe.stats()["pair"]["refused_limit"] == 3  # the last sample has nobody left to refuse


# workers --------------------------------------------------------------------------------------


def test_each_dataloader_worker_pairs_its_own_share():
    samples = [tagged(i, 3, 2) for i in range(40)]
    pipe = Pipe.from_samples(samples, seed=5).pair(0.5, buffer_size=4)
    loader = DataLoader(pipe, batch_size=None, num_workers=2)
    out = list(loader)
    leaves = [origin for item in out for origin in leaf_origins(item.origin)]
    assert collections.Counter(leaves) == collections.Counter(("memory", i) for i in range(40))
    for item in out:
        if is_pair_origin(item.origin):
            parts = [origin[1] for origin in leaf_origins(item.origin)]
            assert parts[0] % 2 == parts[1] % 2  # both parts come from the same worker's share
    assert sum(is_pair_origin(item.origin) for item in out) > 0
    assert [item.key for item in DataLoader(pipe, batch_size=None, num_workers=2)] == [item.key for item in out]
