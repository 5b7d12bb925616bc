"""Edits like an editor's: the drawing rules of simulated EDLs, shared by ``simulate-edits`` and the re-edit stage.

An edit: the recording is cut at arbitrary sample positions into pieces of ``min_piece``-``max_piece``
seconds; walking them in order, each piece is dropped (p 0.15), kept, or kept and swapped with the next
(p 0.1); now and then (p 0.1) an earlier piece is played again. Pieces that end up contiguous in the
recording are merged into one segment, so every segment boundary is a real cut; an order that leaves the
recording whole is drawn again. One crossfade of 5-40 ms joins the segments.

Drawing takes an explicit numpy ``Generator``: the same generator state gives the same EDL.
"""

from __future__ import annotations

import itertools

import numpy as np

from .edl import EditList

__all__ = ["draw_edl", "min_edit_seconds"]


_MAX_REDRAWS = 20


def _draw_order(n_pieces: int, rng: np.random.Generator) -> list[int]:
    """The pieces' edit order: drops, swaps and repeats as the module doc says."""
    order: list[int] = []
    i = 0
    while i < n_pieces:
        draw = rng.random()
        if draw < 0.15:
            i += 1
            continue
        if draw < 0.25 and i + 1 < n_pieces:
            order += [i + 1, i]
            i += 2
        else:
            order.append(i)
            i += 1
        if rng.random() < 0.1:
            order.append(int(rng.integers(0, order[-1] + 1)))
    return order or [int(rng.integers(0, n_pieces))]


def _merge_contiguous(pieces: list[tuple[float, float]], order: list[int]) -> list[list[float]]:
    """Segments of the pieces in ``order``, with pieces contiguous in the recording merged (no cut there)."""
    segments: list[list[float]] = []
    for index in order:
        start, end = pieces[index]
        if segments and segments[-1][1] == start:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    return segments


def min_edit_seconds(min_piece: float) -> float:
    """The shortest recording :func:`draw_edl` can cut into pieces of ``min_piece`` seconds: two pieces."""
    return 2 * min_piece


def draw_edl(duration_seconds: float, rng: np.random.Generator, *, min_piece: float = 2.0,
             max_piece: float = 8.0, min_crossfade: float = 0.005, max_crossfade: float = 0.040) -> EditList:
    """A realistic EDL for a recording of ``duration_seconds`` (see the module doc for the recipe).

    >>> edl = draw_edl(60.0, np.random.default_rng(0))
    >>> 0.005 <= edl.crossfade <= 0.040 and all(0 <= s < e <= 60.0 for s, e in edl.segments)
    True
    """
    if not 0 < min_piece <= max_piece:
        raise ValueError(f"need 0 < min_piece <= max_piece (min_piece={min_piece}, max_piece={max_piece})")
    if duration_seconds < min_edit_seconds(min_piece):
        raise ValueError(f"a recording of {duration_seconds:.2f} s is too short to edit in pieces of at least "
                         f"{min_piece} s (needs {min_edit_seconds(min_piece)} s)")
    cuts = [0.0]
    while duration_seconds - cuts[-1] > max_piece:
        cuts.append(cuts[-1] + float(rng.uniform(min_piece, max_piece)))
    if duration_seconds - cuts[-1] < min_piece and len(cuts) > 1:
        cuts.pop()  # the last piece would be too short: it joins the one before
    if len(cuts) == 1:  # shorter than max_piece: still one cut
        cuts.append(float(rng.uniform(min_piece, duration_seconds - min_piece)))
    cuts.append(float(duration_seconds))
    pieces = list(itertools.pairwise(cuts))
    for _ in range(_MAX_REDRAWS):
        segments = _merge_contiguous(pieces, _draw_order(len(pieces), rng))
        if len(segments) > 1:  # an edit with no cut is not an edit: draw the order again
            break
    else:  # a recording of two or three pieces that kept coming out whole: swap its first two
        segments = _merge_contiguous(pieces, [1, 0, *range(2, len(pieces))])
    crossfade = float(rng.uniform(min_crossfade, max_crossfade))
    return EditList(tuple((s, e) for s, e in segments), round(crossfade, 6))
