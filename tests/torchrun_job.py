"""A job for ``python -m torch.distributed.run --nproc_per_node=2``: the DDP guarantees, for real.

Launched by ``tests/test_distributed.py`` (gloo on CPU, 2 DataLoader workers per rank). Each phase
runs on every rank; rank 0 writes what all ranks saw to ``OUT`` (JSON) for the test to check:

* ``exactly_once``: one epoch per shard set, keys gathered from every rank (no collectives while
  streaming, since ranks may differ in length);
* ``equal_steps``: a DistributedDataParallel model trained for 2 epochs with persistent workers
  and ``set_epoch``: every step is a gradient all_reduce, so unequal batch counts would hang
  (the test's timeout turns that into a failure);
* ``resampled``: one epoch of a resampled stream with an all_reduce per batch.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/torchrun_job.py
SHARD_PATTERN SMALL_PATTERN OUT``.
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from streams import Pipe
from streams.reading.epoch_plan import batches_per_rank

__all__ = ["main"]

WORKERS = 2
BATCH_SIZE = 3
SEED = 7


def gather(value: object) -> list:
    """``value`` from every rank, in rank order."""
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def exactly_once(pattern: str) -> list[list[str]]:
    pipe = Pipe.from_shards(pattern, seed=SEED)
    keys = [sample.key for sample in DataLoader(pipe, batch_size=None, num_workers=WORKERS)]
    return gather(keys)


def equal_steps(pattern: str, epochs: int) -> list[dict]:
    pipe = Pipe.from_shards(pattern, seed=SEED, equal_steps="repeat").batch(BATCH_SIZE)
    n_mels = next(iter(Pipe.from_shards(pattern))).n_mels
    model = DistributedDataParallel(torch.nn.Linear(n_mels, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(pipe, batch_size=None, num_workers=WORKERS, persistent_workers=True)
    expected = batches_per_rank(pipe.stages[0].samples_per_rank(), WORKERS, BATCH_SIZE)
    report = []
    for epoch in range(epochs):
        pipe.set_epoch(epoch)
        steps, keys = 0, []
        for batch in loader:
            loss = model(batch.raw_mel.float().mean(dim=-1)).pow(2).mean()  # (B, n_mels) -> (B, 1)
            optimizer.zero_grad()
            loss.backward()  # a gradient all_reduce across ranks: unequal step counts would hang here
            optimizer.step()
            steps += 1
            keys.extend(batch.keys)
        report.append({"epoch": epoch, "steps": steps, "expected_steps": expected, "keys": keys})
    return gather(report)


def resampled(pattern: str, epoch_samples: int) -> list[dict]:
    pipe = Pipe.from_shards(pattern, seed=SEED, resampled=True, epoch_samples=epoch_samples).batch(2)
    steps, keys = 0, []
    for batch in DataLoader(pipe, batch_size=None, num_workers=WORKERS):
        flag = torch.ones(1)
        dist.all_reduce(flag)  # every rank must take part in every step
        steps += 1
        keys.extend(batch.keys)
    return gather({"steps": steps, "keys": keys})


def main(pattern: str, small_pattern: str, out: str) -> None:
    dist.init_process_group("gloo")
    report = {
        "world_size": dist.get_world_size(),
        "exactly_once": exactly_once(pattern),
        "exactly_once_small": exactly_once(small_pattern),
        "equal_steps": equal_steps(pattern, epochs=2),
        "resampled": resampled(pattern, epoch_samples=9),
    }
    if dist.get_rank() == 0:
        with open(out, "w") as f:
            json.dump(report, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
