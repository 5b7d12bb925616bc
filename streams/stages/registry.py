"""Stage settings and the registry of config blocks: each stage's settings are declared once.

A stage's settings are a frozen dataclass beside it, checking itself in ``__post_init__``
(:class:`~streams.checks.FieldError` on the field), and are its config block (``augmentation.crop``
is a :class:`~streams.stages.crop.CropSettings`), its keyword arguments (``pipe.crop(min_len=50)``)
and its attributes (``stage.min_len``; ``stage.settings`` is the block). A stage registers itself
with one line, :func:`register_stage`, above its class::

    class SpeedSettings(StageSettings):  # a frozen dataclass: enabled, probability (redeclared: a new default)
        probability: float = 0.5
        factor_max: float = 1.1

        def __post_init__(self) -> None:
            super().__post_init__()
            check_float(self.factor_max, "factor_max", minimum=1.0)

    @register_stage("speed", SpeedSettings)  # config block "speed", and pipe.speed(...)
    class SpeedStage(AugmentStage):  # no __init__: it reads self.factor_max and self.probability_at(epoch)
        name = "speed"

A config group names the block in its pipe order (``pipelines.config.AUGMENTATION_ORDER``). Built-in
stages register when ``streams`` is imported; yours, when its module is, before a config names it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, ClassVar

from ..checks import FieldError, check_bool, check_probability
from ..pipe import Stage, pipe_method
from ..schedule import ProbabilitySchedule, check_schedule, scheduled_probability

__all__ = ["REGISTRY", "SettingsStage", "StageSettings", "register_stage", "settings_values"]


@typing.dataclass_transform(frozen_default=True)
@dataclasses.dataclass(frozen=True)
class StageSettings:
    """Base of a stage's settings: the config's switch ``enabled`` and the chance to fire per sample.
    A subclass is made a frozen dataclass when it is defined (so it takes no decorator)."""

    enabled: bool = False
    probability: float = 1.0

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True)(cls)

    def __post_init__(self) -> None:
        check_bool(self.enabled, "enabled")
        check_probability(self.probability)


def settings_values(settings: StageSettings) -> dict[str, Any]:
    """``settings``' fields but ``enabled``, by name: the stage's keyword arguments."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name != "enabled"}


class SettingsStage(Stage):
    """A stage made from its settings: ``cls(schedule=None, **fields)`` checks ``fields`` by making
    ``settings_class(enabled=True, **fields)`` and sets each as an attribute; ``schedule`` is an
    optional per-epoch factor on ``probability`` (:meth:`probability_at`)."""

    settings_class: ClassVar[type[StageSettings]] = StageSettings
    keyed_augmentation: ClassVar[bool] = True
    """Draws per sample from (seed, epoch, stage, key): a second pass at one epoch repeats them."""

    def __init__(self, *, schedule: ProbabilitySchedule | None = None, **fields: Any):
        if "enabled" in fields:
            raise FieldError("enabled", "enabled is a config switch: to turn the stage off, leave it out of the pipe")
        self._settings = self.settings_class(enabled=True, **fields)
        vars(self).update(settings_values(self._settings))
        self.schedule = check_schedule(schedule)

    @property
    def settings(self) -> StageSettings:
        """The settings this stage was built from (``enabled`` true): its config block."""
        return self._settings

    def probability_at(self, epoch: int) -> float:
        """The probability in ``epoch``, after the schedule."""
        return scheduled_probability(self.probability, self.schedule, epoch)


REGISTRY: dict[str, type[SettingsStage]] = {}
"""Config block name -> its stage class (whose ``settings_class`` is the block's dataclass)."""

def register_stage(block: str, settings: type[StageSettings], *, method: str | None = None) -> Callable[[type], type]:
    """Class decorator: config block ``block`` is a ``settings`` (the class's ``settings_class``)
    and builds this stage, which ``pipe.<method>(...)`` (default: ``block``) appends."""

    def register(cls: type[SettingsStage]) -> type[SettingsStage]:
        if block in REGISTRY:
            raise ValueError(f"a stage is already registered for the block {block!r}; choose another name")
        cls.settings_class = settings
        REGISTRY[block] = cls
        return pipe_method(method or block)(cls)

    return register
