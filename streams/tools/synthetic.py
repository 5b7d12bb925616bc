"""Synthetic samples that look like an editor's cut of a recording, for demos, tests and benchmarks.

The raw recording is a mel-like spectrogram: a few slowly varying spectral shapes mixed over time,
plus texture. The editor splits it into segments of varying length and walks through them:
most are kept, some dropped, a few repeated (a chorus pasted twice), and a few neighbours swapped.
Edit frames copy the raw frames they come from, with a small gain change and a little noise on top,
and ``pointers`` records the copy. Everything is drawn from one seed: same seed, same sample.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..sample import Sample
from ..seeding import derive_seed

__all__ = ["EditStyle", "synthetic_dataset", "synthetic_sample"]


@dataclasses.dataclass(frozen=True)
class EditStyle:
    """How the simulated editor cuts: segment lengths in frames and the odds of each move."""

    segment_min: int = 20
    segment_max: int = 200
    drop: float = 0.2
    repeat: float = 0.08
    swap: float = 0.08
    gain_db: float = 1.5
    noise: float = 0.02

    def __post_init__(self) -> None:
        if not 1 <= self.segment_min <= self.segment_max:
            raise ValueError(f"need 1 <= segment_min <= segment_max (got {self.segment_min}, {self.segment_max})")
        for name in ("drop", "repeat", "swap"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1) ({getattr(self, name)!r} given)")


def _raw_mel(rng: np.random.Generator, n_mels: int, frames: int) -> np.ndarray:
    components = 6
    shapes = np.cumsum(rng.normal(size=(components, n_mels)), axis=1)  # smooth spectral envelopes
    shapes -= shapes.mean(axis=1, keepdims=True)
    knots = max(2, frames // 50 + 2)
    weights_at_knots = rng.dirichlet(np.ones(components), size=knots)  # (knots, components)
    positions = np.linspace(0, knots - 1, frames)
    weights = np.stack([np.interp(positions, np.arange(knots), weights_at_knots[:, c])
                        for c in range(components)])  # (components, frames)
    loudness = np.interp(positions, np.arange(knots), rng.normal(0.0, 1.0, size=knots))
    mel = shapes.T @ weights + loudness[None, :] - 4.0
    mel += 0.3 * rng.normal(size=(n_mels, frames))
    return mel.astype(np.float32)


def _edit_plan(rng: np.random.Generator, raw_frames: int, style: EditStyle) -> np.ndarray:
    """The edit as raw frame indices (the pointers)."""
    bounds = [0]
    while bounds[-1] < raw_frames:
        bounds.append(min(raw_frames, bounds[-1] + int(rng.integers(style.segment_min, style.segment_max + 1))))
    segments = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    kept = [s for s in segments if rng.random() >= style.drop] or [segments[0]]
    for i in range(len(kept) - 1):
        if rng.random() < style.swap:
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
    pieces = []
    for segment in kept:
        pieces.append(segment)
        if rng.random() < style.repeat:
            pieces.append(segment)
    return np.concatenate(pieces)


def synthetic_sample(key: str, *, seed: int = 0, n_mels: int = 80, raw_frames: int = 1000,
                     style: EditStyle = EditStyle(), dtype: torch.dtype = torch.float32) -> Sample:
    """One simulated (raw, edit, pointers) sample; deterministic in (seed, key).

    Returns mels of shape ``(n_mels, raw_frames)`` and ``(n_mels, T_edit)`` with ``dtype``, and
    int64 pointers; ``T_edit`` depends on the edit drawn (about ``(1 - drop) * raw_frames``).

    >>> s = synthetic_sample("demo", n_mels=8, raw_frames=300)
    >>> s.raw_mel.shape, bool((s.pointers < 300).all())
    (torch.Size([8, 300]), True)
    """
    if n_mels < 1 or raw_frames < 1:
        raise ValueError(f"n_mels and raw_frames must be >= 1 (got {n_mels}, {raw_frames})")
    rng = np.random.Generator(np.random.PCG64(derive_seed("synthetic", seed, key)))
    raw = _raw_mel(rng, n_mels, raw_frames)
    pointers = _edit_plan(rng, raw_frames, style)
    gain = 10 ** (rng.uniform(-style.gain_db, style.gain_db) / 20)
    edit = raw[:, pointers] + np.float32(np.log(gain))  # log-mel: a gain is an offset
    edit += rng.normal(0.0, style.noise, size=edit.shape).astype(np.float32)
    meta = {"generator": "streams.tools.synthetic", "seed": seed, "hop_length": 256, "sample_rate": 22050,
            "gain_db": round(20 * float(np.log10(gain)), 3)}
    return Sample(key=key, raw_mel=torch.from_numpy(raw).to(dtype), edit_mel=torch.from_numpy(edit).to(dtype),
                  pointers=torch.from_numpy(pointers.astype(np.int64)), meta=meta)


def synthetic_dataset(count: int, *, seed: int = 0, n_mels: int = 80, min_frames: int = 500,
                      max_frames: int = 2000, style: EditStyle = EditStyle(),
                      dtype: torch.dtype = torch.float32, prefix: str = "sample") -> list[Sample]:
    """``count`` synthetic samples with raw lengths drawn from ``[min_frames, max_frames]``."""
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames (got {min_frames}, {max_frames})")
    rng = np.random.Generator(np.random.PCG64(derive_seed("synthetic-lengths", seed)))
    lengths = rng.integers(min_frames, max_frames + 1, size=count)
    return [synthetic_sample(f"{prefix}-{i:06d}", seed=seed, n_mels=n_mels, raw_frames=int(n),
                             style=style, dtype=dtype) for i, n in enumerate(lengths)]
