"""Stage settings and the registry of config blocks: each stage's settings are declared once.

A stage's settings are a frozen dataclass, declared beside the stage, that checks itself in
``__post_init__`` (a bad value raises :class:`~streams.checks.FieldError` on its field) and is, as
it is, the stage's block in a config file: ``augmentation.crop`` parses into a
:class:`~streams.stages.crop.CropSettings`, and ``pipelines.config`` maps an error's ``field`` to
the block's path (``augmentation.crop.min_len``). Its fields are also the stage's keyword arguments
(``CropStage(min_len=50)``, ``pipe.crop(min_len=50)``, defaults and checks from the dataclass) and
its attributes (``stage.min_len``); ``stage.settings`` is the block that builds this stage again.
``enabled`` is the config's switch: a config builds the stage only when it is true, and a stage
built in code refuses it (leave the stage out of the pipe instead).

How a new stage registers itself (the decorator is the one line; the dataclass is its settings)::

    @dataclasses.dataclass(frozen=True)
    class SpeedSettings(AugmentSettings):  # AugmentSettings: enabled, probability (checked)
        probability: float = 0.5
        factor_min: float = 0.9
        factor_max: float = 1.1

        def __post_init__(self) -> None:
            super().__post_init__()
            check_ordered(check_float(self.factor_min, "factor_min", include_minimum=False),
                          check_float(self.factor_max, "factor_max"), "factor_min", "factor_max")

    @register_stage("speed", SpeedSettings)  # the block name in a config; sets SpeedStage.settings_class
    @pipe_method("speed")  # pipe.speed(...), as before
    class SpeedStage(AugmentStage):  # a SettingsStage: no __init__, it reads self.factor_min
        ...

Then a config group names the block: ``pipelines.config`` lists its groups' block names in pipe
order (``AUGMENTATION_ORDER``) and builds each group's dataclass from the settings registered
here, so the block parses, validates and builds with nothing else to write. The built-in stages
are registered when ``streams`` is imported (its ``__init__`` imports every stage module); a stage
of your own registers when its module is imported, before a config names its block.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from ..checks import FieldError, check_bool
from ..pipe import Stage

__all__ = ["REGISTRY", "SettingsStage", "StageSettings", "register_stage", "registered_stage", "settings_values"]


@dataclasses.dataclass(frozen=True)
class StageSettings:
    """Base of every stage's settings: ``enabled``, the config's switch for the stage."""

    enabled: bool = False

    def __post_init__(self) -> None:
        check_bool(self.enabled, "enabled")


def settings_values(settings: StageSettings) -> dict[str, Any]:
    """``settings``' fields but ``enabled``, by name: the stage's keyword arguments."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name != "enabled"}


class SettingsStage(Stage):
    """A stage built from its settings dataclass (``settings_class``, set by :func:`register_stage`).

    ``cls(**fields)`` checks ``fields`` by building ``settings_class(enabled=True, **fields)``
    and sets each field as an attribute; subclasses that take more arguments (a schedule) call
    ``super().__init__(**fields)`` first.
    """

    settings_class: ClassVar[type[StageSettings]] = StageSettings

    def __init__(self, **fields: Any):
        if "enabled" in fields:
            raise FieldError("enabled", f"enabled is a config switch; a {type(self).__name__} built in code always "
                                        "runs, so leave the stage out of the pipe instead")
        self._settings = self.settings_class(enabled=True, **fields)
        vars(self).update(settings_values(self._settings))

    @property
    def settings(self) -> StageSettings:
        """The settings this stage was built from (``enabled`` true): its config block."""
        return self._settings

    @classmethod
    def from_settings(cls, settings: StageSettings, **extra: Any) -> SettingsStage:
        """The stage a config block describes (``extra``: arguments that are not settings, a schedule)."""
        return cls(**settings_values(settings), **extra)


REGISTRY: dict[str, type[SettingsStage]] = {}
"""Config block name -> its stage class (whose ``settings_class`` is the block's dataclass)."""

_S = TypeVar("_S", bound=type[SettingsStage])


def register_stage(block: str, settings: type[StageSettings]) -> Callable[[_S], _S]:
    """Class decorator: ``block`` in a config is a ``settings`` dataclass and builds this stage.

    Sets the class's ``settings_class`` and its signature (the settings' fields as keyword
    arguments, then those of its ``__init__``, for ``help()`` and the docs).
    """

    def register(cls: _S) -> _S:
        if block in REGISTRY:
            raise ValueError(f"a stage is already registered for the block {block!r} ({REGISTRY[block].__name__}); "
                             "choose another block name")
        cls.settings_class = settings
        own = [p for p in inspect.signature(cls.__init__).parameters.values()
               if p.name != "self" and p.kind is not p.VAR_KEYWORD]
        fields = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
                  for f in dataclasses.fields(settings) if f.name != "enabled" and f.name not in {p.name for p in own}]
        cls.__signature__ = inspect.Signature(sorted(fields + own, key=lambda p: p.kind))
        REGISTRY[block] = cls
        return cls

    return register


def registered_stage(block: str) -> type[SettingsStage]:
    """The stage class registered for ``block``; ``KeyError`` naming the registered blocks."""
    if block not in REGISTRY:
        raise KeyError(f"no stage is registered for the config block {block!r} (registered: "
                       f"{', '.join(sorted(REGISTRY))}); import the module that registers it first")
    return REGISTRY[block]
