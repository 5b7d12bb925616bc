"""Sharded streaming over ranks and DataLoader workers: exactly once, equal steps, resampling,
epochs, augmentation schedules, fail fast.

Most layouts are checked in one process by opening the real source reader for every (rank,
worker) with an explicit :class:`StreamContext`; shards that exist only in memory
(:class:`MadeUpShards`) keep the Hypothesis properties fast. Real shards go through real
DataLoader workers (persistent ones too), and one test launches ``python -m
torch.distributed.run --nproc_per_node=2`` with 2 workers per rank (gloo, CPU), bounded by a
timeout, so a hang fails instead of blocking.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import torch
import torch.distributed as dist
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from streams import Pipe, Sample, SampleError, ShardSource, StreamContext
from streams.reading import epoch_plan
from streams.reading.epoch_plan import EpochPlanner, ResampledPlan, ShardLayoutWarning, batches_per_rank, split_evenly
from streams.reading.shardlist import epoch_shard_order, shards_for_worker
from streams.reading.tar_records import Record, ShardReadError
from streams.schedule import ProbabilitySchedule
from streams.stages.augment import AugmentStage
from streams.tools.invariants import make_tagged_sample
from streams.tools.shard_writer import write_shards

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
SIZES = (5, 3, 7, 1, 5)  # unequal shards, 21 samples: 2 ranks get 11 each with one repeat
TINY = torch.zeros(1, 1)


# --- helpers ------------------------------------------------------------------------------------

class MadeUpShards(ShardSource):
    """Shards that exist only in memory: shard ``i`` holds ``sizes[i]`` records keyed ``s{i}-{j}``.

    ``counts`` is what the index says (default: the true sizes); with ``indexed=False`` there is
    no index. Keys in ``bad`` fail to decode.
    """

    def __init__(self, sizes: Sequence[int], *, counts: Sequence[int] | None = None, indexed: bool = True,
                 bad: Sequence[str] = (), **options: Any):
        self.sizes = list(sizes)
        self.bad = set(bad)
        urls = [f"https://example.invalid/made-up-{i:03d}.tar" for i in range(len(sizes))]
        given = list(counts) if counts is not None else self.sizes
        super().__init__(urls, sample_counts=given if indexed else None, **options)

    def records(self, shard: int) -> Iterator[Record]:
        for index in range(self.sizes[shard]):
            yield Record(key=f"s{shard}-{index}", index=index, members={}, url=self.urls[shard])

    def decode(self, record: Record, shard: int) -> Sample:
        if record.key in self.bad:
            raise SampleError(f"{record.key} is bad", reason="bad_npy", key=record.key, url=record.url)
        return Sample(record.key, TINY, TINY, torch.zeros(1, dtype=torch.int64), url=record.url,
                      origin=("shard", shard, record.index))


def all_keys(sizes: Sequence[int]) -> collections.Counter:
    return collections.Counter(f"s{i}-{j}" for i, n in enumerate(sizes) for j in range(n))


def open_reader(source: ShardSource, rank: int, world_size: int, worker: int, num_workers: int, *,
                seed: int = 0, epoch: int = 0):
    ctx = StreamContext(seed=seed, epoch=epoch, rank=rank, world_size=world_size, worker=worker,
                        num_workers=num_workers, stage="source")
    return source.open(None, ctx)


def read_layout(source: ShardSource, world_size: int, num_workers: int, **kw: int) -> dict[tuple[int, int], list[str]]:
    """Keys each (rank, worker) yields in one epoch."""
    return {(rank, worker): [s.key for s in open_reader(source, rank, world_size, worker, num_workers, **kw)]
            for rank in range(world_size) for worker in range(num_workers)}


def rank_totals(layout: dict[tuple[int, int], list[str]], world_size: int) -> list[int]:
    return [sum(len(keys) for (rank, _), keys in layout.items() if rank == r) for r in range(world_size)]


def write_uneven_shards(folder: str, sizes: Sequence[int] = SIZES) -> str:
    """Real tar shards ``train-{i}-0.tar`` of the given sizes (and index.json); returns the pattern."""
    for i, n in enumerate(sizes):
        samples = [make_tagged_sample(f"s{i}-{j}", 2, 4, torch.tensor([0, 3, 1])) for j in range(n)]
        write_shards(samples, os.path.join(folder, f"train-{i}-%d.tar"))
    return os.path.join(folder, f"train-{{0..{len(sizes) - 1}}}-0.tar")


@pytest.fixture(scope="module")
def shard_pattern(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_uneven_shards(str(tmp_path_factory.mktemp("shards")))


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the once-per-process warnings anew, and no distributed environment."""
    monkeypatch.setattr(epoch_plan, "_said", set())
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


class TagStage(AugmentStage):
    """A test augmentation: draws a number from the keyed generator and records it."""

    name = "tag"

    def draw(self, sample: Sample, generator: torch.Generator) -> dict[str, Any]:
        return {"value": float(torch.rand((), generator=generator))}

    def apply(self, sample: Sample, params: dict[str, Any]) -> Sample:
        return sample.replace(raw_mel=sample.raw_mel + params["value"])


def epoch_records(loader: Iterator[Sample]) -> list[tuple[str, tuple]]:
    """(key, augmentation records) per sample, in stream order."""
    return [(s.key, tuple(json.dumps(r, sort_keys=True) for r in s.meta.get("augmentations", ()))) for s in loader]


def loader_for(pipe: Pipe, num_workers: int, persistent: bool = False) -> DataLoader:
    return DataLoader(pipe, batch_size=None, num_workers=num_workers, persistent_workers=persistent)


# --- 1. exactly once ------------------------------------------------------------------------------

@pytest.mark.parametrize("world_size,num_workers", [(1, 1), (2, 1), (2, 3), (1, 7), (7, 1), (2, 4), (3, 3), (7, 2)])
def test_exactly_once_with_fewer_equal_and_more_readers_than_shards(world_size: int, num_workers: int) -> None:
    sizes = [4, 1, 3, 2, 5, 2, 3]  # 7 shards: 2*3 < 7, 1*7 == 7, 2*4 > 7 ...
    source = MadeUpShards(sizes)
    for epoch in (0, 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            layout = read_layout(source, world_size, num_workers, epoch=epoch)
        warned = [w for w in caught if "no shard to read" in str(w.message)]
        assert len(warned) == (epoch == 0 and world_size * num_workers > len(sizes))  # once per process
        assert collections.Counter(itertools.chain(*layout.values())) == all_keys(sizes)
        assert sum(1 for keys in layout.values() if not keys) == max(0, world_size * num_workers - len(sizes))


@pytest.mark.filterwarnings("ignore::streams.reading.epoch_plan.ShardLayoutWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 6), min_size=1, max_size=10), world_size=st.integers(1, 4),
       num_workers=st.integers(1, 4), epoch=st.integers(0, 3), shuffle=st.booleans())
def test_exactly_once_property(sizes: list[int], world_size: int, num_workers: int, epoch: int, shuffle: bool) -> None:
    if len(sizes) < world_size or sum(sizes) == 0:
        return
    epoch_plan._said.clear()
    source = MadeUpShards(sizes, indexed=False, shuffle_shards=shuffle)
    layout = read_layout(source, world_size, num_workers, epoch=epoch, seed=3)
    assert collections.Counter(itertools.chain(*layout.values())) == all_keys(sizes)


def test_shards_split_by_rank_first_so_ranks_differ_by_at_most_one_shard() -> None:
    order = epoch_shard_order(10, seed=1, epoch=2)
    per_rank = [sum(len(shards_for_worker(order, r, 3, w, 4)) for w in range(4)) for r in range(3)]
    assert sorted(per_rank) == [3, 3, 4]
    # 4 shards, 2 ranks x 4 workers: every rank still gets 2 shards (workers 2 and 3 get none)
    assert [[len(shards_for_worker(range(4), r, 2, w, 4)) for w in range(4)] for r in range(2)] == [[1, 1, 0, 0]] * 2


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_readers_without_shards_warn_and_the_dataloader_finishes(shard_pattern: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    small = shard_pattern.replace("{0..4}", "{0..2}")  # 3 shards for 2 ranks x 3 workers
    seen: list[str] = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        pipe = Pipe.from_shards(small, seed=5)
        seen += [s.key for s in loader_for(pipe, num_workers=3)]
    assert collections.Counter(seen) == all_keys(SIZES[:3])
    with pytest.warns(ShardLayoutWarning, match=r"rank 0 worker 2 \(of 2 rank\(s\) x 3 worker\(s\)\): no shard "
                                                r"to read \(3 shards for 6 readers\)"):
        list(open_reader(pipe.stages[0], 0, 2, 2, 3))


def test_unequal_ranks_warn_once_per_process() -> None:
    source = MadeUpShards([5, 1, 1], shuffle_shards=False)  # rank 0 reads shards 0 and 2, rank 1 shard 1
    with pytest.warns(ShardLayoutWarning, match="ranks yield 1 to 6 samples") as caught:
        for epoch in range(3):
            read_layout(source, 2, 1, epoch=epoch)
    assert sum("ranks yield" in str(w.message) for w in caught) == 1


# --- 2. equal steps -------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::streams.reading.epoch_plan.ShardLayoutWarning")
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 7), min_size=1, max_size=8), world_size=st.integers(1, 4),
       num_workers=st.integers(1, 3), epoch=st.integers(0, 3), policy=st.sampled_from(["repeat", "drop"]),
       epoch_samples=st.one_of(st.none(), st.integers(1, 30)))
def test_equal_steps_property(sizes: list[int], world_size: int, num_workers: int, epoch: int, policy: str,
                              epoch_samples: int | None) -> None:
    total = sum(sizes)
    if total == 0 or (policy == "drop" and epoch_samples is None and total < world_size):
        return
    epoch_plan._said.clear()
    source = MadeUpShards(sizes, equal_steps=policy, epoch_samples=epoch_samples)
    planner = source.planner
    per_rank = planner.samples_per_rank(world_size)
    expected = epoch_samples if epoch_samples is not None else (
        -(-total // world_size) if policy == "repeat" else total // world_size)
    assert per_rank == expected
    readers = {(r, w): open_reader(source, r, world_size, w, num_workers, epoch=epoch)
               for r in range(world_size) for w in range(num_workers)}
    layout = {where: [s.key for s in reader] for where, reader in readers.items()}
    # every rank the same total, and every worker index the same share on every rank
    assert rank_totals(layout, world_size) == [per_rank] * world_size
    for (_, worker), keys in layout.items():
        assert len(keys) == split_evenly(per_rank, num_workers)[worker]
    # each sample once, except the declared repeats and drops
    counts = collections.Counter(itertools.chain(*layout.values()))
    truth = all_keys(sizes)
    read_twice_or_more = sum(n - 1 for n in counts.values())
    assert read_twice_or_more == planner.repeated_per_epoch(world_size)
    assert sum(readers[w].stats()["repeated"] for w in readers) == planner.repeated_per_epoch(world_size)
    assert len(set(truth) - set(counts)) == (planner.dropped_per_epoch(world_size) if per_rank * world_size < total
                                              else 0)
    assert set(counts) <= set(truth)
    assert all(reader.stats()["refilled"] == 0 for reader in readers.values())


def test_equal_steps_gives_equal_batches_per_rank_with_workers(shard_pattern: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for drop_last in (False, True):
        batches: list[int] = []
        keys: list[str] = []
        for rank in (0, 1):
            monkeypatch.setenv("RANK", str(rank))
            monkeypatch.setenv("WORLD_SIZE", "2")
            pipe = Pipe.from_shards(shard_pattern, seed=2, equal_steps="repeat").batch(3, drop_last=drop_last)
            out = list(loader_for(pipe, num_workers=2))
            batches.append(len(out))
            keys += [k for batch in out for k in batch.keys]
        per_rank = pipe.stages[0].samples_per_rank(2)
        assert per_rank == 11
        assert batches == [batches_per_rank(per_rank, 2, 3, drop_last)] * 2
        if not drop_last:
            counts = collections.Counter(keys)
            assert set(counts) == set(all_keys(SIZES)) and sum(counts.values()) == 22  # one sample twice


def test_equal_steps_refills_skipped_samples_and_keeps_the_budget() -> None:
    sizes = [4, 4, 4]
    bad = ["s0-1", "s1-0", "s1-3", "s2-2"]
    source = MadeUpShards(sizes, bad=bad, equal_steps="drop", on_error="skip")
    readers = {(r, w): open_reader(source, r, 2, w, 2) for r in range(2) for w in range(2)}
    layout = {where: [s.key for s in reader] for where, reader in readers.items()}
    assert rank_totals(layout, 2) == [6, 6]
    assert not set(bad) & set(itertools.chain(*layout.values()))
    assert sum(reader.stats()["refilled"] for reader in readers.values()) == len(bad)


def test_equal_steps_keeps_the_budget_when_the_index_is_wrong() -> None:
    # shard 0 holds 2 samples, its index says 4: damage (a cut download), raised or counted
    short = MadeUpShards([2, 4, 4], counts=[4, 4, 4], equal_steps="repeat", shuffle_shards=False)
    with pytest.raises(ShardReadError, match=r"made-up-000.tar: the tar ends cleanly after 2 sample\(s\) but its "
                                             r"sample count \(index.json or sample_counts\) says 4") as info:
        read_layout(short, 2, 2)
    assert info.value.reason == "truncated_shard"
    short = MadeUpShards([2, 4, 4], counts=[4, 4, 4], equal_steps="repeat", shuffle_shards=False, on_error="skip")
    assert rank_totals(read_layout(short, 2, 2), 2) == [6, 6]
    report = short.skip_report()
    assert report.damaged_shards >= 1 and set(report.by_reason()) == {"truncated_shard"}
    long = MadeUpShards([6, 4, 4], counts=[4, 4, 4], equal_steps="repeat", shuffle_shards=False)  # shard 0 holds 6
    with pytest.warns(ShardLayoutWarning, match=r"made-up-000.tar holds more than the 4 samples"):
        layout = read_layout(long, 1, 1)
    assert rank_totals(layout, 1) == [12] and "s0-4" not in layout[(0, 0)]


def test_an_undercounted_last_shard_warns_too() -> None:
    # the reader's last shard holds 6 samples, its index says 4: the budget ends there, the warning still comes
    last = MadeUpShards([4, 4, 6], counts=[4, 4, 4], equal_steps="repeat", shuffle_shards=False)
    with pytest.warns(ShardLayoutWarning, match=r"made-up-002.tar holds more than the 4 samples"):
        layout = read_layout(last, 1, 1)
    assert rank_totals(layout, 1) == [12] and "s2-4" not in layout[(0, 0)]


def test_equal_steps_gives_up_on_shards_without_usable_samples() -> None:
    source = MadeUpShards([2, 2], bad=["s0-0", "s0-1", "s1-0", "s1-1"], equal_steps="repeat", on_error="skip")
    with pytest.raises(RuntimeError, match="gave no usable sample"):
        list(open_reader(source, 0, 1, 0, 1))


def test_equal_steps_share_shards_when_ranks_outnumber_them() -> None:
    source = MadeUpShards([3, 2], equal_steps="repeat")  # 2 shards, 4 ranks: no rank is left without data
    layout = read_layout(source, 4, 1)
    assert rank_totals(layout, 4) == [2, 2, 2, 2]
    assert set(itertools.chain(*layout.values())) == set(all_keys([3, 2]))


def test_equal_steps_needs_sample_counts() -> None:
    with pytest.raises(ValueError, match=r"no sample count for shard\(s\) https://example.invalid/made-up-000.tar"):
        MadeUpShards([3, 2], indexed=False, equal_steps="repeat")


def test_sample_counts_from_index_file_mapping_or_list(shard_pattern: str) -> None:
    folder = os.path.dirname(shard_pattern)
    from_index = ShardSource(shard_pattern, equal_steps="drop")
    from_file = ShardSource(shard_pattern, equal_steps="drop", sample_counts=os.path.join(folder, "index.json"))
    by_name = ShardSource(shard_pattern, equal_steps="drop",
                          sample_counts={f"train-{i}-0.tar": n for i, n in enumerate(SIZES)})
    by_list = ShardSource(shard_pattern, equal_steps="drop", sample_counts=list(SIZES))
    assert {s.planner.counts for s in (from_index, from_file, by_name, by_list)} == {SIZES}
    with pytest.raises(ValueError, match="5 counts for 4 shards|4 counts for 5 shards"):
        ShardSource(shard_pattern, equal_steps="drop", sample_counts=list(SIZES)[:4])


def test_a_foreign_index_file_matters_only_when_counts_are_needed(tmp_path: Any) -> None:
    pattern = write_uneven_shards(str(tmp_path), sizes=(2, 3))
    (tmp_path / "index.json").write_text(json.dumps({"version": 2, "files": []}))
    assert ShardSource(pattern).planner.counts is None
    with pytest.raises(ValueError, match="is not a shard index"):
        ShardSource(pattern, equal_steps="repeat")


def test_equal_steps_resume_from_the_middle_reproduces_the_rest(shard_pattern: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")  # rank 1's block starts inside a shard

    def make() -> Pipe:
        pipe = Pipe.from_shards(shard_pattern, seed=4, equal_steps="repeat").shuffle(3)
        pipe.set_epoch(1)
        return pipe

    full = [s.key for s in make()]
    for cut in (1, 5, 10):
        pipe = make()
        iterator = iter(pipe)
        head = [next(iterator).key for _ in range(cut)]
        state = json.loads(json.dumps(pipe.state_dict()))
        resumed = make()
        resumed.load_state_dict(state)
        assert head + [s.key for s in resumed] == full


def test_resume_refuses_a_state_from_another_plan(shard_pattern: str) -> None:
    pipe = Pipe.from_shards(shard_pattern, seed=4, equal_steps="repeat")
    iterator = iter(pipe)
    next(iterator)
    state = pipe.state_dict()
    other = Pipe.from_shards(shard_pattern, seed=4, equal_steps="repeat", sample_counts=[5, 3, 7, 1, 6])
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="the saved reading plan differs"):
        next(iter(other))


def test_the_plan_is_logged_at_start(shard_pattern: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="streams.reading.epoch_plan"):
        Pipe.from_shards(shard_pattern, equal_steps="drop")
    assert "rank 0: equal steps (drop): 21 samples in 5 shards over 1 rank(s) -> 21 samples per rank per epoch; " \
           "0 repeated, 0 dropped" in caplog.text


# --- 3. resampled ---------------------------------------------------------------------------------

def test_resampled_without_epoch_samples_is_endless() -> None:
    source = MadeUpShards([3, 2], resampled=True)
    keys = [s.key for s in itertools.islice(open_reader(source, 0, 1, 0, 1), 500)]
    assert len(keys) == 500 and set(keys) == set(all_keys([3, 2]))


def test_resampled_epoch_samples_per_rank_split_between_workers() -> None:
    source = MadeUpShards([3, 2, 6, 1], resampled=True, epoch_samples=10)
    layouts = [read_layout(source, 2, 3, epoch=epoch) for epoch in (0, 1)]
    for layout in layouts:
        assert rank_totals(layout, 2) == [10, 10]
        assert [len(layout[(0, w)]) for w in range(3)] == split_evenly(10, 3) == [4, 3, 3]
    assert layouts[0] != layouts[1]
    assert layouts[0][(0, 0)] != layouts[0][(1, 0)]
    assert layouts[0] == read_layout(source, 2, 3, epoch=0)  # a pure function of (seed, epoch, layout)


def test_resampled_draws_shards_with_replacement_in_proportion_to_their_counts() -> None:
    weighted = ResampledPlan(2, [1, 99], seed=0, epoch=0, rank=0, worker=0, budget=None)
    uniform = ResampledPlan(2, None, seed=0, epoch=0, rank=0, worker=0, budget=None)
    draws = 2000
    small_weighted = sum(weighted.span(k).shard == 0 for k in range(draws)) / draws
    small_uniform = sum(uniform.span(k).shard == 0 for k in range(draws)) / draws
    assert 0 < small_weighted < 0.03
    assert 0.45 < small_uniform < 0.55
    never = ResampledPlan(3, [4, 0, 4], seed=1, epoch=0, rank=0, worker=0, budget=None)
    assert all(never.span(k).shard != 1 for k in range(500))


def test_resampled_resume_from_the_middle_reproduces_the_rest(shard_pattern: str) -> None:
    def make() -> Pipe:
        return Pipe.from_shards(shard_pattern, seed=9, resampled=True, epoch_samples=17).shuffle(4)

    full = [s.key for s in make()]
    assert len(full) == 17
    for cut in (3, 12):
        pipe = make()
        iterator = iter(pipe)
        head = [next(iterator).key for _ in range(cut)]
        resumed = make()
        resumed.load_state_dict(json.loads(json.dumps(pipe.state_dict())))
        assert head + [s.key for s in resumed] == full


# --- 4. epochs ------------------------------------------------------------------------------------

def test_set_epoch_reaches_persistent_workers(shard_pattern: str) -> None:
    pipe = Pipe.from_shards(shard_pattern, seed=11).shuffle(4).then(TagStage(probability=0.5))
    loader = loader_for(pipe, num_workers=2, persistent=True)
    persistent = []
    for epoch in range(3):
        pipe.set_epoch(epoch)
        persistent.append(epoch_records(loader))
    for epoch in range(3):
        fresh = Pipe.from_shards(shard_pattern, seed=11).shuffle(4).then(TagStage(probability=0.5))
        fresh.set_epoch(epoch)
        assert epoch_records(loader_for(fresh, num_workers=2)) == persistent[epoch]
    for a, b in itertools.combinations(persistent, 2):
        assert [key for key, _ in a] != [key for key, _ in b]  # shard order and shuffle buffer
        assert dict(a) != dict(b)  # augmentations
    assert len({tuple(epoch_shard_order(5, 11, e)) for e in range(3)}) > 1


ORDER_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from streams import Pipe
from torch.utils.data import DataLoader
from test_distributed import TagStage, epoch_records
pipe = Pipe.from_shards({pattern!r}, seed=11).shuffle(4).then(TagStage(probability=0.5))
pipe.set_epoch(2)
print(json.dumps(epoch_records(DataLoader(pipe, batch_size=None, num_workers=2))))
"""


def test_epoch_order_is_the_same_across_runs_hash_seeds_and_processes(shard_pattern: str) -> None:
    """Another process, with another string-hash seed and other worker pids, streams the same epoch."""
    hash_seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    done = subprocess.run([sys.executable, "-c", ORDER_SCRIPT.format(tests=TESTS, pattern=shard_pattern)],
                          env={**os.environ, "PYTHONHASHSEED": hash_seed}, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    there = [(key, tuple(records)) for key, records in json.loads(done.stdout.strip().splitlines()[-1])]
    here = Pipe.from_shards(shard_pattern, seed=11).shuffle(4).then(TagStage(probability=0.5))
    here.set_epoch(2)
    assert there == epoch_records(loader_for(here, num_workers=2))
    assert any(records for _, records in there) and any(not records for _, records in there)


# --- 5. augmentation schedules ------------------------------------------------------------------------

def test_schedule_applies_per_epoch_in_every_worker(shard_pattern: str) -> None:
    schedule = ProbabilitySchedule(warmup_epochs=1, kind="linear", decay_epochs=2, end_factor=0.0)
    pipe = Pipe.from_shards(shard_pattern, seed=1).then(TagStage(probability=1.0, schedule=schedule))
    loader = loader_for(pipe, num_workers=2, persistent=True)
    order = {e: epoch_shard_order(len(SIZES), 1, e) for e in range(4)}
    fired_by_worker = []
    for epoch in range(4):
        pipe.set_epoch(epoch)
        fired = collections.Counter()
        for sample in loader:
            worker = next(w for w in range(2) if sample.origin[1] in shards_for_worker(order[epoch], 0, 1, w, 2))
            fired[worker, bool(sample.meta.get("augmentations"))] += 1
        fired_by_worker.append(fired)
    warmup, full, half, off = fired_by_worker  # factors 0, 1, 0.5, 0
    assert not warmup[0, True] and not warmup[1, True]
    assert not full[0, False] and not full[1, False] and full[0, True] and full[1, True]
    assert half[0, True] and half[1, True] and (half[0, False] or half[1, False])
    assert not off[0, True] and not off[1, True]


def test_config_wires_schedule_and_source_modes(tmp_path: Any, shard_pattern: str) -> None:
    from pipelines import build_stages, load_config

    folder = os.path.dirname(shard_pattern)
    config_path = tmp_path / "ddp.json"
    config_path.write_text(json.dumps({
        "source": {"urls": shard_pattern, "equal_steps": "drop", "sample_counts": os.path.relpath(
            os.path.join(folder, "index.json"), tmp_path)},
        "augmentation": {"enabled": True, "warmup_epochs": 2,
                         "schedule": {"kind": "linear", "decay_epochs": 4, "end_factor": 0.5},
                         "gain": {"enabled": True, "probability": 0.8}},
    }))
    config = load_config(config_path)
    stages = build_stages(config)
    source = stages[0]
    assert source.planner.equal_steps == "drop" and source.planner.counts == SIZES
    assert source.samples_per_rank(2) == 10
    augmentations = [stage for stage in stages if isinstance(stage, AugmentStage)]
    assert augmentations
    for stage in augmentations:
        assert [stage.probability_at(e) for e in (0, 1, 2, 4, 6, 9)] == pytest.approx([0, 0, 0.8, 0.6, 0.4, 0.4])
    resampled = load_config({"source": {"urls": shard_pattern, "resampled": True, "epoch_samples": 7}})
    assert build_stages(resampled)[0].samples_per_rank(3) == 7


# --- 6. fail fast ---------------------------------------------------------------------------------

@pytest.mark.parametrize("urls,options,message", [
    ("{folder}/nothing-*.tar", {}, "no shards matched the pattern"),
    ("{folder}/missing-{{0..2}}.tar", {}, r"none of the 3 shard file\(s\) exist"),
    (["{folder}/train-0-0.tar", "{folder}/gone.tar"], {}, r"1 of the 2 shard file\(s\) do not exist \(.*gone.tar\)"),
    ("s3://bucket/train-0.tar", {}, "the scheme is not one of"),
    (["{folder}/train-0-0.tar", "{folder}/train-0-0.tar"], {}, "listed more than once"),
    ("{folder}/train-{{0..4}}-0.tar", {"epoch_samples": 10}, "needs resampled=True or equal_steps"),
    ("{folder}/train-{{0..4}}-0.tar", {"equal_steps": "sometimes"}, "equal_steps must be None"),
    ("{folder}/train-{{0..4}}-0.tar", {"resampled": True, "equal_steps": "repeat"}, "leave equal_steps unset"),
    ("{folder}/train-{{0..4}}-0.tar", {"resampled": True, "epoch_samples": 0}, r"epoch_samples must be an int >= 1"),
])
def test_impossible_layouts_fail_at_construction(shard_pattern: str, urls: str | list[str], options: dict,
                                                  message: str) -> None:
    folder = os.path.dirname(shard_pattern)
    urls = urls.format(folder=folder) if isinstance(urls, str) else [u.format(folder=folder) for u in urls]
    with pytest.raises(ValueError, match=message):
        Pipe.from_shards(urls, **options)


def test_a_rank_without_data_fails_at_start(shard_pattern: str, monkeypatch: pytest.MonkeyPatch) -> None:
    small = shard_pattern.replace("{0..4}", "{0..2}")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ValueError, match=r"3 shard\(s\) for 4 ranks: rank 3 would get no data"):
        Pipe.from_shards(small)
    with pytest.raises(ValueError, match=r"equal_steps=\"drop\" leaves 0 samples per rank"):
        Pipe.from_shards(small, equal_steps="drop", sample_counts=[1, 1, 1])
    assert Pipe.from_shards(small, equal_steps="repeat").stages[0].samples_per_rank() == 4
    assert Pipe.from_shards(small, resampled=True, epoch_samples=3).stages[0].samples_per_rank() == 3
    monkeypatch.setenv("WORLD_SIZE", "1")
    built_alone = ShardSource(small)  # then iterated under 4 ranks: fails when the pass opens
    with pytest.raises(ValueError, match="would get no data"):
        open_reader(built_alone, 0, 4, 0, 1)


def test_plan_helpers() -> None:
    assert split_evenly(7, 3) == [3, 2, 2] and split_evenly(0, 2) == [0, 0]
    assert batches_per_rank(11, 2, 3) == 4 and batches_per_rank(11, 2, 3, drop_last=True) == 3
    assert batches_per_rank(11, 0, 3) == 4  # num_workers=0: the main process reads everything
    planner = EpochPlanner(3, [4, 4, 3], equal_steps="repeat")
    assert (planner.samples_per_rank(4), planner.repeated_per_epoch(4), planner.dropped_per_epoch(4)) == (3, 1, 0)
    assert "11 samples in 3 shards over 4 rank(s) -> 3 samples per rank per epoch; 1 repeated, 0 dropped" in \
        planner.summary(4)


# --- the real thing: torchrun, 2 ranks x 2 workers, gloo ---------------------------------------------------

def run_bounded(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group; on timeout kill the whole group and fail."""
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{' '.join(command)} did not finish in {timeout} s (a hang?):\n{output[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output, None)


gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                          reason="torch.distributed with the gloo backend is not available")


@gloo
def test_torchrun_two_ranks_two_workers(shard_pattern: str, tmp_path: Any) -> None:
    out = tmp_path / "report.json"
    small = shard_pattern.replace("{0..4}", "{0..2}")  # 3 shards for 2 ranks x 2 workers: one worker idles
    done = run_bounded([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        os.path.join(TESTS, "torchrun_job.py"), shard_pattern, small, str(out)], timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]
    report = json.loads(out.read_text())
    assert report["world_size"] == 2
    assert collections.Counter(itertools.chain(*report["exactly_once"])) == all_keys(SIZES)
    assert collections.Counter(itertools.chain(*report["exactly_once_small"])) == all_keys(SIZES[:3])
    per_epoch = list(zip(*report["equal_steps"]))  # [(rank 0, rank 1) of epoch 0, ...]
    assert len(per_epoch) == 2
    for ranks in per_epoch:
        assert [r["steps"] for r in ranks] == [ranks[0]["expected_steps"]] * 2 == [4, 4]  # 11 samples: 6+5
        keys = collections.Counter(itertools.chain(*(r["keys"] for r in ranks)))
        assert set(keys) == set(all_keys(SIZES)) and sum(keys.values()) == 22  # 21 samples, one repeated
    assert per_epoch[0][0]["keys"] != per_epoch[1][0]["keys"]
    assert [r["steps"] for r in report["resampled"]] == [5, 5]  # 9 samples per rank: workers 5+4, batches of 2
    assert [len(r["keys"]) for r in report["resampled"]] == [9, 9]


@gloo
def test_readme_ddp_example_runs(shard_pattern: str, tmp_path: Any) -> None:
    config = tmp_path / "ddp.json"
    config.write_text(json.dumps({"source": {"urls": shard_pattern}, "batching": {"batch_size": 4},
                                  "augmentation": {"enabled": True, "gain": {"enabled": True}}}))
    done = run_bounded([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        os.path.join(ROOT, "examples", "ddp_train.py"), str(config), "--workers", "1",
                        "--epochs", "2"], timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "11 samples and 3 batches per rank per epoch" in done.stdout
    assert "epoch 1: 3 steps per rank" in done.stdout


def test_many_ranks_without_equal_steps_warn_once_what_to_set(shard_pattern: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's DDP loop over a config without ``equal_steps`` used to end in a peer's closed
    connection; the source now says so when it is built on more than one rank."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.warns(ShardLayoutWarning, match=r"without equal_steps or resampled.*set source\.equal_steps"):
        Pipe.from_shards(shard_pattern, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Pipe.from_shards(shard_pattern, seed=0)  # once per process
        epoch_plan._said.clear()
        Pipe.from_shards(shard_pattern, seed=0, equal_steps="repeat")
        Pipe.from_shards(shard_pattern, seed=0, resampled=True, epoch_samples=4)
    monkeypatch.setenv("WORLD_SIZE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Pipe.from_shards(shard_pattern, seed=0)
