"""A2 SpecAugment: mask random frequency bands and time spans (Park et al., 2019).

How masks are drawn (the plan's config keys ``freq_masks``, ``freq_width``, ``time_masks``,
``time_width`` take an int or an inclusive ``[low, high]`` pair):

* a count given as an int is exact (``freq_masks=2``: two masks, as in Park et al. and the plan's
  code); a pair draws the count uniformly (``freq_masks=(1, 3)``: the issue's "1-3 masks");
* a width given as an int ``w`` is drawn uniformly in ``[1, w]`` (the plan's code; Park et al.
  draw in ``[0, w]``, where 0 is a no-op); a pair draws in ``[low, high]``
  (``freq_width=(10, 30)``, ``time_width=(20, 100)``: the plan's parameter ranges);
* a mask wider than its axis is cut to the axis (with ``n_mels=8`` a 20-bin mask covers all 8);
  starts are uniform over the positions where the mask fits; masks may overlap;
* time masks share a budget: their widths sum to at most ``floor(max_time_fraction * T)``
  (default 0.2, what the plan's code allows with its two masks of at most ``T // 10``); a mask
  past the budget is shortened or dropped. So a sequence shorter than 5 frames gets no time mask
  by default, and 1.0 lifts the cap;
* adaptive time masking (Park et al., "SpecAugment on Large Scale Datasets", 2020), with
  ``adaptive=True``: the count is ``floor(time_mask_multiplicity * T)`` instead of
  ``time_masks``, and widths are drawn in ``[1, floor(time_mask_ratio * T)]`` instead of
  ``time_width`` (set either to ``None`` to keep the fixed setting for that part). The defaults,
  0.002 and 0.05, give the plan's 2 masks of at most 50 frames at 1,000 frames and scale
  linearly with length; the budget still caps the masked fraction.

Masked values become ``fill``: ``"zero"`` (the plan) or ``"mean"`` (the mel's mean, rounded to
its dtype; :func:`mel_mean`, the same whatever the thread count). In shared mode every choice is
drawn on the raw mel: bands are the same in both mels, time masks lie on raw frames and an edit
frame is masked exactly when the raw frame it points to is, and ``"mean"`` is the raw mel's mean
for both, so a masked edit frame still equals its raw frame (the pointer content invariant holds
for both fills).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from ..checks import check_bool, check_choice, check_float, check_int, check_int_range
from ..sample import Sample
from .registry import register_stage
from .spectral import SpectralAugmentStage, SpectralSettings

__all__ = ["FILLS", "MEAN_BLOCK", "SpecAugmentSettings", "SpecAugmentStage", "draw_spans", "mel_mean", "span_mask"]

FILLS = ("zero", "mean")

MEAN_BLOCK = 4096
"""Values per block in :func:`mel_mean` (for a one-row or non-contiguous mel): below torch's
parallel grain (32,768), so a block sum is always computed by one thread."""

_NUMPY_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}

_LOOP_MAX_SPANS = 8
"""Up to this many spans a mask is written span by span (slice writes, about 0.3 us each);
beyond it, by one vectorised pass over the axis (about 10 us whatever the span count)."""


def _check_spans(length: int, starts: Sequence[int], widths: Sequence[int]) -> None:
    """``ValueError`` unless there is one width per start and every span lies inside ``[0, length]``."""
    if len(starts) != len(widths):
        raise ValueError(f"got {len(starts)} span starts but {len(widths)} widths; give one width per start")
    if len(starts) <= _LOOP_MAX_SPANS:
        inside = all(0 <= start and 0 <= width and start + width <= length for start, width in zip(starts, widths))
    else:
        first = np.asarray(starts, dtype=np.int64)
        end = first + np.asarray(widths, dtype=np.int64)
        inside = int(first.min()) >= 0 and not bool((end < first).any()) and int(end.max()) <= length
    if not inside:
        raise ValueError(f"spans (starts {list(starts)}, widths {list(widths)}) must lie inside [0, {length}]")


def _covered(length: int, starts: Sequence[int], widths: Sequence[int]) -> np.ndarray:
    """``(length,)`` numpy bools, true inside any span (checked by :func:`_check_spans`)."""
    _check_spans(length, starts, widths)
    if len(starts) <= _LOOP_MAX_SPANS:
        covered = np.zeros(length, dtype=bool)
        for start, width in zip(starts, widths):
            covered[start:start + width] = True
        return covered
    first = np.asarray(starts, dtype=np.int64)
    edges = np.bincount(first, minlength=length + 1) - np.bincount(first + widths, minlength=length + 1)
    return np.cumsum(edges[:length]) > 0


def span_mask(length: int, starts: Sequence[int], widths: Sequence[int]) -> torch.Tensor:
    """``(length,)`` bool tensor, true inside any span ``[starts[k], starts[k] + widths[k])``.

    Spans must lie inside ``[0, length]`` (``ValueError`` otherwise); empty spans mark nothing.
    A few spans are written as slices; many (as adaptive masking draws on long mels) in one
    vectorised pass, with the same result.

    >>> span_mask(6, [1, 4], [2, 1]).tolist()
    [False, True, True, False, True, False]
    >>> starts = list(range(0, 40, 2))  # 20 one-frame spans: the vectorised pass
    >>> span_mask(50, starts, [1] * 20).tolist() == [t < 40 and t % 2 == 0 for t in range(50)]
    True
    """
    return torch.from_numpy(_covered(length, starts, widths))


def _spans_from_fractions(length: int, fractions: np.ndarray, width_range: tuple[int, int], budget: int,
                          *, vectorised: bool) -> tuple[list[int], list[int]]:
    """The spans of :func:`draw_spans` from its ``2 * count`` uniform draws (widths, then starts).

    >>> fractions = np.random.default_rng(0).random(60)
    >>> loop = _spans_from_fractions(500, fractions, (5, 40), 300, vectorised=False)
    >>> loop == _spans_from_fractions(500, fractions, (5, 40), 300, vectorised=True), sum(loop[1])
    (True, 300)
    """
    count = fractions.size // 2
    low, choices = width_range[0], width_range[1] - width_range[0] + 1
    if vectorised:
        widths = np.minimum(low + (fractions[:count] * choices).astype(np.int64), length)
        used_before = np.cumsum(widths) - widths
        widths = np.minimum(widths, np.maximum(budget - used_before, 0))
        kept = widths > 0
        widths = widths[kept]
        starts = (fractions[count:][kept] * (length - widths + 1)).astype(np.int64)
        return starts.tolist(), widths.tolist()
    values = fractions.tolist()
    starts_list: list[int] = []
    widths_list: list[int] = []
    used = 0
    for width_fraction, start_fraction in zip(values[:count], values[count:]):
        width = min(low + int(width_fraction * choices), length, budget - used)
        if width > 0:
            starts_list.append(int(start_fraction * (length - width + 1)))
            widths_list.append(width)
            used += width
    return starts_list, widths_list


def draw_spans(length: int, count_range: tuple[int, int], width_range: tuple[int, int], budget: int,
               generator: np.random.Generator) -> tuple[list[int], list[int]]:
    """Random spans on an axis of ``length``: ``(starts, widths)`` lists.

    The count is uniform in ``count_range`` (not drawn when the range is one value), each width
    uniform in ``width_range`` then cut to ``length``; widths are then shortened in order so they
    sum to at most ``budget``, and empty spans dropped. Starts are uniform in ``[0, length -
    width]``. One draw of ``2 * count`` uniform floats (53-bit, scaled to each range) gives all
    widths and starts; a few spans are then computed in Python, many (adaptive masks on long mels)
    vectorised, with equal results.

    >>> starts, widths = draw_spans(100, (2, 2), (5, 5), 100, np.random.default_rng(0))
    >>> widths, all(0 <= s <= 95 for s in starts)
    ([5, 5], True)
    """
    low, high = count_range
    count = low if low == high else int(generator.integers(low, high, endpoint=True))
    if count == 0 or length == 0:
        return [], []
    return _spans_from_fractions(length, generator.random(2 * count), width_range, budget,
                                 vectorised=count > _LOOP_MAX_SPANS)


def mel_mean(mel: torch.Tensor) -> float:
    """Mean of ``mel``'s (``(n_mels, frames)``) values (0.0 when empty), the same whatever the
    thread count.

    Partial sums are torch float32 cascade sums, each the one output of a row-wise reduction: torch
    splits such a reduction between threads by output, so one thread sums each partial in the same
    order whatever the thread count. They are the mel's rows when there are several and each is
    contiguous, else blocks of :data:`MEAN_BLOCK` values in row-major order (a block sum runs on
    one thread anyway: it is below torch's parallel grain). The partial sums are added in float64
    by numpy. A plain ``mel.sum()`` splits its one output across threads and rounds differently
    with 1 or 2 threads; a numpy float64 pass costs 3x a copy (this costs about half of one).

    >>> mel_mean(torch.arange(10000.0).view(2, 5000)), mel_mean(torch.arange(10000.0).view(1, 10000))
    (4999.5, 4999.5)
    """
    count = mel.numel()
    if count == 0:
        return 0.0
    sum_dtype = torch.promote_types(mel.dtype, torch.float32)
    if mel.shape[0] > 1 and mel.stride(1) == 1:
        partial_sums = mel.sum(dim=1, dtype=sum_dtype)
        return float(np.add.reduce(partial_sums.numpy().astype(np.float64))) / count
    values = mel.reshape(-1)
    body = count - count % MEAN_BLOCK
    total = 0.0
    if body:
        block_sums = values[:body].view(-1, MEAN_BLOCK).sum(dim=1, dtype=sum_dtype)
        total = float(np.add.reduce(block_sums.numpy().astype(np.float64)))
    if count > body:
        total += float(values[body:].sum(dtype=sum_dtype))
    return total / count


@functools.lru_cache(maxsize=8)
def _zero(dtype: torch.dtype) -> torch.Tensor:
    """A shared 0-d zero of ``dtype`` (read-only)."""
    return torch.zeros((), dtype=dtype)


def _time_rows(length: int, starts: Sequence[int], widths: Sequence[int], dtype: torch.dtype,
               fill_value: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(keep, fill)`` for masking the frames inside the spans (checked) as ``fill + mel *
    keep``: ``keep`` is ``(length,)`` 0/1 of ``dtype``; ``fill`` is ``fill_value`` where masked,
    else 0 (a shared 0-d zero when the fill is 0). ``None`` when no frame is masked. Built in
    numpy and handed to torch without a copy: a few calls, none of them a tensor op."""
    if not any(widths):
        _check_spans(length, starts, widths)
        return None
    masked = _covered(length, starts, widths)
    numpy_dtype = _NUMPY_DTYPES.get(dtype, np.float32)
    keep = _as_tensor((~masked).astype(numpy_dtype), dtype)
    if fill_value == 0.0:
        return keep, _zero(dtype)
    return keep, _as_tensor(np.where(masked, numpy_dtype(fill_value), numpy_dtype(0.0)), dtype)


def _rounded(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` (by numpy when it has the dtype: no tensor op)."""
    numpy_dtype = _NUMPY_DTYPES.get(dtype)
    if numpy_dtype is None:
        return float(torch.tensor(value, dtype=torch.float32).to(dtype))
    return float(numpy_dtype(value))


def _as_tensor(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A numpy row as a tensor of ``dtype``, shared when it already has it (bfloat16: converted)."""
    row = torch.from_numpy(values)
    return row if row.dtype == dtype else row.to(dtype)


def _fill_rows(out: torch.Tensor, starts: Sequence[int], widths: Sequence[int], fill_value: float) -> None:
    """Set the rows of ``out`` inside the (checked) spans to ``fill_value``, in place: a slice write
    per span for a few spans, one ``index_fill_`` of the covered rows for many."""
    if len(starts) <= _LOOP_MAX_SPANS:
        for start, width in zip(starts, widths):
            if width:
                out[start:start + width] = fill_value
    else:
        out.index_fill_(0, torch.from_numpy(np.flatnonzero(_covered(out.shape[0], starts, widths))), fill_value)


def _masked(mel: torch.Tensor, freq_spans: tuple[Sequence[int], Sequence[int]],
            time_rows: tuple[torch.Tensor, torch.Tensor] | None, fill_value: float, in_place: bool = False
            ) -> torch.Tensor:
    """``mel`` with frames masked by ``time_rows`` (``None``: none) and the rows inside
    ``freq_spans`` (``(starts, widths)``, already checked) set to ``fill_value``; ``mel`` itself
    when nothing is masked, or with ``in_place`` (written over, same values).

    Frames are masked in one pass as ``fill + mel * keep`` (one ``addcmul``): every product is
    exact and only one term is nonzero, so a kept value is unchanged bit for bit and a masked one
    is the fill (a masked-fill or ``where`` with a broadcast mask is several times slower on CPU).
    Rows are then filled in place.
    """
    starts, widths = freq_spans
    masks_rows = any(widths)
    if time_rows is not None:
        keep, fill = time_rows
        out = torch.addcmul(fill, mel, keep, out=mel) if in_place else torch.addcmul(fill, mel, keep)
    elif masks_rows:
        out = mel if in_place else mel.clone()
    else:
        return mel
    if masks_rows:
        _fill_rows(out, starts, widths, fill_value)
    return out


def _int_range(value: object, field: str, *, int_is_max: bool) -> tuple[int, int]:
    """A ``[low, high]`` pair as given, or an int as exactly that (a count) or as ``[1, value]`` (a width)."""
    if isinstance(value, int) and not isinstance(value, bool):
        high = check_int(value, field)
        return min(1, high) if int_is_max else high, high
    return check_int_range(value, field)


def _optional_fraction(value: float | None, field: str) -> float | None:
    return None if value is None else check_float(value, field, maximum=1.0, include_minimum=False)


_RANGES = {"freq_masks": False, "freq_width": True, "time_masks": False, "time_width": True}  # int: a width's max?


class SpecAugmentSettings(SpectralSettings):
    """The ``spec_augment`` block (A2), ``probability`` as in the plan; a ``[low, high]`` is kept as a tuple."""

    probability: float = 0.5
    freq_masks: int | tuple[int, int] = 2
    freq_width: int | tuple[int, int] = 20
    time_masks: int | tuple[int, int] = 2
    time_width: int | tuple[int, int] = 50
    fill: Literal["zero", "mean"] = "zero"
    adaptive: bool = False
    time_mask_multiplicity: float | None = 0.002
    time_mask_ratio: float | None = 0.05
    max_time_fraction: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in _RANGES:
            value = getattr(self, field)
            if isinstance(value, list):
                object.__setattr__(self, field, tuple(value))
        self.ranges()
        check_choice(self.fill, "fill", FILLS)
        check_bool(self.adaptive, "adaptive")
        _optional_fraction(self.time_mask_multiplicity, "time_mask_multiplicity")
        _optional_fraction(self.time_mask_ratio, "time_mask_ratio")
        check_float(self.max_time_fraction, "max_time_fraction", maximum=1.0)

    def ranges(self) -> dict[str, tuple[int, int]]:
        """Each count and width field as an inclusive ``(low, high)`` range (module docstring)."""
        return {field: _int_range(getattr(self, field), field, int_is_max=is_max) for field, is_max in _RANGES.items()}


@register_stage("spec_augment", SpecAugmentSettings)
class SpecAugmentStage(SpectralAugmentStage):
    """Frequency and time masking (see the module docstring for how masks are drawn).

    Args:
        freq_masks: number of frequency masks, int or ``[low, high]`` (plan: 2; 0 disables).
        freq_width: mask width in mel bins, int max or ``[low, high]`` (plan: 20).
        time_masks: number of time masks, int or ``[low, high]`` (plan: 2; 0 disables).
        time_width: mask width in frames, int max or ``[low, high]`` (plan: 50).
        fill: ``"zero"`` (default, the plan) or ``"mean"`` (the mel's mean value).
        adaptive: scale time masks with the length (default False; see the module docstring).
        time_mask_multiplicity: adaptive count, masks per frame in (0, 1] (0.002; None: use
            ``time_masks``).
        time_mask_ratio: adaptive width, largest mask as a fraction of frames in (0, 1] (0.05;
            None: use ``time_width``).
        max_time_fraction: cap on the fraction of frames time masks may cover, in [0, 1] (0.2).
        mode: ``"shared"`` (default, as the plan says: identical masks, time masks following the
            pointers) or ``"independent"`` (each mel its own masks, drawn on its own length: masked
            edit frames then point to unmasked raw frames, the robustness the plan mentions).

    Params recorded: ``{"mode": "shared", "freq_starts", "freq_widths", "time_starts",
    "time_widths", "fill_value"}`` (lists of ints and a float; per mel under ``"raw"``/``"edit"`` in
    independent mode). Cost: about one copy per mel (plus half a copy of each mel whose mean is
    the fill); masks are built in numpy with slice writes, applied in one pass per mel.

    Examples:
        >>> from streams.sample import Sample
        >>> from streams.stages.spec_augment import SpecAugmentStage
        >>> raw = torch.ones(4, 100)
        >>> s = Sample("a", raw, raw[:, :10], torch.arange(10))
        >>> stage = SpecAugmentStage(probability=1.0, freq_masks=1, freq_width=(2, 2), time_masks=0)
        >>> out = stage.augment(s, seed=1)
        >>> int((out.raw_mel[:, 0] == 0).sum()), out.meta["augmentations"][0]["freq_widths"]
        (2, [2])
    """

    name = "spec_augment"

    @functools.cached_property
    def _ranges(self) -> dict[str, tuple[int, int]]:
        return self.settings.ranges()

    def time_ranges(self, frames: int) -> tuple[tuple[int, int], tuple[int, int], int]:
        """``(count_range, width_range, budget)`` of time masks on a mel of ``frames`` frames."""
        counts = self._ranges["time_masks"]
        if self.adaptive and self.time_mask_multiplicity is not None:
            count = math.floor(self.time_mask_multiplicity * frames)
            counts = (count, count)
        widths = self._ranges["time_width"]
        if self.adaptive and self.time_mask_ratio is not None:
            widest = math.floor(self.time_mask_ratio * frames)
            widths = (min(1, widest), widest)
        return counts, widths, math.floor(self.max_time_fraction * frames)

    def draw_mel(self, mel: torch.Tensor, generator: np.random.Generator) -> dict[str, Any]:
        n_mels, frames = mel.shape
        ranges = self._ranges
        freq_starts, freq_widths = draw_spans(n_mels, ranges["freq_masks"], ranges["freq_width"], n_mels, generator)
        time_starts, time_widths = draw_spans(frames, *self.time_ranges(frames), generator)
        fill_value = 0.0
        if self.fill == "mean" and mel.numel():
            fill_value = _rounded(mel_mean(mel), mel.dtype)  # representable in the mel's dtype: every write is exact
        return {"freq_starts": freq_starts, "freq_widths": freq_widths, "time_starts": time_starts,
                "time_widths": time_widths, "fill_value": fill_value}

    def apply_mel(self, mel: torch.Tensor, decision: dict[str, Any], in_place: bool = False) -> torch.Tensor:
        fill_value = decision["fill_value"]
        freq_spans = decision["freq_starts"], decision["freq_widths"]
        _check_spans(mel.shape[0], *freq_spans)
        time_rows = _time_rows(mel.shape[1], decision["time_starts"], decision["time_widths"], mel.dtype, fill_value)
        return _masked(mel, freq_spans, time_rows, fill_value, in_place)

    def apply_shared(self, sample: Sample, decision: dict[str, Any], in_place: bool = False) -> Sample:
        fill_value = decision["fill_value"]
        freq_spans = decision["freq_starts"], decision["freq_widths"]
        _check_spans(sample.n_mels, *freq_spans)
        raw_rows = _time_rows(sample.raw_frames, decision["time_starts"], decision["time_widths"],
                              sample.raw_mel.dtype, fill_value)
        edit_rows = None
        if raw_rows is not None:  # an edit frame is masked exactly when the raw frame it points to is
            keep, fill = raw_rows
            edit_rows = (keep.index_select(0, sample.pointers),
                         fill if fill.ndim == 0 else fill.index_select(0, sample.pointers))
        return sample.replace(raw_mel=_masked(sample.raw_mel, freq_spans, raw_rows, fill_value, in_place),
                              edit_mel=_masked(sample.edit_mel, freq_spans, edit_rows, fill_value, in_place))
