"""B1 chunk shuffle: reorder fixed-size chunks of the raw mel and remap the pointers.

Simulates recordings made out of order. The raw mel is cut into chunks of ``chunk_size`` frames
(the last one shorter when ``chunk_size`` does not divide ``T_raw``; it is shuffled too), the
chunks are concatenated in a new order, and each pointer moves with its frame: a frame at offset
``k`` of old chunk ``c`` lands at ``new_start[c] + k``, where ``new_start`` (the old-to-new map
of chunk starts) comes from a cumulative sum over the new order. The edit mel is untouched and
``raw_mel[:, pointers[i]]`` is the same frame as before, for every ``i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..checks import check_int
from ..sample import Sample
from ..seeding import sample_rng
from .augment import AugmentStage
from .registry import StageSettings, register_stage
from .spectral import gather_frames

__all__ = ["CAT_MAX_CHUNKS", "ChunkShuffleSettings", "ChunkShuffleStage", "chunk_count", "shuffle_chunks"]

CAT_MAX_CHUNKS = 256
"""Up to this many chunks the raw mel is rebuilt by concatenating chunk views (a plain copy);
beyond it, by one gather over a frame index (slicing thousands of views costs more)."""


def chunk_count(raw_frames: int, chunk_size: int) -> int:
    """Number of chunks of ``chunk_size`` frames (the last possibly shorter) in ``raw_frames``.

    >>> chunk_count(2500, 1000), chunk_count(2000, 1000), chunk_count(0, 1000)
    (3, 2, 0)
    """
    return -(-raw_frames // chunk_size)


def shuffle_chunks(sample: Sample, order: Sequence[int], chunk_size: int) -> Sample:
    """``sample`` with raw chunk ``order[j]`` moved to position ``j``, pointers remapped.

    ``order`` must be a permutation of ``range(chunk_count(T_raw, chunk_size))`` (``ValueError``
    otherwise). Shapes and dtypes are kept; the edit mel is shared, not copied. The identity order
    (any order of a single chunk) returns ``sample`` itself.

    >>> raw = torch.arange(5.0).view(1, 5)
    >>> s = Sample("a", raw, raw[:, [0, 4]], torch.tensor([0, 4]))
    >>> out = shuffle_chunks(s, [2, 0, 1], chunk_size=2)
    >>> out.raw_mel.tolist(), out.pointers.tolist()
    ([[4.0, 0.0, 1.0, 2.0, 3.0]], [1, 0])
    """
    check_int(chunk_size, "chunk_size", minimum=1)
    raw_frames = sample.raw_frames
    n_chunks = chunk_count(raw_frames, chunk_size)
    order_index = np.asarray(order, dtype=np.int64)
    every_chunk = np.arange(n_chunks)
    if order_index.shape != (n_chunks,) or not np.array_equal(np.sort(order_index), every_chunk):
        raise ValueError(f"order must be a permutation of range({n_chunks}) for {raw_frames} raw frames in chunks "
                         f"of {chunk_size} ({list(order)} given)")
    if np.array_equal(order_index, every_chunk):
        return sample
    # chunk bookkeeping (a few values) in numpy; the per-frame work is three tensor ops on pointers
    old_starts = every_chunk * chunk_size
    lengths = np.minimum(raw_frames - old_starts, chunk_size)
    placed_lengths = lengths[order_index]
    new_starts = np.empty(n_chunks, dtype=np.int64)
    new_starts[order_index] = np.cumsum(placed_lengths) - placed_lengths  # old chunk -> its new first frame
    shifts = torch.from_numpy(new_starts - old_starts)  # old chunk -> how far its frames move
    chunks = torch.div(sample.pointers, chunk_size, rounding_mode="floor")
    pointers = sample.pointers + shifts.index_select(0, chunks)
    if n_chunks <= CAT_MAX_CHUNKS:
        raw = sample.raw_mel
        raw_mel = torch.cat([raw[:, start:start + chunk_size] for start in old_starts[order_index].tolist()], dim=1)
    else:
        source_frames = np.repeat(old_starts[order_index] - new_starts[order_index], placed_lengths)
        raw_mel = gather_frames(sample.raw_mel, torch.from_numpy(source_frames + np.arange(raw_frames)))
    return sample.replace(raw_mel=raw_mel, pointers=pointers)


class ChunkShuffleSettings(StageSettings):
    """The ``chunk_shuffle`` block (B1), ``probability`` as in the plan; :class:`ChunkShuffleStage` has the fields."""

    probability: float = 0.3
    chunk_size: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.chunk_size, "chunk_size", minimum=1)


@register_stage("chunk_shuffle", ChunkShuffleSettings)
class ChunkShuffleStage(AugmentStage):
    """Shuffle ``chunk_size``-frame chunks of the raw mel (see the module docstring).

    Args:
        chunk_size: frames per chunk (plan: 1000; 500 .. 2000 is 5 .. 20 s at a 10 ms hop).

    The order is a uniform permutation of all chunks, remainder included (so it can be the
    identity; a raw mel of at most one chunk is never changed). Params recorded:
    ``{"chunk_size": n, "order": [old chunk index at each new position]}``. Cost: one copy of the
    raw mel plus index arithmetic on the pointers.

    Examples:
        >>> from streams.stages.chunk_shuffle import ChunkShuffleStage
        >>> from streams.sample import Sample
        >>> raw = torch.arange(6.0).view(1, 6)
        >>> s = Sample("a", raw, raw[:, [5, 0]], torch.tensor([5, 0]))
        >>> out = ChunkShuffleStage(probability=1.0, chunk_size=2).augment(s, seed=4)
        >>> bool(torch.equal(out.raw_mel[:, out.pointers], s.edit_mel)), sorted(out.meta["augmentations"][0]["order"])
        (True, [0, 1, 2])
    """

    name = "chunk_shuffle"
    keyed_generator = staticmethod(sample_rng)

    def draw(self, sample: Sample, generator: np.random.Generator) -> dict[str, Any] | None:
        n_chunks = chunk_count(sample.raw_frames, self.chunk_size)
        if n_chunks < 2:
            return None  # one chunk cannot move: nothing to do, nothing recorded
        return {"chunk_size": self.chunk_size, "order": generator.permutation(n_chunks).tolist()}

    def apply(self, sample: Sample, params: dict[str, Any]) -> Sample:
        return shuffle_chunks(sample, params["order"], params["chunk_size"])
