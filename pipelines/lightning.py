"""PyTorch Lightning: a callback that gives each epoch its own shard order and augmentations.

Lightning calls ``set_epoch`` on a DataLoader's *sampler* each epoch, never on an iterable
dataset, so a pipe handed to Lightning would replay epoch 0's order and augmentations every
epoch, silently. :class:`SetEpoch` calls ``pipe.set_epoch(trainer.current_epoch)`` at the start
of every training epoch (before Lightning iterates the loader, so fresh and persistent workers
both see it). Lightning is an optional dependency: import this module only where you use it.

    trainer = lightning.Trainer(callbacks=[SetEpoch(pipe)], use_distributed_sampler=False, ...)
    trainer.fit(model, DataLoader(pipe, batch_size=None, num_workers=2))

``use_distributed_sampler=False``: the pipe splits its shards across ranks and workers itself.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback

__all__ = ["SetEpoch"]


class SetEpoch(Callback):
    """Calls ``set_epoch(trainer.current_epoch)`` on each of ``pipes`` (a ``Pipe`` or an
    ``AugmentedDataset``) when a training epoch starts."""

    def __init__(self, *pipes: Any):
        if not pipes:
            raise TypeError("SetEpoch needs the pipe(s) the trainer's DataLoaders read: SetEpoch(pipe)")
        for pipe in pipes:
            if not callable(getattr(pipe, "set_epoch", None)):
                raise TypeError(f"SetEpoch takes pipes or datasets with set_epoch ({type(pipe).__name__} given)")
        self.pipes = pipes

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        for pipe in self.pipes:
            pipe.set_epoch(trainer.current_epoch)
