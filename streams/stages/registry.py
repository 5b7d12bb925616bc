"""Stage settings and the registry of config blocks: each stage's settings are declared once.

A stage's settings are a frozen dataclass beside it that checks itself in ``__post_init__`` (a bad
value raises :class:`~streams.checks.FieldError` on its field) and is the stage's config block:
``augmentation.crop`` parses into a :class:`~streams.stages.crop.CropSettings`, an error's field
becomes its path (``augmentation.crop.min_len``). The fields are also the stage's keyword
arguments (``CropStage(min_len=50)``, ``pipe.crop(min_len=50)``) and attributes (``stage.min_len``);
``stage.settings`` is its block. ``enabled`` is the config's switch, refused by a stage made in code.

A new stage registers itself with one line, :func:`register_stage`, above its class::

    @dataclasses.dataclass(frozen=True)
    class SpeedSettings(StageSettings):  # enabled, probability; redeclare a field to change its default
        probability: float = 0.5
        factor_max: float = 1.1

        def __post_init__(self) -> None:
            super().__post_init__()
            check_float(self.factor_max, "factor_max", minimum=1.0)

    @register_stage("speed", SpeedSettings)  # config block "speed", and pipe.speed(...)
    class SpeedStage(AugmentStage):  # no __init__: it reads self.factor_max and self.probability_at(epoch)
        name = "speed"

A config group then lists the block by name, in pipe order (``pipelines.config.AUGMENTATION_ORDER``;
``stage_group`` makes a group's dataclass from this registry). The built-in stages register when
``streams`` is imported; a stage of your own, when its module is imported, before a config names it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from ..checks import FieldError, check_bool, check_probability
from ..pipe import Stage, pipe_method
from ..schedule import ProbabilitySchedule, check_schedule, scheduled_probability

__all__ = ["REGISTRY", "SettingsStage", "StageSettings", "register_stage", "settings_values"]


@dataclasses.dataclass(frozen=True)
class StageSettings:
    """Base of a stage's settings: the config's switch ``enabled`` and the chance to fire per sample."""

    enabled: bool = False
    probability: float = 1.0

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

    def __init__(self, *, schedule: ProbabilitySchedule | None = None, **fields: Any):
        if "enabled" in fields:
            raise FieldError("enabled", f"enabled is a config switch; a {type(self).__name__} built in code always "
                                        "runs, so leave the stage out of the pipe instead")
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

_S = TypeVar("_S", bound=type[SettingsStage])


def register_stage(block: str, settings: type[StageSettings], *, method: str | None = None) -> Callable[[_S], _S]:
    """Class decorator: config block ``block`` is a ``settings`` and builds this stage, which
    ``pipe.<method>(...)`` (default: ``block``) appends. Sets the class's ``settings_class`` and
    its signature (its ``__init__``'s with the settings' fields, for ``help()`` and the docs)."""

    def register(cls: _S) -> _S:
        if block in REGISTRY:
            raise ValueError(f"a stage is already registered for the block {block!r}; choose another name")
        cls.settings_class = settings
        own = [p for p in inspect.signature(cls.__init__).parameters.values()
               if p.name != "self" and p.kind != p.VAR_KEYWORD]
        fields = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
                  for f in dataclasses.fields(settings) if f.name not in {"enabled", *(p.name for p in own)}]
        cls.__signature__ = inspect.Signature(sorted(fields + own, key=lambda p: p.kind))
        REGISTRY[block] = cls
        return pipe_method(method or block)(cls)

    return register
