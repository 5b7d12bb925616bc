"""A3 gain: scale a mel's values by a random factor (robustness to recording level).

The plan multiplies the mel. That is a volume change for linear mels; for log-mels (what most
models read) the same factor is an offset, ``log(scale)``, which ``domain`` selects.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

from ..checks import FieldError, check_choice, check_float, check_ordered
from .registry import register_stage
from .spectral import SpectralAugmentStage, SpectralSettings

__all__ = ["DOMAINS", "GainSettings", "GainStage", "apply_gain"]

DOMAINS = ("linear", "log", "db")
"""How mel values relate to level: linear, natural log (``log(mel)``) or power decibels (``10 log10``)."""


def apply_gain(mel: torch.Tensor, scale: float, domain: str = "linear", *, in_place: bool = False) -> torch.Tensor:
    """The mel of a recording whose mel values were ``scale`` times larger, as a new tensor of
    ``mel``'s shape and dtype (float16 stays float16).

    ``domain`` says what the values are: ``"linear"`` mels are multiplied (the plan's code);
    ``"log"`` mels (natural log) get ``log(scale)`` added, ``"db"`` mels ``10 * log10(scale)``.
    ``in_place`` writes the result into ``mel`` (same values) and returns it.

    >>> apply_gain(torch.tensor([[1.0, -2.0]]), 0.5)
    tensor([[ 0.5000, -1.0000]])
    >>> apply_gain(torch.tensor([[-20.0, -3.0]]), 10.0, "db")
    tensor([[-10.,   7.]])
    """
    if domain == "linear":
        return mel.mul_(scale) if in_place else mel * scale
    offset = math.log(scale) if domain == "log" else 10.0 * math.log10(scale)
    return mel.add_(offset) if in_place else mel + offset


class GainSettings(SpectralSettings):
    """The ``gain`` block (A3), ``probability`` as in the plan; :class:`GainStage` documents the fields."""

    probability: float = 0.5
    scale_min: float = 0.7
    scale_max: float = 1.3
    domain: Literal["linear", "log", "db"] = "linear"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ordered(check_float(self.scale_min, "scale_min"), check_float(self.scale_max, "scale_max"),
                      "scale_min", "scale_max")
        check_choice(self.domain, "domain", DOMAINS)
        if self.domain != "linear" and self.scale_min <= 0.0:
            raise FieldError("scale_min", f"scale_min must be > 0 for domain {self.domain!r}: the offset is its log "
                                          f"({self.scale_min!r} given)")


@register_stage("gain", GainSettings)
class GainStage(SpectralAugmentStage):
    """Scale mels by a factor drawn uniformly in ``[scale_min, scale_max]``.

    Args:
        scale_min, scale_max: range of the factor (plan: 0.7 .. 1.3); ``scale_min == scale_max``
            gives a fixed factor.
        domain: ``"linear"`` (default, the plan's multiply), ``"log"`` or ``"db"`` for log-mels,
            where the factor becomes an offset (see :func:`apply_gain`).
        mode: ``"shared"`` (default: one factor for both mels, an overall volume change; keeps the
            pointer content invariant exactly) or ``"independent"`` (a factor each: gain staging
            differences between the raw and the edited recording).

    Params recorded: ``{"mode": "shared", "scale": s}`` or ``{"mode": "independent", "raw":
    {"scale": s}, "edit": {"scale": s}}``. Cost: one multiply per mel, about one copy.

    >>> from streams.stages.gain import GainStage
    >>> from streams.sample import Sample
    >>> s = Sample("a", torch.ones(2, 3), torch.ones(2, 2), torch.tensor([0, 2]))
    >>> out = GainStage(probability=1.0, scale_min=2.0, scale_max=2.0).augment(s)
    >>> out.raw_mel[0].tolist(), out.meta["augmentations"]
    ([2.0, 2.0, 2.0], [{'stage': 'gain', 'mode': 'shared', 'scale': 2.0}])
    """

    name = "gain"

    def draw_mel(self, mel: torch.Tensor, generator: np.random.Generator) -> dict[str, Any]:
        fraction = float(generator.random())
        return {"scale": self.scale_min + (self.scale_max - self.scale_min) * fraction}

    def apply_mel(self, mel: torch.Tensor, decision: dict[str, Any], in_place: bool = False) -> torch.Tensor:
        return apply_gain(mel, decision["scale"], self.domain, in_place=in_place)
