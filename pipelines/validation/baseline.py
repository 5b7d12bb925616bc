"""The parameter-free baseline: per-band standardised cosine nearest neighbour.

Both recordings are standardised per band over their own frames (as the model's first step),
each frame is scaled to unit length, and an edit frame points at the raw frame of highest cosine
similarity. For the jump-penalised decoding, cosines are turned into log-probabilities with
temperature :data:`~pipelines.model.COSINE_TEMPERATURE` (cosine / 0.1), a fixed choice, not
fitted; the decoder's jump penalty is chosen on held-out training recordings, as the model's is.
An untrained :class:`~pipelines.model.PointerNet` scores exactly this.

>>> import torch
>>> from streams import Sample
>>> raw = torch.randn(16, 40, generator=torch.Generator().manual_seed(0))
>>> s = Sample("a", raw, raw[:, [5, 6, 7, 30]], torch.tensor([5, 6, 7, 30]))
>>> nearest_neighbour_scorer(s)(0, 4).argmax(-1).tolist()
[5, 6, 7, 30]
"""

from __future__ import annotations

import torch

from streams import Sample

from ..model import COSINE_TEMPERATURE, unit_frames
from .evaluate import RowScorer

__all__ = ["nearest_neighbour_scorer"]


def _unit(mel: torch.Tensor) -> torch.Tensor:
    """``(n_mels, T)`` → ``(T, n_mels)`` standardised per band, each frame of unit length."""
    mel = mel.float().unsqueeze(0)
    return unit_frames(mel, torch.ones(1, mel.shape[-1], dtype=torch.bool))[0]


def nearest_neighbour_scorer(sample: Sample) -> RowScorer:
    """A :data:`.evaluate.Scorer`: rows ``start:stop`` of ``cos(edit, raw) / COSINE_TEMPERATURE``."""
    raw, edit = _unit(sample.raw_mel), _unit(sample.edit_mel) / COSINE_TEMPERATURE
    return lambda start, stop: edit[start:stop] @ raw.T
