"""The shared shell of per-sample augmentation stages: probability, draw, apply, record.

An augmentation is two pure functions on a sample: ``draw(sample, generator) -> params`` picks
the random parameters, ``apply(sample, params) -> sample`` applies them deterministically. The
stage decides whether it fires (its probability, times the epoch's schedule factor), draws with a
generator seeded from (seed, epoch, stage name, sample key), applies, and appends
``{"stage": name, **params}`` to ``meta["augmentations"]`` so any output can be explained and
replayed. The result depends only on the sample, never on worker, rank or arrival order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .pipe import Node, Stage, StreamContext
from .sample import Origin, Sample
from .schedule import ProbabilitySchedule
from .seeding import sample_generator

__all__ = ["AugmentStage", "check_probability"]


def check_probability(value: float, field: str = "probability") -> float:
    """``value`` as a float if it lies in [0, 1], else ``ValueError`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{field} must be between 0.0 and 1.0 ({value!r} given)")
    return float(value)


class AugmentStage(Stage):
    """Base of augmentation stages. Subclasses set ``name`` and define ``draw`` and ``apply``.

    ``params`` returned by ``draw`` must be JSON-friendly (ints, floats, strings, lists, dicts):
    they go into the sample's metadata as its augmentation record.
    """

    def __init__(self, *, probability: float = 1.0, schedule: ProbabilitySchedule | None = None):
        self.probability = check_probability(probability)
        if schedule is not None and not isinstance(schedule, ProbabilitySchedule):
            raise ValueError(f"schedule must be a ProbabilitySchedule (got {type(schedule).__name__})")
        self.schedule = schedule

    def draw(self, sample: Sample, generator: torch.Generator) -> dict[str, Any]:
        raise TypeError(f"{type(self).__name__} must define draw()")

    def apply(self, sample: Sample, params: dict[str, Any]) -> Sample:
        raise TypeError(f"{type(self).__name__} must define apply()")

    def probability_at(self, epoch: int) -> float:
        """The firing probability in ``epoch``, after the schedule."""
        return self.probability * (self.schedule.factor(epoch) if self.schedule is not None else 1.0)

    def augment(self, sample: Sample, *, seed: int = 0, epoch: int = 0, stage: str | None = None) -> Sample:
        """Augment one sample as the stage would in a pipe (usable without a pipe)."""
        stage = stage or self.name
        probability = self.probability_at(epoch)
        if probability <= 0.0:
            return sample
        generator = sample_generator(seed, epoch, stage, sample.key)
        if probability < 1.0 and float(torch.rand((), generator=generator)) >= probability:
            return sample
        params = self.draw(sample, generator)
        return self.apply(sample, params).with_record(stage, **params)

    def open(self, upstream: Node | None, ctx: StreamContext) -> Node:
        return _AugmentNode(upstream, self, ctx)


class _AugmentNode(Node):
    def __init__(self, upstream: Node, stage: AugmentStage, ctx: StreamContext):
        self.upstream = upstream
        self.stage = stage
        self.ctx = ctx
        self.seen = 0
        self.fired = 0

    def _augment(self, sample: Sample) -> Sample:
        return self.stage.augment(sample, seed=self.ctx.seed, epoch=self.ctx.epoch, stage=self.ctx.stage)

    def __next__(self) -> Sample:
        sample = next(self.upstream)
        out = self._augment(sample)
        self.seen += 1
        self.fired += out is not sample
        return out

    def replay(self, origins: list[Origin]) -> Iterator[Sample]:
        return map(self._augment, self.upstream.replay(origins))

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "fired": self.fired}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen, self.fired = state["seen"], state["fired"]

    def stats(self) -> dict[str, Any]:
        return {"seen": self.seen, "fired": self.fired}
