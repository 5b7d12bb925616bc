"""A record read twice in one epoch (resampled draws, equal steps' repeats) gets fresh augmentations."""

from __future__ import annotations

import collections

import torch

from streams import Pipe

from . import resume_harness as harness


def _repeated(samples) -> list[list]:
    by_key = collections.defaultdict(list)
    for sample in samples:
        by_key[sample.key].append(sample)
    return [group for group in by_key.values() if len(group) > 1]


def test_resampled_draws_of_one_record_are_augmented_differently(make_shards):
    pattern, _ = make_shards(6, 3)
    pipe = Pipe.from_shards(pattern, seed=2, resampled=True, epoch_samples=40).noise(probability=1.0)
    groups = _repeated(pipe)
    assert groups, "40 draws from 6 samples must repeat some"
    for group in groups:
        assert len({s.origin for s in group}) == len(group)
        assert not torch.equal(group[0].raw_mel, group[1].raw_mel)


def test_equal_steps_repeats_are_augmented_differently(make_shards, monkeypatch):
    pattern, _ = make_shards(5, 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")  # rank 1 of 2 reads positions 3..5 of 5: the last wraps to the first sample
    samples = list(Pipe.from_shards(pattern, seed=0, shuffle_shards=False, equal_steps="repeat")
                   .gain(probability=1.0))
    monkeypatch.setenv("RANK", "0")
    first = {s.key: s for s in Pipe.from_shards(pattern, seed=0, shuffle_shards=False, equal_steps="repeat")
             .gain(probability=1.0)}
    repeats = [s for s in samples if len(s.origin) == 4]
    assert len(repeats) == 1 and repeats[0].key in first
    assert not torch.equal(repeats[0].raw_mel, first[repeats[0].key].raw_mel)


def test_resume_replays_occurrences_exactly(make_shards):
    pattern, _ = make_shards(6, 3)
    pipe = Pipe.from_shards(pattern, seed=5, resampled=True, epoch_samples=25).shuffle(6).noise(probability=1.0)
    for cut in (4, 13):
        expected, resumed = harness.resumed_rest(pipe, cut)
        assert harness.same([harness.record(s) for s in resumed], [harness.record(s) for s in expected])
