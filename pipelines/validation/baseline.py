"""The parameter-free baseline: per-band standardised cosine nearest neighbour.

Both recordings are standardised per band over their own frames (as the model's first step),
each frame is scaled to unit length, and an edit frame points at the raw frame of highest cosine
similarity. For the jump-penalised decoding, cosines are turned into log-probabilities with
temperature :data:`TEMPERATURE` (cosine / 0.1), a fixed choice, not fitted.

>>> import torch
>>> from streams import Sample
>>> raw = torch.randn(16, 40, generator=torch.Generator().manual_seed(0))
>>> s = Sample("a", raw, raw[:, [5, 6, 7, 30]], torch.tensor([5, 6, 7, 30]))
>>> raw_emb, edit_emb, scale = nearest_neighbour_embedder(s)
>>> (edit_emb @ raw_emb.T).argmax(-1).tolist()
[5, 6, 7, 30]
"""

from __future__ import annotations

import torch

from streams import Sample

from ..model import standardise

__all__ = ["TEMPERATURE", "nearest_neighbour_embedder"]

TEMPERATURE = 0.1


def _frames(mel: torch.Tensor) -> torch.Tensor:
    """``(n_mels, T)`` → ``(T, n_mels)`` standardised per band, each frame of unit length."""
    mel = mel.float().unsqueeze(0)
    frames = standardise(mel, torch.ones(1, mel.shape[-1], dtype=torch.bool))[0].T
    return torch.nn.functional.normalize(frames, dim=-1)


def nearest_neighbour_embedder(sample: Sample) -> tuple[torch.Tensor, torch.Tensor, float]:
    """An :data:`.evaluate.Embedder`: unit frames of both recordings and scale ``1 / TEMPERATURE``."""
    return _frames(sample.raw_mel), _frames(sample.edit_mel), 1.0 / TEMPERATURE
