"""Resuming mid-epoch with torchdata's StatefulDataLoader reproduces the uninterrupted stream.

Every case runs the whole configured pipe (crop, shuffle buffer, pairing buffer, chunk shuffle,
spectral augmentations, batching) through :mod:`tests.resume_harness`.
"""

from __future__ import annotations

import copy
import gc
import json
import os
import subprocess
import sys

import pytest
import torch

from pipelines import build_pipe, load_config
from streams import Pipe
from streams.pipe import STATE_VERSION

from . import resume_harness as harness
from .conftest import DEMO_URLS, REPO


def full_config(batching: dict) -> dict:
    with open(os.path.join(REPO, "pipelines", "configs", "full.json")) as f:
        config = json.load(f)
    config["source"]["urls"] = DEMO_URLS
    config["augmentation"]["concatenation"].update(enabled=True, probability=0.5, buffer_size=4)
    config["augmentation"]["crop"].update(min_len=200, max_len=800)
    config["augmentation"]["chunk_shuffle"].update(chunk_size=300)
    config["shuffle"] = {"buffer_size": 5}
    config["batching"] = batching
    return config


FIXED = full_config({"batch_size": 2})
BUDGET = full_config({"max_frames": 6000, "bucket_buffer": 6})


def maker(config: dict):
    loaded = load_config(copy.deepcopy(config))
    return lambda: build_pipe(loaded)


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("config", [FIXED, BUDGET], ids=["fixed", "frame_budget"])
def test_resume_at_start_middle_and_end_matches_uninterrupted(config, num_workers):
    make = maker(config)
    full = harness.full_run(make, num_workers=num_workers)
    assert len(full) >= 4
    for cut in (0, len(full) // 2, len(full)):
        resumed = harness.interrupted_run(make, [cut], num_workers=num_workers)
        assert harness.same(resumed, full), f"resume after {cut} of {len(full)} items differs"


@pytest.mark.parametrize("num_workers", [0, 2])
def test_two_resumes_in_one_epoch(num_workers):
    make = maker(FIXED)
    full = harness.full_run(make, num_workers=num_workers, epoch=1)
    cuts = [len(full) // 3, 2 * len(full) // 3]
    assert harness.same(harness.interrupted_run(make, cuts, num_workers=num_workers, epoch=1), full)


@pytest.mark.parametrize("persistent_workers", [False, True])
def test_resume_in_a_later_epoch_with_and_without_persistent_workers(persistent_workers):
    make = maker(FIXED)
    pipe = make()
    loader = harness.loader_for(pipe, 2, persistent_workers)
    for epoch in range(2):  # epoch 0 complete, then part of epoch 1
        pipe.set_epoch(epoch)
        items = []
        for item in loader:
            items.append(harness.record(item))
            if epoch == 1 and len(items) == 3:
                break
    state = harness.checkpoint(loader.state_dict())
    expected = harness.full_run(make, num_workers=2, epoch=1)
    assert harness.same(items, expected[:3])
    resumed_pipe = make()
    resumed_pipe.set_epoch(1)
    resumed = harness.loader_for(resumed_pipe, 2, persistent_workers)
    resumed.load_state_dict(state)
    rest = [harness.record(x) for x in resumed]
    assert harness.same(items + rest, expected)


def test_state_is_small_and_tensor_free():
    make = maker(BUDGET)
    pipe = make()
    iterator = iter(pipe)
    for _ in range(3):
        next(iterator)
    state = pipe.state_dict()
    text = json.dumps(state)  # positions, RNG states and origins only: JSON-serialisable
    assert len(text) < 20_000
    assert "buffer" in json.dumps(state["stages"])


def test_layout_change_is_refused_unless_the_epoch_restarts():
    make = maker(FIXED)
    loader = harness.loader_for(make(), 2)
    iterator = iter(loader)
    next(iterator)
    worker_state = harness.checkpoint(loader.state_dict())
    # worker 0's pipe state, loaded where there is no DataLoader worker: another layout
    pipe_state = worker_state["_snapshot"]["_worker_snapshots"]["worker_0"]["dataset_state"]
    pipe = make()
    pipe.load_state_dict(pipe_state)
    with pytest.raises(ValueError, match="restart_epoch=True"):
        next(iter(pipe))
    pipe = make()
    pipe.load_state_dict(pipe_state, restart_epoch=True)
    restarted = [harness.record(x) for x in pipe]
    fresh = make()
    fresh.set_epoch(pipe_state["epoch"])
    assert harness.same(restarted, [harness.record(x) for x in fresh])


def test_state_from_another_pipe_is_refused():
    pipe = maker(FIXED)()
    iterator = iter(pipe)
    next(iterator)
    state = pipe.state_dict()
    other = Pipe.from_shards(DEMO_URLS).batch(2)
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="same config"):
        next(iter(other))


RESUME_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from tests import resume_harness as harness
from tests.test_resume import maker, FIXED
make = maker(FIXED)
pipe = make()
loader = harness.loader_for(pipe, 2)
loader.load_state_dict(torch.load({state!r}, weights_only=False))
torch.save([harness.record(x) for x in loader], {out!r})
"""


def test_resume_in_a_fresh_process(tmp_path):
    make = maker(FIXED)
    full = harness.full_run(make, num_workers=2)
    loader = harness.loader_for(make(), 2)
    iterator = iter(loader)
    head = [harness.record(next(iterator)) for _ in range(len(full) // 2)]
    torch.save(loader.state_dict(), tmp_path / "state.pt")
    del iterator, loader
    script = RESUME_SCRIPT.format(tests=REPO, state=str(tmp_path / "state.pt"), out=str(tmp_path / "rest.pt"))
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, timeout=180)
    rest = torch.load(tmp_path / "rest.pt", weights_only=False)
    assert harness.same(head + rest, full)


def _pipe_state_after(pipe: Pipe, items: int) -> dict:
    iterator = iter(pipe)
    for _ in range(items):
        next(iterator)
    return harness.checkpoint(pipe.state_dict())


def test_a_loaded_state_serves_one_pass_then_set_epoch_moves_on_also_with_workers():
    from torch.utils.data import DataLoader

    make = maker(FIXED)
    state = _pipe_state_after(make(), 2)  # saved in epoch 0, in-process
    pipe = make()
    pipe.load_state_dict(state, restart_epoch=True)  # (the layout differs from a worker's)
    loader = DataLoader(pipe, batch_size=None, num_workers=2)  # workers pickled afresh each epoch
    for epoch in range(3):
        pipe.set_epoch(epoch)
        got = [harness.record(x) for x in loader]
        assert harness.same(got, harness.full_run(make, num_workers=2, epoch=epoch)), epoch


def test_restart_epoch_restarts_even_with_the_same_layout():
    make = maker(FIXED)
    state = _pipe_state_after(make(), 3)
    pipe = make()
    pipe.load_state_dict(state, restart_epoch=True)
    assert harness.same([harness.record(x) for x in pipe], harness.full_run(make, num_workers=0))


def test_a_state_saved_at_the_end_of_an_epoch_then_set_epoch_gives_the_next_epoch():
    make = maker(FIXED)
    pipe = make()
    list(pipe)
    state = harness.checkpoint(pipe.state_dict())
    resumed = make()
    resumed.load_state_dict(state)
    assert list(iter(resumed)) == []  # the saved epoch has nothing left
    resumed.load_state_dict(state)
    resumed.set_epoch(1)
    assert harness.same([harness.record(x) for x in resumed], harness.full_run(make, num_workers=0, epoch=1))


def test_a_state_with_another_seed_or_missing_keys_is_refused():
    make = maker(FIXED)
    state = _pipe_state_after(make(), 1)
    other = Pipe(make().stages, seed=123)
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="seed 0 but this pipe has seed 123"):
        next(iter(other))
    with pytest.raises(ValueError, match=r"missing \['layout', 'finished', 'stages'\]"):
        make().load_state_dict({"version": STATE_VERSION, "epoch": 0, "seed": 0})


def _open_shards() -> int:
    """How many file descriptors of this process are open on a .tar file."""
    directory = f"/proc/{os.getpid()}/fd"
    count = 0
    for fd in os.listdir(directory):
        try:
            count += os.readlink(os.path.join(directory, fd)).endswith(".tar")
        except OSError:
            continue
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to list open files")
def test_an_abandoned_pass_closes_its_shards():
    gc.collect()  # shards left open by earlier tests' pipes close when those are collected: not mid-test
    gc.disable()
    try:
        _abandon_and_count()
    finally:
        gc.enable()


def _abandon_and_count():
    pipe = maker(FIXED)()
    before = _open_shards()
    iterator = iter(pipe)
    next(iterator)
    assert _open_shards() == before + 1  # a shard is open mid-pass
    pipe.close()
    assert _open_shards() == before
    iterator = iter(pipe)
    next(iterator)
    iter(pipe)  # a new pass closes the abandoned one (and opens nothing before its first item)
    assert _open_shards() == before
