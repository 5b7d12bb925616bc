"""Per-epoch scaling of augmentation probabilities: warm-up, then constant or linear decay.

The plan's risk mitigations: no augmentation for the first epochs, and probabilities that fall
over training. A schedule maps an epoch to a factor in [0, 1] that multiplies every stage's
probability; each worker applies it to the epoch of its own pass.
"""

from __future__ import annotations

import dataclasses

from .checks import FieldError, check_choice, check_int, check_probability

__all__ = ["ProbabilitySchedule", "check_schedule", "scheduled_probability"]

KINDS = ("constant", "linear")


@dataclasses.dataclass(frozen=True)
class ProbabilitySchedule:
    """Factor for augmentation probabilities by epoch.

    Args:
        warmup_epochs: epochs ``0 .. warmup_epochs-1`` get factor 0 (no augmentation).
        kind: ``"constant"`` (factor 1 after warm-up) or ``"linear"`` (from ``start_factor`` right
            after warm-up to ``end_factor`` at ``warmup_epochs + decay_epochs``, then held).
        decay_epochs: length of the linear ramp, in epochs (>= 1).
        start_factor, end_factor: where the linear ramp starts and ends, in [0, 1]. The plan's
            two mitigations are both ramps: decay (1 → lower) and "start low, increase
            gradually" (low → 1).

    Examples:
        >>> decay = ProbabilitySchedule(warmup_epochs=1, kind="linear", decay_epochs=2, end_factor=0.0)
        >>> [decay.factor(e) for e in range(5)]
        [0.0, 1.0, 0.5, 0.0, 0.0]
        >>> rise = ProbabilitySchedule(kind="linear", decay_epochs=4, start_factor=0.2, end_factor=1.0)
        >>> [round(rise.factor(e), 2) for e in range(6)]
        [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    """

    warmup_epochs: int = 0
    kind: str = "constant"
    decay_epochs: int = 1
    end_factor: float = 1.0
    start_factor: float = 1.0

    def __post_init__(self) -> None:
        check_int(self.warmup_epochs, "warmup_epochs")
        check_choice(self.kind, "kind", KINDS)
        check_int(self.decay_epochs, "decay_epochs", minimum=1)
        if self.kind == "constant":
            for name, default in (("decay_epochs", 1), ("start_factor", 1.0), ("end_factor", 1.0)):
                if getattr(self, name) != default:
                    raise FieldError(name, f"{name} shapes a linear schedule; set kind to \"linear\" or remove "
                                           f"{name} ({getattr(self, name)!r} given)")
        check_probability(self.start_factor, "start_factor")
        check_probability(self.end_factor, "end_factor")

    def factor(self, epoch: int) -> float:
        """The probability factor for ``epoch`` (0-based)."""
        if epoch < self.warmup_epochs:
            return 0.0
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, (epoch - self.warmup_epochs) / self.decay_epochs)
        start, end = float(self.start_factor), float(self.end_factor)
        return start + (end - start) * progress


def check_schedule(schedule: object) -> ProbabilitySchedule | None:
    """``schedule`` if it is ``None`` or a :class:`ProbabilitySchedule`, else ``ValueError``."""
    if schedule is not None and not isinstance(schedule, ProbabilitySchedule):
        raise FieldError("schedule", f"schedule must be a ProbabilitySchedule (got {type(schedule).__name__})")
    return schedule


def scheduled_probability(probability: float, schedule: ProbabilitySchedule | None, epoch: int) -> float:
    """``probability`` in ``epoch``: times the schedule's factor, when there is a schedule."""
    return probability * (schedule.factor(epoch) if schedule is not None else 1.0)

