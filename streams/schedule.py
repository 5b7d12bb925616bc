"""Per-epoch scaling of augmentation probabilities: warm-up, then constant or linear decay.

The plan's risk mitigations: no augmentation for the first epochs, and probabilities that fall
over training. A schedule maps an epoch to a factor in [0, 1] that multiplies every stage's
probability; each worker applies it to the epoch of its own pass.
"""

from __future__ import annotations

import dataclasses

__all__ = ["ProbabilitySchedule"]

KINDS = ("constant", "linear")


@dataclasses.dataclass(frozen=True)
class ProbabilitySchedule:
    """Factor for augmentation probabilities by epoch.

    Args:
        warmup_epochs: epochs ``0 .. warmup_epochs-1`` get factor 0 (no augmentation).
        kind: ``"constant"`` (factor 1 after warm-up) or ``"linear"`` (from 1 right after warm-up
            to ``end_factor`` at ``warmup_epochs + decay_epochs``, then held).
        decay_epochs: length of the linear ramp, in epochs (>= 1 for ``"linear"``).
        end_factor: the factor the linear ramp ends at, in [0, 1].

    >>> s = ProbabilitySchedule(warmup_epochs=1, kind="linear", decay_epochs=2, end_factor=0.0)
    >>> [s.factor(e) for e in range(5)]
    [0.0, 1.0, 0.5, 0.0, 0.0]
    """

    warmup_epochs: int = 0
    kind: str = "constant"
    decay_epochs: int = 1
    end_factor: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an int >= 0 (got {self.warmup_epochs!r})")
        if self.kind not in KINDS:
            raise ValueError(f"schedule kind must be one of {KINDS} (got {self.kind!r})")
        if not isinstance(self.decay_epochs, int) or self.decay_epochs < 1:
            raise ValueError(f"decay_epochs must be an int >= 1 (got {self.decay_epochs!r})")
        if not 0.0 <= float(self.end_factor) <= 1.0:
            raise ValueError(f"end_factor must be between 0.0 and 1.0 ({self.end_factor!r} given)")

    def factor(self, epoch: int) -> float:
        """The probability factor for ``epoch`` (0-based)."""
        if epoch < self.warmup_epochs:
            return 0.0
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, (epoch - self.warmup_epochs) / self.decay_epochs)
        return 1.0 + (float(self.end_factor) - 1.0) * progress
