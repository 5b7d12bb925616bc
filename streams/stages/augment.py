"""The shared shell of per-sample augmentation stages: probability, draw, apply, record.

An augmentation is two pure functions on a sample: ``draw(sample, generator) -> params`` picks
the random parameters, ``apply(sample, params) -> sample`` applies them deterministically. The
stage decides whether it fires (its probability, times the epoch's schedule factor, against
:func:`streams.seeding.sample_uniform`), draws with a generator keyed by (seed, epoch, stage name,
sample key; see :func:`draw_key`), applies, and appends ``{"stage": name, **params}`` to ``meta["augmentations"]`` so
any output can be explained and replayed. The result depends only on the sample, never on
worker, rank or arrival order.

The generator is what the stage's ``keyed_generator`` makes from those four parts: a
``torch.Generator`` (:func:`streams.seeding.sample_generator`) unless the stage says otherwise;
the built-in augmentations set ``keyed_generator = staticmethod(sample_rng)`` and draw from a numpy
``Generator`` (:func:`streams.seeding.sample_rng`), cheaper to make and to draw scalars from,
which matters on short samples where a stage's work is a few tens of microseconds.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from ..origin import Origin, parse_origin
from ..pipe import Node
from ..sample import Sample
from ..seeding import sample_generator, sample_uniform
from .registry import SettingsStage

__all__ = ["AugmentStage", "draw_key"]


def draw_key(sample: Sample) -> str:
    """The key a sample's random draws are made from: its key, plus the readings' occurrences when
    the source read a record again in the epoch (an equal-steps repeat, a resampled draw; see
    :mod:`streams.origin`), also inside a pair, so that a second reading gets fresh
    augmentations.

    >>> import torch
    >>> s = Sample("a", torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, dtype=torch.int64))
    >>> draw_key(s.replace(origin=("shard", 0, 3))), draw_key(s.replace(origin=("shard", 0, 3, 2)))
    ('a', 'a@2')
    >>> draw_key(s.replace(key="a+b", origin=("pair", ("shard", 0, 3), ("shard", 1, 0, 1))))
    'a+b@0.1'
    """
    if sample.origin is None:
        return sample.key
    occurrences = [part.occurrence for part in parse_origin(sample.origin).parts()]
    if not any(occurrences):
        return sample.key
    return f"{sample.key}@{'.'.join(map(str, occurrences))}"


class _AugmentNode(Node):
    """Runs one augmentation stage over the stream.

    Between stages that support writing in place, a sample's mels are allocated once: a node
    remembers (weakly) the last sample whose mels its stage freshly made (``made``), and the next
    node, if it receives exactly that sample, applies its own stage in place. Nobody else holds
    those tensors: the upstream stage made them for this sample, and its input is untouched.
    """

    counters = ("seen", "fired")
    made: weakref.ref[Sample] | None = None

    def _augment(self, sample: Sample, in_place: bool = False) -> Sample:
        return self.stage.augment(sample, seed=self.ctx.seed, epoch=self.ctx.epoch, stage=self.ctx.stage,
                                  in_place=in_place)

    def __next__(self) -> Sample:
        sample = next(self.upstream)
        made = getattr(self.upstream, "made", None)
        in_place = self.stage.supports_in_place and made is not None and made() is sample
        out = self._augment(sample, in_place)
        self.counts["seen"] += 1
        self.counts["fired"] += out is not sample
        owned = in_place or (out.raw_mel is not sample.raw_mel and out.edit_mel is not sample.edit_mel)
        self.made = weakref.ref(out) if self.stage.supports_in_place and owned else None
        return out

    def replay(self, origins: list[Origin]) -> Iterator[Sample]:
        return map(self._augment, self.upstream.replay(origins))


class AugmentStage(SettingsStage):
    """Base of augmentation stages. Subclasses set ``name`` and define ``draw`` and ``apply``.

    ``draw`` returns ``None`` when the stage has nothing to do on a sample (the sample then passes
    unchanged and unrecorded). ``params`` returned by ``draw`` must be JSON-friendly (ints, floats,
    strings, lists, dicts): they go into the sample's metadata as its augmentation record. ``draw`` receives the
    generator ``keyed_generator(seed, epoch, stage, key)`` makes (see the module docstring).
    """

    node_class = _AugmentNode
    keyed_generator: ClassVar[Callable[[int, int, str, str], Any]] = staticmethod(sample_generator)
    supports_in_place: ClassVar[bool] = False
    """Whether ``apply(sample, params, in_place=True)`` can write into the sample's mels (the
    spectral stages), so that in a pipe it reuses the tensors the stage before made (:class:`_AugmentNode`)."""

    def draw(self, sample: Sample, generator: Any) -> dict[str, Any]:
        raise TypeError(f"{type(self).__name__} must define draw()")

    def apply(self, sample: Sample, params: dict[str, Any]) -> Sample:
        raise TypeError(f"{type(self).__name__} must define apply()")

    def augment(self, sample: Sample, *, seed: int = 0, epoch: int = 0, stage: str | None = None,
                in_place: bool = False) -> Sample:
        """Augment one sample as the stage would in a pipe (usable without a pipe).

        ``in_place`` (honoured when the stage ``supports_in_place``) lets the stage write into the
        sample's mels, for a caller that owns them; the values are the same either way.
        """
        stage = stage or self.name
        probability = self.probability_at(epoch)
        if probability <= 0.0:
            return sample
        key = draw_key(sample)
        if probability < 1.0 and sample_uniform(seed, epoch, stage, key) >= probability:
            return sample
        params = self.draw(sample, self.keyed_generator(seed, epoch, stage, key))
        if params is None:  # the stage has nothing to do on this sample (too short to crop, one chunk)
            return sample
        if in_place and self.supports_in_place:
            return self.apply(sample, params, in_place=True).with_record(stage, **params)
        return self.apply(sample, params).with_record(stage, **params)
