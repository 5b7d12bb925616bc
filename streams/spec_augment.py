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
its dtype). In shared mode every choice is drawn on the raw mel: bands are the same in both mels,
time masks lie on raw frames and an edit frame is masked exactly when the raw frame it points to
is, and ``"mean"`` is the raw mel's mean for both, so a masked edit frame still equals its raw
frame (the pointer content invariant holds for both fills).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .checks import check_choice, check_float, check_int, check_int_range
from .pipe import pipe_method
from .sample import Sample
from .schedule import ProbabilitySchedule
from .spectral import SpectralAugmentStage

__all__ = ["FILLS", "SpecAugmentStage", "draw_spans", "mask_mel", "span_mask"]

FILLS = ("zero", "mean")


def span_mask(length: int, starts: Sequence[int], widths: Sequence[int]) -> torch.Tensor:
    """``(length,)`` bool tensor, true inside any span ``[starts[k], starts[k] + widths[k])``.

    Spans must lie inside ``[0, length]`` (``ValueError`` otherwise); empty spans mark nothing.

    >>> span_mask(6, [1, 4], [2, 1]).tolist()
    [False, True, True, False, True, False]
    """
    if len(starts) != len(widths):
        raise ValueError(f"got {len(starts)} span starts but {len(widths)} widths; give one width per start")
    edges = torch.zeros(length + 1, dtype=torch.int64)
    if len(starts):
        first = torch.as_tensor(starts, dtype=torch.int64)
        width = torch.as_tensor(widths, dtype=torch.int64)
        end = first + width
        if bool((first < 0).any() | (width < 0).any() | (end > length).any()):
            raise ValueError(f"spans (starts {list(starts)}, widths {list(widths)}) must lie inside [0, {length}]")
        edges.index_add_(0, first, torch.ones_like(first))
        edges.index_add_(0, end, -torch.ones_like(end))
    return edges.cumsum(0)[:length] > 0


def draw_spans(length: int, count_range: tuple[int, int], width_range: tuple[int, int], budget: int,
               generator: torch.Generator) -> tuple[list[int], list[int]]:
    """Random spans on an axis of ``length``: ``(starts, widths)`` lists.

    The count is uniform in ``count_range``, each width uniform in ``width_range`` then cut to
    ``length``; widths are then shortened in order so they sum to at most ``budget``, and empty
    spans dropped. Starts are uniform in ``[0, length - width]``. Vectorised: no loop over masks.
    """
    count = int(torch.randint(count_range[0], count_range[1] + 1, (), generator=generator))
    if count == 0 or length == 0:
        return [], []
    widths = torch.randint(width_range[0], width_range[1] + 1, (count,), generator=generator).clamp_(max=length)
    used_before = widths.cumsum(0) - widths
    widths = torch.minimum(widths, (budget - used_before).clamp(min=0))
    widths = widths[widths > 0]
    fractions = torch.rand(widths.shape[0], generator=generator, dtype=torch.float64)
    starts = (fractions * (length - widths + 1)).long()
    return starts.tolist(), widths.tolist()


def mask_mel(mel: torch.Tensor, freq_mask: torch.Tensor, time_mask: torch.Tensor, fill_value: float) -> torch.Tensor:
    """``mel`` (``(n_mels, frames)``) with masked bins (``freq_mask``, ``(n_mels,)`` bool) and masked
    frames (``time_mask``, ``(frames,)`` bool) set to ``fill_value``; a new tensor of the same
    dtype, or ``mel`` itself when nothing is masked.

    Frames are masked in one pass as ``fill_row + mel * keep_row`` with 0/1 ``keep_row``: every
    product is exact, so a kept value is unchanged bit for bit (a masked-fill with a broadcast
    mask is several times slower on CPU).

    >>> mask_mel(torch.ones(2, 3), torch.tensor([False, True]), torch.tensor([True, False, False]), 0.5)
    tensor([[0.5000, 1.0000, 1.0000],
            [0.5000, 0.5000, 0.5000]])
    """
    masked_frames = bool(time_mask.any())
    masked_bins = freq_mask.nonzero().squeeze(1)
    if not masked_frames and masked_bins.numel() == 0:
        return mel
    if masked_frames:
        keep_row = (~time_mask).to(mel.dtype).unsqueeze(0)
        fill_row = time_mask.to(mel.dtype).mul_(fill_value).unsqueeze(0)
        out = torch.addcmul(fill_row, mel, keep_row)
    else:
        out = mel.clone()
    return out.index_fill_(0, masked_bins, fill_value)


def _count_range(value: object, field: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        count = check_int(value, field)
        return count, count
    return check_int_range(value, field)


def _width_range(value: object, field: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        width = check_int(value, field)
        return min(1, width), width
    return check_int_range(value, field)


def _optional_fraction(value: float | None, field: str) -> float | None:
    return None if value is None else check_float(value, field, maximum=1.0, include_minimum=False)


@pipe_method("spec_augment")
class SpecAugmentStage(SpectralAugmentStage):
    """Frequency and time masking (see the module docstring for how masks are drawn).

    Args:
        probability: chance to fire per sample (plan: 0.5).
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
        schedule: optional per-epoch factor on ``probability``.

    Params recorded: ``{"mode": "shared", "freq_starts", "freq_widths", "time_starts",
    "time_widths", "fill_value"}`` (lists of ints and a float; per mel under ``"raw"``/``"edit"`` in
    independent mode). Cost: about one copy per mel.

    >>> from streams.sample import Sample
    >>> raw = torch.ones(4, 100)
    >>> s = Sample("a", raw, raw[:, :10], torch.arange(10))
    >>> stage = SpecAugmentStage(probability=1.0, freq_masks=1, freq_width=(2, 2), time_masks=0)
    >>> out = stage.augment(s, seed=1)
    >>> int((out.raw_mel[:, 0] == 0).sum()), out.meta["augmentations"][0]["freq_widths"]
    (2, [2])
    """

    name = "spec_augment"

    def __init__(self, *, probability: float = 0.5, freq_masks: int | Sequence[int] = 2,
                 freq_width: int | Sequence[int] = 20, time_masks: int | Sequence[int] = 2,
                 time_width: int | Sequence[int] = 50, fill: str = "zero", adaptive: bool = False,
                 time_mask_multiplicity: float | None = 0.002, time_mask_ratio: float | None = 0.05,
                 max_time_fraction: float = 0.2, mode: str = "shared", schedule: ProbabilitySchedule | None = None):
        super().__init__(probability=probability, mode=mode, schedule=schedule)
        self._freq_counts = _count_range(freq_masks, "freq_masks")
        self._freq_widths = _width_range(freq_width, "freq_width")
        self._time_counts = _count_range(time_masks, "time_masks")
        self._time_widths = _width_range(time_width, "time_width")
        self.freq_masks = freq_masks if isinstance(freq_masks, int) else self._freq_counts
        self.freq_width = freq_width if isinstance(freq_width, int) else self._freq_widths
        self.time_masks = time_masks if isinstance(time_masks, int) else self._time_counts
        self.time_width = time_width if isinstance(time_width, int) else self._time_widths
        self.fill = check_choice(fill, "fill", FILLS)
        if not isinstance(adaptive, bool):
            raise ValueError(f"adaptive must be true or false ({adaptive!r} given)")
        self.adaptive = adaptive
        self.time_mask_multiplicity = _optional_fraction(time_mask_multiplicity, "time_mask_multiplicity")
        self.time_mask_ratio = _optional_fraction(time_mask_ratio, "time_mask_ratio")
        self.max_time_fraction = check_float(max_time_fraction, "max_time_fraction", maximum=1.0)

    def time_ranges(self, frames: int) -> tuple[tuple[int, int], tuple[int, int], int]:
        """``(count_range, width_range, budget)`` of time masks on a mel of ``frames`` frames."""
        counts = self._time_counts
        if self.adaptive and self.time_mask_multiplicity is not None:
            count = math.floor(self.time_mask_multiplicity * frames)
            counts = (count, count)
        widths = self._time_widths
        if self.adaptive and self.time_mask_ratio is not None:
            widest = math.floor(self.time_mask_ratio * frames)
            widths = (min(1, widest), widest)
        return counts, widths, math.floor(self.max_time_fraction * frames)

    def draw_mel(self, mel: torch.Tensor, generator: torch.Generator) -> dict[str, Any]:
        n_mels, frames = mel.shape
        freq_starts, freq_widths = draw_spans(n_mels, self._freq_counts, self._freq_widths, n_mels, generator)
        time_starts, time_widths = draw_spans(frames, *self.time_ranges(frames), generator)
        fill_value = 0.0
        if self.fill == "mean" and mel.numel():
            # numpy's float64 pairwise sum is the same in every process; torch's reduction order
            # depends on the thread count (workers run one thread), so it would not be
            mean = torch.tensor(float(np.mean(mel.numpy(), dtype=np.float64)), dtype=torch.float32)
            fill_value = float(mean.to(mel.dtype))  # representable in the mel's dtype: every write is exact
        return {"freq_starts": freq_starts, "freq_widths": freq_widths, "time_starts": time_starts,
                "time_widths": time_widths, "fill_value": fill_value}

    def apply_mel(self, mel: torch.Tensor, decision: dict[str, Any]) -> torch.Tensor:
        freq_mask = span_mask(mel.shape[0], decision["freq_starts"], decision["freq_widths"])
        time_mask = span_mask(mel.shape[1], decision["time_starts"], decision["time_widths"])
        return mask_mel(mel, freq_mask, time_mask, decision["fill_value"])

    def apply_shared(self, sample: Sample, decision: dict[str, Any]) -> Sample:
        freq_mask = span_mask(sample.n_mels, decision["freq_starts"], decision["freq_widths"])
        raw_time_mask = span_mask(sample.raw_frames, decision["time_starts"], decision["time_widths"])
        edit_time_mask = raw_time_mask.index_select(0, sample.pointers)
        fill_value = decision["fill_value"]
        return sample.replace(raw_mel=mask_mel(sample.raw_mel, freq_mask, raw_time_mask, fill_value),
                              edit_mel=mask_mel(sample.edit_mel, freq_mask, edit_time_mask, fill_value))
