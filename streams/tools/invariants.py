"""Checks of the pointer invariant, for tests and for users auditing their own data.

In a *tagged* sample every edit frame is an exact copy of the raw frame it points to
(``edit_mel == raw_mel[:, pointers]``). Every pointer-aware stage must keep that equality exactly;
spectral stages in ``"shared"`` mode keep it too (the edit frame gets what its raw frame got).
So one check, :func:`pointer_content_error`, tests any stage without knowing how it moved frames.
"""

from __future__ import annotations

import torch

from ..sample import Sample

__all__ = ["make_tagged_sample", "pointer_content_error"]


def pointer_content_error(sample: Sample) -> float:
    """Largest ``|edit_mel[:, i] - raw_mel[:, pointers[i]]|`` over all frames (0.0 if none)."""
    if sample.edit_frames == 0:
        return 0.0
    gathered = sample.raw_mel.index_select(1, sample.pointers)
    return float((gathered.float() - sample.edit_mel.float()).abs().max())


def make_tagged_sample(key: str, n_mels: int, raw_frames: int, pointers: torch.Tensor,
                       *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Sample:
    """A sample whose raw frames are random and pairwise distinct, and whose edit frames copy them.

    Row 0 holds the raw frame index (so frames are distinct even with ``n_mels == 1``); the other
    rows are standard normal draws. ``pointers`` is ``(T_edit,)`` with values in ``[0, raw_frames)``.
    """
    raw = torch.randn(n_mels, raw_frames, generator=generator, dtype=torch.float32)
    raw[0] = torch.arange(raw_frames, dtype=torch.float32)
    raw = raw.to(dtype)
    pointers = pointers.to(torch.int64)
    return Sample(key=key, raw_mel=raw, edit_mel=raw.index_select(1, pointers), pointers=pointers)
