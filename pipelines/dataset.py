"""``AugmentedDataset``: a map-style dataset over samples held in memory, augmented per item.

For small sets (the demo's 24 samples, a few thousand short ones) and for code built around
``__getitem__``: ``DataLoader(dataset, shuffle=True, batch_size=N)`` works as is; N samples are
padded into a :class:`~streams.stages.collate.Batch` by ``default_collate`` (see
:mod:`streams.stages.collate`). With ``augment=True`` each item goes through the config's
:class:`~pipelines.augmentor.Augmentor`: the same augmentations the streaming pipe gives that
sample in that epoch; ``augment=False`` returns samples as read.

Concatenation: a map-style item has no buffer, so it is given one. Item ``i`` becomes a pair with
chance ``p / (2 - p)`` (``p`` the configured probability after the schedule; so a fraction ``p``
of the samples served are halves of pairs, as in the pipe; :func:`~streams.stages.pairing.lead_pairing_chance`),
decided by a hash of (seed, epoch, stage name, key); a generator keyed the same way draws
``buffer_size - 1`` other samples, and the pipe's rule (:func:`~streams.stages.pairing.choose_partner`)
picks the partner among them. The pair is ``augmentor.pair(item, partner)``: item first. The
dataset's length stays the number of samples: each is served once as a first part, plus partners.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from torch.utils.data import Dataset

from streams import Pipe
from streams.checks import check_int
from streams.origin import MemoryOrigin
from streams.pipe import shared_epoch_cell
from streams.reading.decode import decode_record
from streams.reading.tar_records import Record
from streams.sample import Sample, check_sample
from streams.seeding import sample_rng, sample_uniform
from streams.stages.pairing import choose_partner, lead_pairing_chance
from streams.tools.sample_folder import iter_sample_folder

from .augmentor import Augmentor
from .config import Config

__all__ = ["AugmentedDataset", "load_folder_samples", "load_shard_samples"]


def load_shard_samples(urls: str | Iterable[str], *, mel_dtype: str = "float32") -> list[Sample]:
    """Every sample of the shards at ``urls``, in shard order, checked (local paths or any URL)."""
    return list(Pipe.from_shards(urls, shuffle_shards=False, mel_dtype=mel_dtype))


def load_folder_samples(directory: str) -> list[Sample]:
    """Every sample of a folder in ``pack``'s input layouts (``.npy`` triplets or ``.pt``), sorted by
    key and checked; a bad sample raises :class:`~streams.sample.SampleError` naming its file."""
    return [check_sample(decode_record(Record(key=key, index=index, members=members, url=directory)))
            for index, (key, members) in enumerate(iter_sample_folder(directory))]


class AugmentedDataset(Dataset):
    """Samples in memory; ``dataset[i]`` is sample ``i``, augmented by ``augmentor`` when ``augment``.

    Args:
        samples: the samples (checked here, once).
        augmentor: an :class:`~pipelines.augmentor.Augmentor`; ``None`` serves samples as they are.
        augment: the switch; ``False`` serves samples as they are whatever the augmentor.

    ``set_epoch(e)`` chooses the epoch the augmentations are drawn for; like ``Pipe.set_epoch``
    it reaches DataLoader workers, persistent ones included (a shared-memory cell). Items get
    ``origin = ("memory", i)`` (pairs ``("pair", ("memory", i), ("memory", j))``).

    >>> import torch
    >>> s = Sample("a", torch.zeros(2, 3), torch.zeros(2, 1), torch.tensor([1]))
    >>> AugmentedDataset([s])[0].origin
    ('memory', 0)
    """

    def __init__(self, samples: Sequence[Sample], augmentor: Augmentor | None = None, *, augment: bool = True):
        if augmentor is not None and not isinstance(augmentor, Augmentor):
            raise ValueError(f"augmentor must be an Augmentor or None ({type(augmentor).__name__} given); build "
                             "one with Augmentor.from_config(config)")
        self.samples = [check_sample(s).replace(origin=MemoryOrigin(i).stored()) for i, s in enumerate(samples)]
        if not self.samples:
            raise ValueError("AugmentedDataset needs at least one sample")
        self.augmentor = augmentor
        self.augment = bool(augment)
        self._epoch = shared_epoch_cell()

    @classmethod
    def from_config(cls, config: Config, *, augment: bool = True) -> AugmentedDataset:
        """The samples of ``config.source.urls`` (read into memory) with ``config``'s augmentor."""
        samples = load_shard_samples(config.source.urls, mel_dtype=config.source.mel_dtype)
        return cls(samples, Augmentor.from_config(config), augment=augment)

    @classmethod
    def from_folder(cls, directory: str, augmentor: Augmentor | None = None, *,
                    augment: bool = True) -> AugmentedDataset:
        """The samples of a folder (see :func:`load_folder_samples`)."""
        return cls(load_folder_samples(directory), augmentor, augment=augment)

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Draw augmentations (and partners) for ``epoch`` from now on."""
        self._epoch.fill_(check_int(epoch, "epoch"))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"AugmentedDataset indices are ints ({type(index).__name__} given)")
        sample = self.samples[index]  # negative indices and IndexError as for a list
        if not self.augment or self.augmentor is None:
            return sample
        epoch = self.epoch
        partner = self.partner(int(index) % len(self), epoch)
        if partner is None:
            return self.augmentor(sample, epoch=epoch)
        return self.augmentor.pair(sample, self.samples[partner], epoch=epoch)

    def partner(self, index: int, epoch: int) -> int | None:
        """The index of item ``index``'s partner in ``epoch``, or ``None`` if it stays single (module
        docstring); ``None`` whenever the augmentor has no concatenation."""
        if self.augmentor is None or self.augmentor.pairing is None:
            return None
        name, stage = self.augmentor.pairing
        seed, sample = self.augmentor.seed, self.samples[index]
        chance = lead_pairing_chance(stage.probability_at(epoch))
        if chance <= 0.0 or not stage.fits(sample.raw_frames, sample.edit_frames):
            return None
        if chance < 1.0 and sample_uniform(seed, epoch, name, sample.key) >= chance:
            return None
        rng = sample_rng(seed, epoch, name, sample.key)
        others = len(self) - 1
        drawn = rng.choice(others, size=min(stage.buffer_size - 1, others), replace=False)
        drawn += drawn >= index  # the other samples' indices: the item itself is skipped
        choice, _ = choose_partner(sample, [self.samples[i] for i in drawn], stage, rng)
        return None if choice is None else int(drawn[choice])
