"""Training to the plateau: when to stop, and which checkpoint to keep.

Every ``eval_every`` steps a run is scored on training recordings held out from its training
(:func:`.protocols.holdout_split`; never the validation set). :class:`Plateau` remembers the best
score and its step; a run stops once ``patience`` steps have passed without an improvement of
more than ``min_delta``, or at the step cap, whichever comes first, and keeps its best checkpoint
(the standard early-stopping rule). Every arm gets the same cap, interval, patience and metric.

A score may carry a tie-break (higher is better): at an equal score, a better tie-break is an
improvement too. ``validate`` scores minus the held-out loss, with the held-out decoded exact as
the tie-break. Decoded exact on a few held-out recordings moves in steps (a decoded segment is
right or wrong as a whole) and is mostly the decoder's: on the real-music set it stayed at the
untrained model's 0.892 while the held-out loss fell from 5.08 to 3.5 in 100 steps, and its dips
(to 0.832) made runs keep their untrained checkpoint, the nearest neighbour.

>>> rule = Plateau(patience=100)
>>> [rule.update(step, value) for step, value in [(50, 0.5), (100, 0.6), (150, 0.6), (200, 0.59)]]
[True, True, False, False]
>>> rule.best_step, rule.stopped(199), rule.stopped(200)
(100, False, True)
>>> rule = Plateau(patience=100)
>>> [rule.update(step, 0.5, tiebreak) for step, tiebreak in [(0, -4.0), (50, -3.5), (100, -3.6)]]
[True, True, False]
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["Plateau"]


@dataclasses.dataclass
class Plateau:
    """The plateau rule for a higher-is-better metric (see the module docstring)."""

    patience: int
    min_delta: float = 0.0
    best: float = -math.inf
    best_tiebreak: float = -math.inf
    best_step: int = 0
    history: list[tuple[int, float]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"--patience must be a positive integer ({self.patience!r} given)")
        if not self.min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0 ({self.min_delta!r} given)")

    def update(self, step: int, value: float, tiebreak: float = -math.inf) -> bool:
        """Record the score at ``step`` (and its tie-break); True when it is a new best (keep this
        checkpoint): a score above the best by more than ``min_delta``, or equal to it with a
        higher tie-break."""
        if self.history and step <= self.history[-1][0]:
            raise ValueError(f"steps must increase ({step} after {self.history[-1][0]})")
        self.history.append((step, value))
        if value > self.best + self.min_delta or (value == self.best and tiebreak > self.best_tiebreak):
            self.best, self.best_tiebreak, self.best_step = value, tiebreak, step
            return True
        return False

    def stopped(self, step: int) -> bool:
        """True once ``patience`` steps have passed since the best score (and one was recorded)."""
        return bool(self.history) and step - self.best_step >= self.patience
