"""A3 gain: multiply a mel by a random factor (robustness to recording level)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .checks import check_float, check_ordered
from .pipe import pipe_method
from .schedule import ProbabilitySchedule
from .spectral import SpectralAugmentStage

__all__ = ["GainStage", "apply_gain"]


def apply_gain(mel: torch.Tensor, scale: float) -> torch.Tensor:
    """``mel * scale`` as a new tensor of ``mel``'s shape and dtype (float16 stays float16).

    The plan scales mel values directly; on log-mels this stretches the dB range around 0 rather
    than adding a constant level, which is what the plan asks for.

    >>> apply_gain(torch.tensor([[1.0, -2.0]]), 0.5)
    tensor([[ 0.5000, -1.0000]])
    """
    return mel * scale


@pipe_method("gain")
class GainStage(SpectralAugmentStage):
    """Scale mels by a factor drawn uniformly in ``[scale_min, scale_max]``.

    Args:
        probability: chance to fire per sample (plan: 0.5).
        scale_min, scale_max: range of the factor (plan: 0.7 .. 1.3); ``scale_min == scale_max``
            gives a fixed factor.
        mode: ``"shared"`` (default: one factor for both mels, an overall volume change; keeps the
            pointer content invariant exactly) or ``"independent"`` (a factor each: gain staging
            differences between the raw and the edited recording).
        schedule: optional per-epoch factor on ``probability``.

    Params recorded: ``{"mode": "shared", "scale": s}`` or ``{"mode": "independent", "raw":
    {"scale": s}, "edit": {"scale": s}}``. Cost: one multiply per mel, about one copy.

    >>> from streams.gain import GainStage
    >>> from streams.sample import Sample
    >>> s = Sample("a", torch.ones(2, 3), torch.ones(2, 2), torch.tensor([0, 2]))
    >>> out = GainStage(probability=1.0, scale_min=2.0, scale_max=2.0).augment(s)
    >>> out.raw_mel[0].tolist(), out.meta["augmentations"]
    ([2.0, 2.0, 2.0], [{'stage': 'gain', 'mode': 'shared', 'scale': 2.0}])
    """

    name = "gain"

    def __init__(self, *, probability: float = 0.5, scale_min: float = 0.7, scale_max: float = 1.3,
                 mode: str = "shared", schedule: ProbabilitySchedule | None = None):
        super().__init__(probability=probability, mode=mode, schedule=schedule)
        self.scale_min = check_float(scale_min, "scale_min")
        self.scale_max = check_float(scale_max, "scale_max")
        check_ordered(self.scale_min, self.scale_max, "scale_min", "scale_max")

    def draw_mel(self, mel: torch.Tensor, generator: np.random.Generator) -> dict[str, Any]:
        fraction = float(generator.random())
        return {"scale": self.scale_min + (self.scale_max - self.scale_min) * fraction}

    def apply_mel(self, mel: torch.Tensor, decision: dict[str, Any]) -> torch.Tensor:
        return apply_gain(mel, decision["scale"])
