"""DataLoader as people type it: default arguments over a batching pipe, ``batch_size=N`` over a
sample pipe (torch's ``default_collate`` extended through ``default_collate_fn_map``), also with
torchdata's ``StatefulDataLoader`` and a resume in the middle."""

from __future__ import annotations

import copy

import pytest
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from pipelines import build_pipe, load_config
from streams import Batch

from . import resume_harness as harness
from .conftest import REPO
from .test_full_pipeline import plan_config


def test_the_design_card_line_runs_as_written(monkeypatch):
    """The card's three lines (imports at the top of this file), from the repository's root."""
    monkeypatch.chdir(REPO)  # the line names the config by its path in the repository
    loader = DataLoader(build_pipe(load_config("pipelines/configs/full.json")))
    batch = next(iter(loader))
    assert isinstance(batch, Batch)
    expected = next(iter(DataLoader(build_pipe(load_config("pipelines/configs/full.json")), batch_size=None)))
    assert harness.same([harness.record(batch)], [harness.record(expected)])
    assert batch.raw_mel.shape[0] == 4  # the config's batch_size, not wrapped in another dimension


def sample_config(**extra) -> dict:
    """The plan's config with the cheap stages only (crop, gain): these tests are about collation and state."""
    config = plan_config(concatenation=False, shuffle={"buffer_size": 5}, **extra)
    config["augmentation"]["crop"].update(min_len=200, max_len=800)
    for block in ("noise", "channel_dropout", "spec_augment", "chunk_shuffle"):
        config["augmentation"][block]["enabled"] = False
    return config


@pytest.mark.parametrize("num_workers", [0, 2])
def test_default_arguments_give_the_pipes_own_batches(num_workers):
    config = load_config(sample_config(batching={"batch_size": 3}))
    default = [harness.record(b) for b in DataLoader(build_pipe(config), num_workers=num_workers)]
    explicit = [harness.record(b) for b in DataLoader(build_pipe(config), batch_size=None, num_workers=num_workers)]
    assert len(default) == 8 and harness.same(default, explicit)


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_size_pads_samples_as_the_batching_stage_does(num_workers, drop_last):
    by_stage = build_pipe(load_config(sample_config(batching={"batch_size": 5, "drop_last": drop_last})))
    by_loader = build_pipe(load_config(sample_config()))
    expected = [harness.record(b) for b in DataLoader(by_stage, batch_size=None, num_workers=num_workers)]
    got = list(DataLoader(by_loader, batch_size=5, drop_last=drop_last, num_workers=num_workers))
    assert all(isinstance(b, Batch) for b in got)
    assert harness.same([harness.record(b) for b in got], expected)
    assert sum(len(b) for b in got) == (20 if drop_last else 24)


def test_batch_size_over_a_batching_pipe_says_what_to_do():
    pipe = build_pipe(load_config(sample_config(batching={"batch_size": 3})))
    with pytest.raises(TypeError, match="already makes batches.*batch_size=None"):
        next(iter(DataLoader(pipe, batch_size=2)))


def _stateful_run(config, *, num_workers: int, cut: int | None, **loader_options) -> list[tuple]:
    """Batches of ``StatefulDataLoader(pipe, **loader_options)``; with ``cut``, checkpointed after
    ``cut`` batches and finished by a fresh pipe and loader."""
    loaded = load_config(copy.deepcopy(config))
    loader = StatefulDataLoader(build_pipe(loaded), num_workers=num_workers, **loader_options)
    out, iterator = [], iter(loader)
    for batch in iterator:
        out.append(harness.record(batch))
        if len(out) == cut:
            break
    if cut is None:
        return out
    state = harness.checkpoint(loader.state_dict())
    del iterator, loader
    resumed = StatefulDataLoader(build_pipe(loaded), num_workers=num_workers, **loader_options)
    resumed.load_state_dict(state)
    return out + [harness.record(batch) for batch in resumed]


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("form", ["batch_size=4 over samples", "defaults over batches of 4"])
def test_stateful_dataloader_resumes_exactly_in_both_forms(num_workers, form):
    if form.startswith("defaults"):
        config, options = sample_config(batching={"batch_size": 4}), {}
    else:
        config, options = sample_config(), {"batch_size": 4}
    full = _stateful_run(config, num_workers=num_workers, cut=None, **options)
    assert len(full) >= 6 and all(len(batch[1]) <= 4 for batch in full)
    assert harness.same(_stateful_run(config, num_workers=num_workers, cut=3, **options), full)
