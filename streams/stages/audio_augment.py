"""The shell of audio stages: a stage built from a frozen settings dataclass, with a skip policy.

An audio stage works on :class:`~streams.audio.sample.AudioSample` (before mels) and is an
:class:`~streams.stages.augment.AugmentStage` like every augmentation: it fires with its probability,
draws with the numpy generator keyed by (seed, epoch, stage name, sample key) (:func:`streams.seeding.sample_rng`),
applies deterministically and records ``{"stage": name, **params}`` in ``meta["augmentations"]``. Its
settings are one frozen dataclass (``settings_class``) that validates itself, raising
:class:`~streams.checks.FieldError` naming the field: ``Stage(settings)`` or ``Stage(**fields)``.

Bad input a stage cannot work on (a recording too short to re-edit) is a
:class:`~streams.sample.SampleError` naming the key, raised under ``on_error="raise"``; under
``on_error="skip"`` the sample passes on unchanged (without this stage's work) and the node counts it
under ``skipped`` in ``pipe.stats()`` and its state. Only the reasons the stage lists in
``skip_reasons`` are skipped; anything else raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar

from ..audio.sample import AudioSample
from ..checks import FieldError
from ..origin import Origin
from ..pipe import Node
from ..reading.skips import ON_ERROR_POLICIES
from ..sample import SampleError
from ..seeding import sample_rng
from .augment import AugmentStage

__all__ = ["AudioAugmentStage", "ON_ERROR_POLICIES"]


class _AudioAugmentNode(Node):
    counters = ("seen", "fired", "skipped")

    def _augment(self, sample: AudioSample) -> tuple[AudioSample, bool]:
        return self.stage.augment_or_skip(sample, seed=self.ctx.seed, epoch=self.ctx.epoch, stage=self.ctx.stage)

    def __next__(self) -> AudioSample:
        sample = next(self.upstream)
        out, skipped = self._augment(sample)
        self.counts["seen"] += 1
        self.counts["fired"] += out is not sample
        self.counts["skipped"] += skipped
        return out

    def replay(self, origins: list[Origin]) -> Iterator[AudioSample]:
        return (self._augment(sample)[0] for sample in self.upstream.replay(origins))


class AudioAugmentStage(AugmentStage):
    """Base of audio stages. Subclasses set ``name``, ``settings_class`` (a frozen dataclass with at
    least ``probability``; ``on_error`` if the stage can skip) and define ``draw`` and ``apply``."""

    node_class = _AudioAugmentNode
    keyed_generator = staticmethod(sample_rng)
    settings_class: ClassVar[type]
    skip_reasons: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: Any = None, /, **fields: Any):
        if settings is None:
            settings = self.settings_class(**fields)
        elif fields:
            raise TypeError(f"{type(self).__name__} takes settings or fields, not both")
        elif not isinstance(settings, self.settings_class):
            raise FieldError("settings", f"settings: {type(self).__name__} needs a {self.settings_class.__name__} "
                                         f"({type(settings).__name__} given)")
        # the settings are not StageSettings (no config switch: the audio block holds ``enabled``),
        # so SettingsStage's constructor is bypassed; its attributes, ``settings`` and schedule are the same
        self._settings = settings
        vars(self).update({f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)})
        self.schedule = None
        self.on_error = getattr(settings, "on_error", "raise")

    def augment_or_skip(self, sample: AudioSample, *, seed: int = 0, epoch: int = 0,
                        stage: str | None = None) -> tuple[AudioSample, bool]:
        """``(augmented sample, False)``, or ``(sample, True)`` when the stage skipped it under ``on_error="skip"``."""
        try:
            return self.augment(sample, seed=seed, epoch=epoch, stage=stage), False
        except SampleError as err:
            if self.on_error == "skip" and err.reason in self.skip_reasons:
                return sample, True
            raise

