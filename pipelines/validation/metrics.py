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

_BLOCK_ROWS = 1024
"""Rows of decoding state stored per block (:class:`JumpDecoder`)."""


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
    """Viterbi-style decoding of one recording under several jump penalties at once, fed score rows
    in chunks to bound memory.

    For each ``jump_penalties[j]``, maximises ``sum_i scores[i, p_i] - jump_penalty * #{i : p_i !=
    p_{i-1} + 1}``. State: the best total per penalty and raw position (vectorised over both;
    float32, relative to each penalty's best); per edit frame only one bit per penalty and raw
    position is kept (came by a jump or along the diagonal), packed 8 to a byte, so a recording of
    ``T_edit x T_raw`` keeps ``P * T_edit * T_raw / 8`` bytes for ``P`` penalties. Ties prefer the
    diagonal. The penalties share every pass over a row: a grid of 7 costs about half of 7
    one-penalty decoders.

    >>> scores = np.log(np.array([[.8, .1, .1], [.1, .3, .6], [.1, .2, .7]]))
    >>> dec = JumpDecoder([1.0, 0.0])
    >>> dec.feed(scores[:2]); dec.feed(scores[2:])
    >>> dec.finish().tolist()
    [[0, 1, 2], [0, 2, 2]]
    """

    def __init__(self, jump_penalties: float | list[float] | tuple[float, ...]):
        penalties = np.atleast_1d(np.asarray(jump_penalties, dtype=np.float64))
        if penalties.ndim != 1 or not penalties.size or not np.all(penalties >= 0):
            raise ValueError(f"jump_penalty must be one or more numbers >= 0 ({jump_penalties!r} given)")
        self.jump_penalties = tuple(float(p) for p in penalties)
        self._jump = (-penalties).astype(np.float32)[:, None]
        self._total: np.ndarray | None = None
        self._spare: np.ndarray | None = None  # the next row's totals are written here (no allocation per row)
        self._jumped_spare: np.ndarray | None = None
        # per row: the packed bits (P, ceil(T_raw / 8)) and each penalty's best previous position,
        # kept in blocks of _BLOCK_ROWS rows: one small array per row, kept for the whole recording,
        # would be carved out of the memory freed by the score maps around it, which then cannot be
        # reused for the next map (7.5 GB resident for one 18,000-frame recording at 3 weights)
        self._jumped: list[np.ndarray] = []
        self._best_from: list[np.ndarray] = []
        self._rows = 0
        self._raw_frames = 0

    def feed(self, scores: np.ndarray | torch.Tensor) -> None:
        """Add rows ``(n, T_raw)`` of scores (log-probabilities; ``-inf`` allowed), in edit order."""
        # float32 throughout, half the time of float64 totals: the totals are kept relative to the
        # previous row's best, so they stay within a jump penalty plus one row's spread of 0 however
        # long the recording, and float32 resolves them as finely as the scores themselves
        scores = np.asarray(scores.float().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float32)
        if scores.ndim != 2:
            raise ValueError(f"scores must be (n, T_raw); got shape {scores.shape}")
        count = len(self.jump_penalties)
        rows = np.arange(count)
        for row in scores:
            if self._total is None:
                self._raw_frames = row.shape[0]
                self._total = np.repeat(row[None], count, axis=0)
                self._spare = np.empty_like(self._total)
                self._jumped_spare = np.ones((count, row.shape[0]), dtype=bool)  # row 0: no predecessor
                self._keep(self._jumped_spare, np.zeros(count, dtype=np.int64))
                continue
            if row.shape[0] != self._raw_frames:
                raise ValueError(f"score rows must all have {self._raw_frames} raw frames; got {row.shape[0]}")
            previous, total, jumped = self._total, self._spare, self._jumped_spare
            best = np.argmax(previous, axis=1)
            top = previous[rows, best]
            if not np.all(np.isfinite(top)):
                raise ValueError("a score row has no finite entry; every edit frame needs a raw frame it can point at")
            previous -= top[:, None]  # relative to the best: the path choice is unchanged
            np.less(previous[:, :-1], self._jump, out=jumped[:, 1:])  # ties prefer the diagonal
            total[:, :1] = self._jump
            np.maximum(previous[:, :-1], self._jump, out=total[:, 1:])
            total += row
            self._total, self._spare = total, previous
            self._keep(jumped, best)

    def _keep(self, jumped: np.ndarray, best_from: np.ndarray) -> None:
        """Store one row's bits and the best previous positions (row 0: unused)."""
        block, at = divmod(self._rows, _BLOCK_ROWS)
        if block == len(self._jumped):
            count, width = jumped.shape[0], (jumped.shape[1] + 7) // 8
            self._jumped.append(np.empty((_BLOCK_ROWS, count, width), dtype=np.uint8))
            self._best_from.append(np.empty((_BLOCK_ROWS, count), dtype=np.int64))
        self._jumped[block][at] = np.packbits(jumped, axis=1)
        self._best_from[block][at] = best_from
        self._rows += 1

    def finish(self) -> np.ndarray:
        """The best path per penalty, ``(P, T_edit)`` int64 raw positions; the decoder is then empty."""
        count = len(self.jump_penalties)
        if self._total is None:
            return np.zeros((count, 0), dtype=np.int64)
        steps = self._rows
        rows = np.arange(count)
        path = np.empty((count, steps), dtype=np.int64)
        position = np.argmax(self._total, axis=1)
        for i in range(steps - 1, -1, -1):
            path[:, i] = position
            if i == 0:
                break
            block, at = divmod(i, _BLOCK_ROWS)
            came_by_jump = (self._jumped[block][at, rows, position >> 3] >> (7 - (position & 7))) & 1
            position = np.where(came_by_jump, self._best_from[block][at], position - 1)
        self.__init__(self.jump_penalties)
        return path


def decode_path(scores: np.ndarray | torch.Tensor, jump_penalty: float) -> np.ndarray:
    """The jump-penalised best path through ``scores (T_edit, T_raw)`` (see :class:`JumpDecoder`).

    >>> lp = np.log(np.full((4, 6), 0.01)); lp[[0, 1, 2, 3], [2, 3, 0, 5]] = 0.0
    >>> decode_path(lp, jump_penalty=100.0).tolist(), decode_path(lp, jump_penalty=0.0).tolist()
    ([2, 3, 4, 5], [2, 3, 0, 5])
    """
    decoder = JumpDecoder([jump_penalty])
    decoder.feed(scores)
    return decoder.finish()[0]


def _f1(matched: int, true: int, predicted: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``matched`` cuts; 1.0 each when there is no cut on either side."""
    if true == 0 and predicted == 0:
        return 1.0, 1.0, 1.0
    precision = matched / predicted if predicted else 0.0
    recall = matched / true if true else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


@dataclasses.dataclass
class PointerCounts:
    """Counts pooled over recordings; :meth:`summary` gives the metrics.

    ``add(predicted, true, decoded)`` takes ``(T_edit,)`` int arrays: the argmax prediction, the
    true pointers, and optionally the decoded path. Cuts are matched within ``tau`` and within
    ``wide_tau`` edit frames.
    """

    tau: int = 2
    wide_tau: int = 5
    frames: int = 0
    exact: int = 0
    within_2: int = 0
    abs_errors: list[np.ndarray] = dataclasses.field(default_factory=list)
    cuts_true: int = 0
    argmax_cuts: int = 0
    argmax_matched: list[int] = dataclasses.field(default_factory=lambda: [0, 0])
    decoded_frames: int = 0
    decoded_exact: int = 0
    decoded_within_2: int = 0
    decoded_cuts: int = 0
    decoded_matched: list[int] = dataclasses.field(default_factory=lambda: [0, 0])

    def add(self, predicted: np.ndarray, true: np.ndarray, decoded: np.ndarray | None = None) -> None:
        predicted, true = np.asarray(predicted, dtype=np.int64), np.asarray(true, dtype=np.int64)
        if predicted.shape != true.shape:
            raise ValueError(f"predicted {predicted.shape} and true {true.shape} pointers differ in shape")
        errors = np.abs(predicted - true)
        self.frames += errors.size
        self.exact += int((errors == 0).sum())
        self.within_2 += int((errors <= 2).sum())
        self.abs_errors.append(errors)
        true_cuts, argmax_cuts = cut_positions(true), cut_positions(predicted)
        self.cuts_true += len(true_cuts)
        self.argmax_cuts += len(argmax_cuts)
        for k, tau in enumerate((self.tau, self.wide_tau)):
            self.argmax_matched[k] += match_cuts(true_cuts, argmax_cuts, tau)
        if decoded is not None:
            decoded = np.asarray(decoded, dtype=np.int64)
            if decoded.shape != true.shape:
                raise ValueError(f"decoded {decoded.shape} and true {true.shape} pointers differ in shape")
            decoded_cuts = cut_positions(decoded)
            self.decoded_frames += decoded.size
            self.decoded_exact += int((decoded == true).sum())
            self.decoded_within_2 += int((np.abs(decoded - true) <= 2).sum())
            self.decoded_cuts += len(decoded_cuts)
            for k, tau in enumerate((self.tau, self.wide_tau)):
                self.decoded_matched[k] += match_cuts(true_cuts, decoded_cuts, tau)

    def summary(self) -> dict[str, float]:
        """Argmax: ``exact``, ``within_2``, ``median_abs_err``, ``argmax_cut_f1`` (within ``tau``)
        and ``argmax_cut_f1_5`` (within ``wide_tau``); when decoded paths were added, the decoded
        path's ``decoded_exact``, ``decoded_within_2``, ``cut_f1``, ``cut_precision``,
        ``cut_recall`` (within ``tau``) and ``cut_f1_5`` (within ``wide_tau``)."""
        if not self.frames:
            raise ValueError("no edit frames were scored; is the validation set empty?")
        out = {"exact": self.exact / self.frames, "within_2": self.within_2 / self.frames,
               "median_abs_err": float(np.median(np.concatenate(self.abs_errors))),
               "argmax_cut_f1": _f1(self.argmax_matched[0], self.cuts_true, self.argmax_cuts)[2],
               "argmax_cut_f1_5": _f1(self.argmax_matched[1], self.cuts_true, self.argmax_cuts)[2]}
        if self.decoded_frames:
            precision, recall, f1 = _f1(self.decoded_matched[0], self.cuts_true, self.decoded_cuts)
            out.update(decoded_exact=self.decoded_exact / self.decoded_frames,
                       decoded_within_2=self.decoded_within_2 / self.decoded_frames,
                       cut_f1=f1, cut_precision=precision, cut_recall=recall,
                       cut_f1_5=_f1(self.decoded_matched[1], self.cuts_true, self.decoded_cuts)[2])
        return out
