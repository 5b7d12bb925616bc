"""Scoring whole recordings: score rows in, pointer metrics out, in bounded memory.

A :data:`Scorer` turns one sample into a function giving rows ``start:stop`` of its score map
``(stop - start, T_raw)`` (scores before the softmax over raw frames). :func:`score_samples` asks
for ``chunk_frames`` edit rows at a time, so a recording of 18,000 x 18,000 frames never holds
more than ``chunk_frames x T_raw`` scores. Each chunk's log-softmax gives the argmax prediction,
the cross-entropy against the true pointers (the loss) and the rows fed to one jump-penalised
decoder (:class:`.metrics.JumpDecoder`) per penalty asked for: the decoders share the scores,
so a grid of penalties costs one scoring and several decodings.

Both recordings of a sample are always encoded (and standardised) whole; ``rows`` (an excerpt of
that many edit rows centred in the edit, searched against the whole raw recording) only limits
which rows are scored. ``rows=None`` scores every edit frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from streams import Sample

from ..model import PointerNet
from .metrics import JumpDecoder, PointerCounts

__all__ = ["BASELINE_WEIGHTS", "DEFAULT_JUMP_PENALTY", "PENALTY_GRID", "RowScorer", "Scorer", "excerpt_rows",
           "model_scorer", "score_samples", "select_decoding", "select_penalty"]

RowScorer = Callable[[int, int], torch.Tensor]
"""``(start, stop) -> scores (stop - start, T_raw)``, float32."""
Scorer = Callable[[Sample], RowScorer]

DEFAULT_JUMP_PENALTY = 4.0
"""Nats of log-probability charged per jump, when no penalty was chosen."""
PENALTY_GRID = (4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0)
"""The jump penalties tried on the training recordings held out from training: the nearest
neighbour's best is 16-64, a trained model's 256-4096 and more (its scores are sharper)."""

BASELINE_WEIGHTS = (0.0, 1.0, 3.0)
"""The weights of the baseline's scores added to a trained model's for decoding, tried with every
penalty on the held-out training recordings (:meth:`~pipelines.model.PointerNet.score_rows`)."""


def excerpt_rows(edit_frames: int, rows: int | None) -> tuple[int, int]:
    """The edit rows scored: ``rows`` centred in the edit, or all of them (``rows`` None).

    >>> excerpt_rows(100, 40), excerpt_rows(100, None), excerpt_rows(30, 40)
    ((30, 70), (0, 100), (0, 30))
    """
    if rows is None or edit_frames <= rows:
        return 0, edit_frames
    start = (edit_frames - rows) // 2
    return start, start + rows


def model_scorer(model: PointerNet, device: torch.device, baseline_weight: float = 0.0) -> Scorer:
    """Scores of a :class:`~pipelines.model.PointerNet` (without gradients), each recording
    encoded whole once; ``baseline_weight`` times the baseline's scores added (see
    :meth:`~pipelines.model.PointerNet.score_rows`).

    Encoding a raw recording is shared by conditions that perturb only the edit: the scorer
    keeps the features of every raw tensor it has seen (by identity). Make a new scorer after the
    model changes."""
    raw_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def encode(mel: torch.Tensor) -> torch.Tensor:
        mel = mel.to(device=device, dtype=torch.float32).unsqueeze(0)
        with torch.no_grad():
            return model.encode(mel, torch.ones(1, mel.shape[-1], dtype=torch.bool, device=device))[0].float()

    def scorer(sample: Sample) -> RowScorer:
        held = raw_cache.get(id(sample.raw_mel))
        if held is None or held[0] is not sample.raw_mel:
            held = raw_cache[id(sample.raw_mel)] = (sample.raw_mel, encode(sample.raw_mel))
        raw, edit = held[1], encode(sample.edit_mel)
        return lambda start, stop: model.score_rows(raw, edit, start, stop, baseline_weight)
    return scorer


def score_samples(scorer: Scorer, samples: Sequence[Sample], penalties: Sequence[float] = (DEFAULT_JUMP_PENALTY,),
                  *, rows: int | None = None, chunk_frames: int = 256) -> dict[float, dict[str, float]]:
    """Metrics pooled over ``samples`` for each jump penalty: ``{penalty: metrics}``, where
    metrics are those of :meth:`.metrics.PointerCounts.summary` (the argmax ones are the same
    for every penalty) plus ``loss``, the mean cross-entropy per scored edit frame. An empty
    ``penalties`` skips the decoding (argmax metrics only, under the key ``0.0``... of no decoder:
    returned as ``{None: metrics}``)."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1 ({chunk_frames!r} given)")
    keys = list(penalties) or [None]
    counts = {key: PointerCounts() for key in keys}
    loss_sum, frames = 0.0, 0
    with torch.no_grad():
        for sample in samples:
            score = scorer(sample)
            start, stop = excerpt_rows(sample.edit_frames, rows)
            pointers = sample.pointers[start:stop].long()
            decoders = [JumpDecoder(p) for p in penalties]
            predicted = []
            for low in range(start, stop, chunk_frames):
                high = min(stop, low + chunk_frames)
                log_probs = torch.log_softmax(score(low, high).float(), dim=-1).cpu()
                target = pointers[low - start:high - start]
                loss_sum += float(-log_probs.gather(1, target.unsqueeze(1)).sum())
                predicted.append(log_probs.argmax(-1))
                for decoder in decoders:
                    decoder.feed(log_probs)
            frames += stop - start
            predicted_all = torch.cat(predicted).numpy() if predicted else pointers.numpy()
            paths = [decoder.finish() for decoder in decoders] or [None]
            for key, path in zip(keys, paths):
                counts[key].add(predicted_all, pointers.numpy(), path)
    loss = loss_sum / max(frames, 1)
    return {key: {**counts[key].summary(), "loss": loss} for key in keys}


def select_decoding(by_weight: dict[float, dict[float, dict[str, float]]],
                    metric: str = "decoded_exact") -> tuple[float, float]:
    """The ``(baseline weight, penalty)`` with the highest ``metric`` (ties: the smallest weight,
    then the smallest penalty).

    >>> grid = {0.0: {4.0: {"decoded_exact": 0.7}}, 3.0: {4.0: {"decoded_exact": 0.7}, 16.0: {"decoded_exact": 0.6}}}
    >>> select_decoding(grid)
    (0.0, 4.0)
    """
    return max(((w, p) for w in sorted(by_weight) for p in sorted(by_weight[w])),
               key=lambda wp: (by_weight[wp[0]][wp[1]][metric], -wp[0], -wp[1]))


def select_penalty(by_penalty: dict[float, dict[str, float]], metric: str = "decoded_exact") -> float:
    """The penalty with the highest ``metric`` (ties: the smallest penalty).

    >>> select_penalty({1.0: {"decoded_exact": 0.5}, 4.0: {"decoded_exact": 0.7}, 8.0: {"decoded_exact": 0.7}})
    4.0
    """
    return select_decoding({0.0: by_penalty}, metric)[1]
