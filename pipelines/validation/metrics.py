"""Pointer metrics: accuracy, error in frames, cut-point F1, and the jump-penalised decoding.

- exact: fraction of edit frames whose predicted raw frame is the true one;
- within_2: fraction within 2 raw frames of the true one;
- median_abs_err: median of ``|predicted - true|`` in raw frames over all edit frames;
- cut_f1: a cut is an edit frame ``i >= 1`` with ``p[i] != p[i-1] + 1``; predicted cuts are
  matched one-to-one to true cuts within ``tau`` edit frames (as boundary hit rates are scored in
  music structure analysis, e.g. mir_eval's ``segment.detection``); F1 of the matches, pooled
  over recordings (micro average). A set with no true and no predicted cut scores 1.0.

Cut F1 is scored on :func:`decode_path`, a dynamic programme over raw positions that charges
``jump_penalty`` (in nats of log-probability) per jump and nothing for stepping along the
diagonal (``p[i] = p[i-1] + 1``): plain argmax flickers and invents cuts.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

__all__ = ["JumpDecoder", "PointerCounts", "cut_positions", "decode_path", "match_cuts"]


def cut_positions(pointers: np.ndarray | torch.Tensor) -> np.ndarray:
    """Edit frames ``i >= 1`` where ``pointers[i] != pointers[i-1] + 1``.

    >>> cut_positions(np.array([3, 4, 5, 9, 10, 2])).tolist()
    [3, 5]
    """
    p = np.asarray(pointers, dtype=np.int64)
    return np.flatnonzero(p[1:] != p[:-1] + 1) + 1


def match_cuts(true_cuts: np.ndarray, predicted_cuts: np.ndarray, tau: int = 2) -> int:
    """Largest one-to-one matching of sorted cut positions with ``|t - p| <= tau``.

    For points on a line, the greedy two-pointer sweep is a maximum matching (an interval
    scheduling argument); the loop runs over cuts, not frames.

    >>> match_cuts(np.array([10, 20]), np.array([11, 12, 40]), tau=2)
    1
    """
    i = j = matched = 0
    true_cuts, predicted_cuts = np.sort(true_cuts), np.sort(predicted_cuts)
    while i < len(true_cuts) and j < len(predicted_cuts):
        t, p = true_cuts[i], predicted_cuts[j]
        if abs(int(t) - int(p)) <= tau:
            matched, i, j = matched + 1, i + 1, j + 1
        elif p < t:
            j += 1
        else:
            i += 1
    return matched


class JumpDecoder:
    """Viterbi-style decoding of one recording, fed score rows in chunks to bound memory.

    Maximises ``sum_i scores[i, p_i] - jump_penalty * #{i : p_i != p_{i-1} + 1}``. State: the best
    total per raw position (vectorised over raw frames); per edit frame only one bit per raw
    position is kept (came by a jump or along the diagonal), packed 8 to a byte, so a recording
    of ``T_edit x T_raw`` keeps ``T_edit * T_raw / 8`` bytes. Ties prefer the diagonal.

    >>> scores = np.log(np.array([[.8, .1, .1], [.1, .3, .6], [.1, .2, .7]]))
    >>> dec = JumpDecoder(jump_penalty=1.0)
    >>> dec.feed(scores[:2]); dec.feed(scores[2:])
    >>> dec.finish().tolist(), decode_path(scores, jump_penalty=0.0).tolist()
    ([0, 1, 2], [0, 2, 2])
    """

    def __init__(self, jump_penalty: float):
        if not jump_penalty >= 0:
            raise ValueError(f"jump_penalty must be >= 0 ({jump_penalty!r} given)")
        self.jump_penalty = float(jump_penalty)
        self._total: np.ndarray | None = None
        self._jumped: list[np.ndarray] = []
        self._best_from: list[int] = []
        self._raw_frames = 0

    def feed(self, scores: np.ndarray | torch.Tensor) -> None:
        """Add rows ``(n, T_raw)`` of scores (log-probabilities; ``-inf`` allowed), in edit order."""
        scores = np.asarray(scores.float().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
        if scores.ndim != 2:
            raise ValueError(f"scores must be (n, T_raw); got shape {scores.shape}")
        for row in scores:
            if self._total is None:
                self._raw_frames = row.shape[0]
                self._total = row.copy()
                self._jumped.append(np.packbits(np.ones(row.shape[0], dtype=bool)))
                continue
            if row.shape[0] != self._raw_frames:
                raise ValueError(f"score rows must all have {self._raw_frames} raw frames; got {row.shape[0]}")
            previous = self._total
            best = int(np.argmax(previous))
            jump = previous[best] - self.jump_penalty
            diagonal = np.empty_like(previous)
            diagonal[0] = -np.inf
            diagonal[1:] = previous[:-1]
            jumped = jump > diagonal
            self._total = row + np.where(jumped, jump, diagonal)
            self._jumped.append(np.packbits(jumped))
            self._best_from.append(best)

    def finish(self) -> np.ndarray:
        """The best path, ``(T_edit,)`` int64 raw positions; the decoder is then empty."""
        if self._total is None:
            return np.zeros(0, dtype=np.int64)
        steps = len(self._jumped)
        path = np.empty(steps, dtype=np.int64)
        position = int(np.argmax(self._total))
        for i in range(steps - 1, -1, -1):
            path[i] = position
            if i == 0:
                break
            byte, bit = divmod(position, 8)
            came_by_jump = (self._jumped[i][byte] >> (7 - bit)) & 1
            position = self._best_from[i - 1] if came_by_jump else position - 1
        self.__init__(self.jump_penalty)
        return path


def decode_path(scores: np.ndarray | torch.Tensor, jump_penalty: float) -> np.ndarray:
    """The jump-penalised best path through ``scores (T_edit, T_raw)`` (see :class:`JumpDecoder`).

    >>> lp = np.log(np.full((4, 6), 0.01)); lp[[0, 1, 2, 3], [2, 3, 0, 5]] = 0.0
    >>> decode_path(lp, jump_penalty=100.0).tolist(), decode_path(lp, jump_penalty=0.0).tolist()
    ([2, 3, 4, 5], [2, 3, 0, 5])
    """
    decoder = JumpDecoder(jump_penalty)
    decoder.feed(scores)
    return decoder.finish()


@dataclasses.dataclass
class PointerCounts:
    """Counts pooled over recordings; :meth:`summary` gives the metrics.

    ``add(predicted, true, decoded)`` takes ``(T_edit,)`` int arrays: the argmax prediction (for
    exact / within_2 / median_abs_err), the true pointers, and optionally the decoded path (for
    cut_f1 and decoded_exact).
    """

    tau: int = 2
    frames: int = 0
    exact: int = 0
    within_2: int = 0
    abs_errors: list[np.ndarray] = dataclasses.field(default_factory=list)
    decoded_frames: int = 0
    decoded_exact: int = 0
    cuts_true: int = 0
    cuts_predicted: int = 0
    cuts_matched: int = 0

    def add(self, predicted: np.ndarray, true: np.ndarray, decoded: np.ndarray | None = None) -> None:
        predicted, true = np.asarray(predicted, dtype=np.int64), np.asarray(true, dtype=np.int64)
        if predicted.shape != true.shape:
            raise ValueError(f"predicted {predicted.shape} and true {true.shape} pointers differ in shape")
        errors = np.abs(predicted - true)
        self.frames += errors.size
        self.exact += int((errors == 0).sum())
        self.within_2 += int((errors <= 2).sum())
        self.abs_errors.append(errors)
        if decoded is not None:
            decoded = np.asarray(decoded, dtype=np.int64)
            true_cuts, decoded_cuts = cut_positions(true), cut_positions(decoded)
            self.decoded_frames += decoded.size
            self.decoded_exact += int((decoded == true).sum())
            self.cuts_true += len(true_cuts)
            self.cuts_predicted += len(decoded_cuts)
            self.cuts_matched += match_cuts(true_cuts, decoded_cuts, self.tau)

    def summary(self) -> dict[str, float]:
        """``exact``, ``within_2``, ``median_abs_err`` and, when decoded paths were added,
        ``decoded_exact``, ``cut_f1``, ``cut_precision``, ``cut_recall``."""
        if not self.frames:
            raise ValueError("no edit frames were scored; is the validation set empty?")
        out = {"exact": self.exact / self.frames, "within_2": self.within_2 / self.frames,
               "median_abs_err": float(np.median(np.concatenate(self.abs_errors)))}
        if self.decoded_frames:
            if self.cuts_true == 0 and self.cuts_predicted == 0:
                precision = recall = f1 = 1.0
            else:
                precision = self.cuts_matched / self.cuts_predicted if self.cuts_predicted else 0.0
                recall = self.cuts_matched / self.cuts_true if self.cuts_true else 0.0
                f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out.update(decoded_exact=self.decoded_exact / self.decoded_frames, cut_f1=f1,
                       cut_precision=precision, cut_recall=recall)
        return out
