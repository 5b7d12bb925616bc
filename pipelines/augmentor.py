"""``Augmentor``: the config's augmentation block, one sample at a time (for map-style datasets).

The plan's integration path: a map-style dataset whose ``__getitem__`` calls an augmentor behind
an ``augment`` switch. :class:`Augmentor` gives each sample what :func:`~pipelines.build.build_pipe`
gives it in a stream: the same stages in the same order, with the same names and seed, so
``augmentor(sample, epoch=e)`` equals the sample the pipe yields for that key in epoch ``e``
(tensors and ``meta["augmentations"]``), whatever worker reads it.

Concatenation needs a partner, so a single sample cannot be concatenated: ``augmentor(sample)``
runs the single-sample stages only (crop before; chunk shuffle, gain, channel dropout,
SpecAugment, noise after), and :meth:`Augmentor.pair` makes a pair as the pipe does: each part
through the stages before concatenation (crop), :func:`~streams.stages.pairing.concatenate_samples`,
then the stages after it on the pair. Which partner, and when, is the caller's choice;
:class:`pipelines.dataset.AugmentedDataset` draws it by a keyed index.
"""

from __future__ import annotations

from streams.sample import Sample
from streams.stages.augment_chain import AugmentChain
from streams.stages.pairing import PairStage, concatenate_samples

from .build import build_augmentations
from .config import AUGMENTATION_ORDER, Config

__all__ = ["Augmentor"]


class Augmentor:
    """The single-sample augmentations of a config, in the pipe's order, with its keyed randomness.

    Args:
        before: the stages before concatenation (crop), as an :class:`AugmentChain`.
        after: the stages after it (chunk shuffle, gain, channel dropout, SpecAugment, noise).
        pairing: ``(name, PairStage)`` when the config enables concatenation, else ``None``.

    Build it with :meth:`from_config`. ``augmentor(sample, epoch=e)`` → the augmented sample
    (a new one; the input is unchanged); :meth:`pair` → the concatenated, augmented pair.

    Examples:
        >>> from pipelines.config import AugmentationConfig, Config
        >>> from streams.stages.gain import GainSettings
        >>> import torch
        >>> config = Config(seed=1, augmentation=AugmentationConfig(
        ...     enabled=True, gain=GainSettings(enabled=True, probability=1.0)))
        >>> augmentor = Augmentor.from_config(config)
        >>> augmentor.names
        ('gain',)
        >>> raw = torch.ones(2, 4)
        >>> out = augmentor(Sample("a", raw, raw[:, :2], torch.tensor([0, 1])), epoch=0)
        >>> out.meta["augmentations"][0]["stage"]
        'gain'
    """

    def __init__(self, before: AugmentChain, after: AugmentChain, pairing: tuple[str, PairStage] | None = None):
        if before.seed != after.seed:
            raise ValueError(f"before and after must share one seed ({before.seed} and {after.seed} given)")
        if pairing is not None and not (isinstance(pairing, tuple) and len(pairing) == 2
                                        and isinstance(pairing[1], PairStage)):
            raise ValueError(f"pairing must be None or a (name, PairStage) pair ({pairing!r} given)")
        self.before = before
        self.after = after
        self.pairing = pairing
        self.seed = before.seed

    @classmethod
    def from_config(cls, config: Config) -> Augmentor:
        """The augmentor of ``config``'s ``augmentation`` block and ``seed`` (its ``source`` is not
        read: a config made in code without shards works). With augmentation off it changes nothing."""
        stages = build_augmentations(config)
        pair = stages.pop("concatenation", None)
        pair_at = AUGMENTATION_ORDER.index("concatenation")
        before = [(stage.name, stage) for block, stage in stages.items() if AUGMENTATION_ORDER.index(block) < pair_at]
        after = [(stage.name, stage) for block, stage in stages.items() if AUGMENTATION_ORDER.index(block) > pair_at]
        pairing = (pair.name, pair) if pair is not None else None
        return cls(AugmentChain(before, seed=config.seed), AugmentChain(after, seed=config.seed), pairing)

    @property
    def names(self) -> tuple[str, ...]:
        """The single-sample stages' names, in order."""
        return self.before.names + self.after.names

    def __call__(self, sample: Sample, *, epoch: int = 0) -> Sample:
        """``sample`` through every single-sample stage (concatenation excluded; see :meth:`pair`)."""
        return self.after(self.before(sample, epoch=epoch), epoch=epoch)

    def pair(self, first: Sample, second: Sample, *, epoch: int = 0) -> Sample:
        """``first`` and ``second`` concatenated as the pipe's pairing stage would, with the stages
        before concatenation applied to each part and those after it to the pair."""
        name = self.pairing[0] if self.pairing is not None else PairStage.name
        joined = concatenate_samples(self.before(first, epoch=epoch), self.before(second, epoch=epoch), stage=name)
        return self.after(joined, epoch=epoch)

    def __repr__(self) -> str:
        pairing = self.pairing[0] if self.pairing is not None else None
        return f"Augmentor(seed={self.seed}, before={list(self.before.names)}, pairing={pairing!r}, " \
               f"after={list(self.after.names)})"
