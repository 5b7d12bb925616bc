"""A DistributedDataParallel training loop over a configured pipe (the README's DDP example).

A toy pointer model (one bilinear layer scoring every raw frame for every edit frame) trains on
the configured pipeline, one process per rank, several DataLoader workers each. Run it on one
machine with two ranks (gloo on CPU):

    python -m torch.distributed.run --standalone --nproc_per_node=2 examples/ddp_train.py \\
        pipelines/configs/full.json --workers 2 --epochs 2

On several machines, run the same command on each with ``--nnodes``, ``--node_rank`` and
``--rdzv-endpoint`` instead of ``--standalone``; on GPUs pass ``--backend nccl``.

The config's ``source.equal_steps`` (``"repeat"`` here unless the config says otherwise) makes
every rank yield the same number of samples, and with fixed-size batches the same number of
batches, so every rank takes part in every gradient all_reduce. Batching by frame budget or
concatenating samples makes batch counts differ between ranks; the loop then runs under
``model.join()``, DDP's context for uneven inputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from pipelines import Config, build_pipe, load_config
from streams import IGNORE_INDEX, Batch, Pipe
from streams.reading.epoch_plan import batches_per_rank

__all__ = ["BilinearPointer", "ddp_ready", "main", "pointer_loss", "uneven_batches"]


class BilinearPointer(torch.nn.Module):
    """Scores raw frame ``r`` for edit frame ``e`` as ``edit[:, e] @ W @ raw[:, r]``."""

    def __init__(self, n_mels: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.eye(n_mels) / n_mels)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Pointer logits ``(B, T_edit, T_raw)``, ``-inf`` on padded raw frames."""
        scores = torch.einsum("bme,mn,bnr->ber", batch.edit_mel.float(), self.weight, batch.raw_mel.float())
        return scores.masked_fill(~batch.raw_mask[:, None, :], float("-inf"))


def pointer_loss(logits: torch.Tensor, pointers: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(B, T_edit, T_raw)`` logits against ``(B, T_edit)`` pointers (padding ignored)."""
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), pointers, ignore_index=IGNORE_INDEX)


def ddp_ready(config: Config) -> Config:
    """``config`` with equal steps per rank unless it already chose equal steps or resampling."""
    if config.source.equal_steps is not None or config.source.resampled:
        return config
    return dataclasses.replace(config, source=dataclasses.replace(config.source, equal_steps="repeat"))


def uneven_batches(config: Config) -> bool:
    """Whether ranks may yield different numbers of batches despite equal samples per rank."""
    pairing = config.augment and config.augmentation.concatenation.enabled
    return config.batching.max_frames is not None or pairing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="pipeline config (JSON)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers per rank")
    parser.add_argument("--backend", default="gloo", help="gloo (CPU) or nccl (GPU)")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    config = ddp_ready(load_config(args.config))
    if config.batching.batch_size is None and config.batching.max_frames is None:
        parser.error("this loop trains on batches: set batching.batch_size (or max_frames) in the config")
    if config.source.resampled and config.source.epoch_samples is None:
        parser.error("a resampled stream without source.epoch_samples never ends an epoch; set epoch_samples")

    dist.init_process_group(args.backend)  # RANK, WORLD_SIZE, MASTER_ADDR... come from torchrun
    rank, world_size = dist.get_rank(), dist.get_world_size()
    on_gpu = args.backend == "nccl"
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if on_gpu else torch.device("cpu")
    pipe = build_pipe(config)
    source = pipe.source
    n_mels = next(iter(Pipe([source], seed=config.seed))).n_mels
    model = DistributedDataParallel(BilinearPointer(n_mels).to(device), device_ids=[device.index] if on_gpu else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(pipe, batch_size=None, num_workers=args.workers, persistent_workers=args.workers > 0,
                        pin_memory=on_gpu)
    if rank == 0 and config.batching.batch_size is not None:
        steps = batches_per_rank(source.samples_per_rank(world_size), args.workers, config.batching.batch_size,
                                 config.batching.drop_last)
        print(f"{world_size} ranks x {args.workers} workers: {source.samples_per_rank(world_size)} samples and "
              f"{steps} batches per rank per epoch", flush=True)

    for epoch in range(args.epochs):
        pipe.set_epoch(epoch)  # new shard order, shuffle and augmentations, also in persistent workers
        steps, total = 0, torch.zeros(2, device=device)
        with model.join(enable=uneven_batches(config)):
            for batch in loader:
                batch = batch.to(device, non_blocking=True)
                loss = pointer_loss(model(batch), batch.pointers)
                optimizer.zero_grad()
                loss.backward()  # the gradient all_reduce: every rank must get here equally often
                optimizer.step()
                steps += 1
                total += torch.tensor([loss.item() * len(batch), len(batch)], device=device)
        dist.all_reduce(total)
        if rank == 0:
            print(f"epoch {epoch}: {steps} steps per rank, mean loss {total[0] / total[1]:.4f} over "
                  f"{int(total[1])} samples", flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
