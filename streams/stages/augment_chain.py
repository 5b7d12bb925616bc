"""Augmentation stages applied to one sample at a time, as a pipe applies them, without a pipe.

A map-style dataset (``__getitem__``) has no stream to put stages in, but its samples can get the
very augmentations a pipe would give them: an :class:`~streams.stages.augment.AugmentStage`'s
result depends only on (seed, epoch, the stage's name in the pipe, the sample's key), never on
order, worker or rank. :class:`AugmentChain` holds ``(name, stage)`` pairs and runs
:meth:`~streams.stages.augment.AugmentStage.augment` of each in turn.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..sample import Sample
from .augment import AugmentStage

__all__ = ["AugmentChain"]


class AugmentChain:
    """Apply augmentation stages to one sample, in order, with the pipe's keyed randomness.

    Args:
        stages: ``(name, stage)`` pairs in order; ``name`` is the stage's name in the pipe
            (``pipe.stage_names``), which enters its random draws.
        seed: the pipe's seed.

    ``chain(sample, epoch=e)`` is what a pipe with these stages (same names and seed) yields for
    that sample in epoch ``e``: same tensors, same ``meta["augmentations"]`` records. The input
    is never changed. With no stage it returns the sample itself.

    >>> import torch
    >>> from streams.stages.gain import GainStage
    >>> raw = torch.ones(2, 4)
    >>> chain = AugmentChain([("gain", GainStage(probability=1.0))], seed=0)
    >>> out = chain(Sample("a", raw, raw[:, :2], torch.tensor([0, 1])), epoch=3)
    >>> [record["stage"] for record in out.meta["augmentations"]], chain.names
    (['gain'], ('gain',))
    """

    def __init__(self, stages: Iterable[tuple[str, AugmentStage]], *, seed: int = 0):
        self.stages = tuple(stages)
        for entry in self.stages:
            if (not isinstance(entry, tuple) or len(entry) != 2 or not isinstance(entry[0], str)
                    or not isinstance(entry[1], AugmentStage)):
                raise ValueError(f"AugmentChain takes (name, AugmentStage) pairs ({entry!r} given)")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int ({seed!r} given)")
        self.seed = seed

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.stages)

    def __call__(self, sample: Sample, *, epoch: int = 0) -> Sample:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int ({epoch!r} given)")
        for name, stage in self.stages:
            sample = stage.augment(sample, seed=self.seed, epoch=epoch, stage=name)
        return sample

    def __repr__(self) -> str:
        return f"AugmentChain(seed={self.seed}, stages={list(self.names)})"
