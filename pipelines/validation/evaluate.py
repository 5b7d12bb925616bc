"""Scoring whole recordings: score rows in, pointer metrics out, in bounded memory.

A :data:`Scorer` turns one sample into a function giving rows ``start:stop`` of its score map
``(stop - start, T_raw)`` (scores before the softmax over raw frames). :func:`score_samples` asks
for ``chunk_frames`` edit rows at a time, so a recording of 18,000 x 18,000 frames never holds
more than ``chunk_frames x T_raw`` scores. Each chunk's log-softmax gives the argmax prediction,
the cross-entropy against the true pointers (the loss) and the rows fed to one jump-penalised
decoder (:class:`.metrics.JumpDecoder`), which decodes every penalty asked for in the same pass:
a grid of penalties costs one scoring. :func:`score_weights` scores a grid of baseline weights the
same way, from one encoding and one matmul per recording.

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
           "model_parts", "model_scorer", "score_samples", "score_weights", "select_decoding",
           "select_penalty"]

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


def _model_features(model: PointerNet, device: torch.device) -> Callable[[Sample], tuple[torch.Tensor, torch.Tensor]]:
    """``sample -> (raw features, edit features)`` of ``model`` (without gradients), each recording
    encoded whole once. Encoding a raw recording is shared by conditions that perturb only the edit:
    the raw features of every raw tensor seen are kept (by identity)."""
    raw_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def encode(mel: torch.Tensor) -> torch.Tensor:
        mel = mel.to(device=device, dtype=torch.float32).unsqueeze(0)
        with torch.no_grad():
            return model.encode(mel, torch.ones(1, mel.shape[-1], dtype=torch.bool, device=device))[0].float()

    def features(sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        held = raw_cache.get(id(sample.raw_mel))
        if held is None or held[0] is not sample.raw_mel:
            held = raw_cache[id(sample.raw_mel)] = (sample.raw_mel, encode(sample.raw_mel))
        return held[1], encode(sample.edit_mel)
    return features


def model_scorer(model: PointerNet, device: torch.device, baseline_weight: float = 0.0) -> Scorer:
    """Scores of a :class:`~pipelines.model.PointerNet` (without gradients), each recording
    encoded whole once (a raw recording once for all its samples); ``baseline_weight`` times the
    baseline's scores added (see :meth:`~pipelines.model.PointerNet.score_rows`). Make a new scorer
    after the model changes."""
    features = _model_features(model, device)

    def scorer(sample: Sample) -> RowScorer:
        raw, edit = features(sample)
        return lambda start, stop: model.score_rows(raw, edit, start, stop, baseline_weight)
    return scorer


def model_parts(model: PointerNet, device: torch.device) -> Callable[[Sample], RowScorer]:
    """Like :func:`model_scorer`, but each call gives ``(2, stop - start, T_raw)``: the model's rows
    and the baseline's (:meth:`~pipelines.model.PointerNet.score_parts`), for :func:`score_weights`."""
    features = _model_features(model, device)

    def scorer(sample: Sample) -> RowScorer:
        raw, edit = features(sample)
        return lambda start, stop: model.score_parts(raw, edit, start, stop)
    return scorer


def score_samples(scorer: Scorer, samples: Sequence[Sample], penalties: Sequence[float] = (DEFAULT_JUMP_PENALTY,),
                  *, rows: int | None = None, chunk_frames: int = 256) -> dict[float, dict[str, float]]:
    """Metrics pooled over ``samples`` for each jump penalty: ``{penalty: metrics}``, where
    metrics are those of :meth:`.metrics.PointerCounts.summary` (the argmax ones are the same
    for every penalty) plus ``loss``, the mean cross-entropy per scored edit frame. An empty
    ``penalties`` skips the decoding: argmax metrics only, returned as ``{None: metrics}``."""
    def mixes(sample: Sample) -> Callable[[int, int], list[torch.Tensor]]:
        score = scorer(sample)
        return lambda start, stop: [score(start, stop)]
    return _pooled(mixes, 1, samples, penalties, rows, chunk_frames)[0]


def score_weights(parts: Callable[[Sample], RowScorer], samples: Sequence[Sample], weights: Sequence[float],
                  penalties: Sequence[float], *, rows: int | None = None,
                  chunk_frames: int = 256) -> dict[float, dict[float, dict[str, float]]]:
    """:func:`score_samples` of ``model + w * baseline`` for every ``w`` of ``weights``:
    ``{w: {penalty: metrics}}``, from one scoring. ``parts(sample)(start, stop)`` gives ``(2, n,
    T_raw)``, the model's rows and the baseline's (:func:`model_parts`): a grid of weights costs
    one encoding and one matmul per recording, and a log-softmax and a decoding per weight. The
    decoders of every weight run side by side, so a recording's decoding state is held ``len(weights)``
    times (:class:`.metrics.JumpDecoder`: ``P * T_edit * T_raw / 8`` bytes each)."""
    weights = list(weights)

    def mixes(sample: Sample) -> Callable[[int, int], list[torch.Tensor]]:
        score = parts(sample)

        def rows_at(start: int, stop: int) -> list[torch.Tensor]:
            model, baseline = score(start, stop)
            return [model + w * baseline if w else model for w in weights]
        return rows_at
    return dict(zip(weights, _pooled(mixes, len(weights), samples, penalties, rows, chunk_frames)))


def _pooled(mixes: Callable[[Sample], Callable[[int, int], list[torch.Tensor]]], count: int,
            samples: Sequence[Sample], penalties: Sequence[float], rows: int | None,
            chunk_frames: int) -> list[dict[float | None, dict[str, float]]]:
    """The metrics of ``count`` sets of score rows (``mixes(sample)(start, stop)``, one tensor per
    set), each pooled over ``samples`` per penalty."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1 ({chunk_frames!r} given)")
    keys = list(penalties) or [None]
    counts = [{key: PointerCounts() for key in keys} for _ in range(count)]
    loss_sums, frames = [0.0] * count, 0
    with torch.no_grad():
        for sample in samples:
            score = mixes(sample)
            start, stop = excerpt_rows(sample.edit_frames, rows)
            pointers = sample.pointers[start:stop].long()
            decoders = [JumpDecoder(penalties) if penalties else None for _ in range(count)]
            predicted: list[list[torch.Tensor]] = [[] for _ in range(count)]
            for low in range(start, stop, chunk_frames):
                high = min(stop, low + chunk_frames)
                target = pointers[low - start:high - start].unsqueeze(1)
                for j, scores in enumerate(score(low, high)):
                    log_probs = torch.log_softmax(scores.float(), dim=-1).cpu()
                    loss_sums[j] += float(-log_probs.gather(1, target).sum())
                    predicted[j].append(log_probs.argmax(-1))
                    if decoders[j] is not None:
                        decoders[j].feed(log_probs)
            frames += stop - start
            for j in range(count):
                argmax = torch.cat(predicted[j]).numpy() if predicted[j] else pointers.numpy()
                paths = list(decoders[j].finish()) if decoders[j] is not None else [None]
                for key, path in zip(keys, paths):
                    counts[j][key].add(argmax, pointers.numpy(), path)
    return [{key: {**counts[j][key].summary(), "loss": loss_sums[j] / max(frames, 1)} for key in keys}
            for j in range(count)]


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
