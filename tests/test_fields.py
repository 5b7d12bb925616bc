"""Errors know their field, and skip accounting makes a folder only when worker passes post to it."""

from __future__ import annotations

import os
import pickle

import pytest
from torch.utils.data import DataLoader

from streams import ChunkShuffleStage, CropStage, GainStage, PairStage, Pipe, ProbabilitySchedule, ShardSource
from streams.checks import FieldError
from streams.origin import parse_origin

from .conftest import DEMO_URLS


@pytest.mark.parametrize("make, field", [
    (lambda: PairStage(buffer_size=1), "buffer_size"),
    (lambda: PairStage(max_edit_frames=0), "max_edit_frames"),
    (lambda: PairStage(pair_by=""), "pair_by"),
    (lambda: CropStage(min_len=600, max_len=500), "min_len"),
    (lambda: GainStage(scale_min=0.0, domain="log"), "scale_min"),
    (lambda: ChunkShuffleStage(probability=1.5), "probability"),
    (lambda: ProbabilitySchedule(kind="constant", end_factor=0.5), "end_factor"),
    (lambda: ShardSource("x-{000..003.tar"), "urls"),
    (lambda: ShardSource(DEMO_URLS, equal_steps="sometimes"), "equal_steps"),
    (lambda: ShardSource(DEMO_URLS, on_error="ignore"), "on_error"),
    (lambda: Pipe.from_samples([]).shuffle(-1), "buffer_size"),
    (lambda: Pipe.from_samples([]).map(3), "fn"),
])
def test_a_bad_argument_names_its_field(make, field):
    with pytest.raises(FieldError) as info:
        make()
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.field, str(copy)) == (field, str(info.value))


def test_origins_parse_from_tuples_and_json_lists():
    pair = parse_origin(["pair", ["shard", 3, 7, 2], ["memory", 1]])
    assert pair.is_pair and [part.stored() for part in pair.parts()] == [("shard", 3, 7, 2), ("memory", 1)]
    assert [part.occurrence for part in pair.parts()] == [2, 0]
    with pytest.raises(ValueError, match="is not an origin"):
        parse_origin(("tape", 1))


@pytest.mark.parametrize("on_error, folder_made", [("raise", False), ("skip", True)])
def test_the_ledger_folder_is_made_only_for_skipping_worker_passes(on_error, folder_made):
    pipe = Pipe.from_shards(DEMO_URLS, on_error=on_error)
    ledger = pipe.source._ledger
    directory = ledger._directory
    assert not os.path.exists(directory)  # nothing is made when the source is built
    keys = [sample.key for sample in DataLoader(pipe, batch_size=None, num_workers=2)]
    assert len(keys) == len(set(keys)) > 0
    assert os.path.isdir(directory) == folder_made
    report = pipe.skip_report()
    assert report.skipped == 0 and report.passes == (2 if folder_made else 0)
    del pipe, ledger
    assert not os.path.exists(directory)  # removed with the ledger
