"""Where each edit sample came from in the recording: an exact piecewise-linear map, and frame pointers.

An :class:`EditMap` is a list of pieces. Piece ``k`` takes over at edit sample ``edit_start_k``, where it
reads raw sample ``raw_start_k``, and advances ``rate_k`` raw samples per edit sample until the next piece
takes over; so edit sample ``e`` in piece ``k`` came from raw position
``raw_start_k + rate_k * (e - edit_start_k)``. Built from an EDL it is the pointer rule of
:mod:`streams.audio.edl` (a piece takes over at the midpoint of each crossfade; rate 1). Time scaling
composes exactly: :meth:`EditMap.stretch_edit` when the edit is resampled or time-stretched (speed,
tempo), :meth:`EditMap.stretch_raw` when the recording is. Every number is a :class:`fractions.Fraction`,
so a chain of stretches stays exact; only evaluation (:meth:`EditMap.raw_positions`,
:func:`frame_pointers`) is in float64.

Each piece also keeps ``blend``: half the length (edit samples) of the crossfade that ends where it
takes over (0 for the first piece and for a hard cut). Around a takeover the edit mixes two places
of the recording, so the content check of a pointer holds only away from them (:meth:`EditMap.near_joins`).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from .edl import EditList

__all__ = ["EditMap", "Piece", "frame_pointers"]


class Piece(NamedTuple):
    """One piece of an :class:`EditMap` (all in samples; see the module doc)."""

    edit_start: Fraction
    raw_start: Fraction
    rate: Fraction
    blend: Fraction = Fraction(0)


def _fraction(value: object, field: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)) or not np.isfinite(float(value)):
        raise ValueError(f"{field} must be a finite number ({value!r} given)")
    return Fraction(value)


@dataclasses.dataclass(frozen=True)
class EditMap:
    """Edit samples -> raw samples, piece by piece (see the module doc); immutable.

    ``pieces`` is non-empty, the first takes over at edit sample 0, takeovers increase strictly and every
    rate is > 0. ``edit_samples`` is the edit's length (the map is defined on ``[0, edit_samples)``).

    >>> m = EditMap.from_edl(EditList(((4.0, 6.0), (0.0, 2.0))), 1)
    >>> m.raw_positions(np.arange(4)).tolist()
    [4.0, 5.0, 0.0, 1.0]
    >>> m.stretch_edit(2).raw_positions(np.arange(8)).tolist()
    [4.0, 4.5, 5.0, 5.5, 0.0, 0.5, 1.0, 1.5]
    """

    pieces: tuple[Piece, ...]
    edit_samples: Fraction

    def __post_init__(self) -> None:
        if not self.pieces:
            raise ValueError("an EditMap needs at least one piece")
        pieces = tuple(Piece(*(_fraction(v, name) for v, name in zip(piece, Piece._fields))) for piece in self.pieces)
        if pieces[0].edit_start != 0:
            raise ValueError(f"the first piece must take over at edit sample 0 ({pieces[0].edit_start} given)")
        for k, piece in enumerate(pieces):
            if piece.rate <= 0:
                raise ValueError(f"pieces[{k}].rate must be > 0 ({piece.rate} given)")
            if piece.blend < 0:
                raise ValueError(f"pieces[{k}].blend must be >= 0 ({piece.blend} given)")
            if k and piece.edit_start <= pieces[k - 1].edit_start:
                raise ValueError(f"pieces[{k}] takes over at {piece.edit_start}, not after pieces[{k - 1}] "
                                 f"({pieces[k - 1].edit_start}); takeovers must increase")
        object.__setattr__(self, "pieces", pieces)
        object.__setattr__(self, "edit_samples", _fraction(self.edit_samples, "edit_samples"))

    @classmethod
    def identity(cls, samples: int) -> EditMap:
        """The map of an edit that is the recording itself (``samples`` long)."""
        return cls((Piece(Fraction(0), Fraction(0), Fraction(1)),), Fraction(samples))

    @classmethod
    def from_edl(cls, edl: EditList, sr: int) -> EditMap:
        """The pointer rule of :mod:`streams.audio.edl` for ``edl`` at ``sr`` Hz, as a map.

        Segment ``k`` (raw start ``s_k``, edit start ``E_k``) takes over at ``E_k + X / 2`` for ``k > 0``
        (``X`` the crossfade in samples), reading raw sample ``s_k + X / 2`` there, at rate 1.
        """
        raw_starts, _, crossfade = edl.sample_plan(sr)
        starts = edl.edit_starts(sr)
        half = Fraction(int(crossfade), 2)
        pieces = [Piece(Fraction(0), Fraction(int(raw_starts[0])), Fraction(1))]
        for edit_start, raw_start in zip(starts[1:], raw_starts[1:]):
            piece = Piece(int(edit_start) + half, int(raw_start) + half, Fraction(1), half)
            if piece.edit_start == pieces[-1].edit_start:  # a segment as long as the crossfade owns no sample
                pieces.pop()
            pieces.append(piece)
        return cls(tuple(pieces), Fraction(edl.edit_samples(sr)))

    def stretch_edit(self, ratio: float | Fraction) -> EditMap:
        """The map after the edit's time axis is stretched by ``ratio`` (> 0): old edit sample ``e`` is now
        at ``e * ratio``, e.g. ``ratio = 1 / speed`` for an edit played ``speed`` times faster."""
        ratio = _positive(ratio)
        return EditMap(tuple(Piece(p.edit_start * ratio, p.raw_start, p.rate / ratio, p.blend * ratio)
                             for p in self.pieces), self.edit_samples * ratio)

    def stretch_raw(self, ratio: float | Fraction) -> EditMap:
        """The map after the recording's time axis is stretched by ``ratio`` (> 0): old raw sample ``r``
        is now at ``r * ratio``."""
        ratio = _positive(ratio)
        return EditMap(tuple(Piece(p.edit_start, p.raw_start * ratio, p.rate * ratio, p.blend)
                             for p in self.pieces), self.edit_samples)

    def with_edit_samples(self, edit_samples: int) -> EditMap:
        """The same map over an edit of ``edit_samples`` samples (a resampler rounds the stretched length)."""
        return EditMap(self.pieces, Fraction(edit_samples))

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(edit_starts, raw_starts, rates)`` as float64 ``(pieces,)`` arrays."""
        table = np.array([[float(p.edit_start), float(p.raw_start), float(p.rate)] for p in self.pieces])
        return table[:, 0], table[:, 1], table[:, 2]

    def raw_positions(self, edit_positions: np.ndarray) -> np.ndarray:
        """Raw positions (float64 samples) of ``edit_positions`` (any shape, edit samples), vectorised."""
        edit_starts, raw_starts, rates = self._arrays()
        positions = np.asarray(edit_positions, dtype=np.float64)
        piece = np.searchsorted(edit_starts[1:], positions, side="right")
        return raw_starts[piece] + rates[piece] * (positions - edit_starts[piece])

    def near_joins(self, edit_positions: np.ndarray, radius: float) -> np.ndarray:
        """Bool mask, ``edit_positions``'s shape: within ``radius`` edit samples of a crossfade (a takeover
        ``+- blend``), where the edit mixes two places of the recording. Takeovers that continue the
        recording without a jump (contiguous pieces at equal rate) count too."""
        positions = np.asarray(edit_positions, dtype=np.float64)
        near = np.zeros(positions.shape, dtype=bool)
        for piece in self.pieces[1:]:
            near |= np.abs(positions - float(piece.edit_start)) < radius + float(piece.blend)
        return near

    def as_meta(self) -> dict:
        """A JSON-friendly form (floats) for a sample's metadata and previews."""
        return {"edit_samples": float(self.edit_samples),
                "pieces": [[float(v) for v in piece] for piece in self.pieces]}


def _positive(ratio: object) -> Fraction:
    value = _fraction(ratio, "ratio")
    if value <= 0:
        raise ValueError(f"ratio must be > 0 ({ratio!r} given)")
    return value


def frame_pointers(edit_map: EditMap, hop_length: int, edit_frames: int, raw_frames: int) -> np.ndarray:
    """Pointers of ``center=True`` frames at ``hop_length``: int64 ``(edit_frames,)`` in ``[0, raw_frames)``.

    Edit frame ``i`` is centred at edit sample ``i * hop_length``; its pointer is the raw frame nearest
    its raw position, ``floor(raw / hop_length + 1/2)`` (halves round up), clipped. For a map built from
    an EDL this is exactly :func:`streams.audio.edl.edit_pointers`.

    >>> frame_pointers(EditMap.from_edl(EditList(((4.0, 6.0), (0.0, 2.0))), 2), 2, 4, 7).tolist()
    [4, 5, 0, 1]
    """
    if raw_frames < 1:
        raise ValueError(f"raw_frames must be >= 1 ({raw_frames} given)")
    raw = edit_map.raw_positions(np.arange(edit_frames, dtype=np.float64) * hop_length)
    pointers = np.floor((2.0 * raw + hop_length) / (2.0 * hop_length)).astype(np.int64)
    return np.clip(pointers, 0, raw_frames - 1)
