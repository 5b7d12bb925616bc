"""B2 crop: a random window of the edit, with just the raw frames it points to (plus context).

The edit is cut to ``[start, start + length)``; the raw mel to the frames the window's pointers
reach, widened by ``context`` on each side and clipped to the recording; pointers are
shifted by the raw cut's start. Every pointer stays on the same raw content (never clamped), so
``raw_mel[:, pointers[i]]`` is the same frame as before. The kept pieces are copied, so the
original tensors can be freed (the point of cropping is memory).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..checks import FieldError, check_int, check_ordered
from ..sample import Sample
from ..seeding import sample_rng
from .augment import AugmentStage
from .registry import StageSettings, register_stage

__all__ = ["CropSettings", "CropStage", "crop_bounds", "crop_sample", "cut_sample"]


def crop_bounds(sample: Sample, start: int, length: int, context: int) -> dict[str, int]:
    """The cut of :func:`crop_sample`: ``{"edit_start", "edit_length", "raw_start", "raw_end"}``.

    The window is ``[start, start + length)`` clipped to the edit. An empty window (``length``
    0, ``start == T_edit``, or an empty edit) has no pointers to bound the raw cut, so it keeps
    the whole raw mel. ``start`` outside ``[0, T_edit]`` or a negative length or context raise
    ``ValueError``.
    """
    edit_frames = sample.edit_frames
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= edit_frames:
        raise FieldError("start", f"crop start must be an int in [0, {edit_frames}] "
                                  f"(T_edit = {edit_frames}; {start!r} given)")
    check_int(length, "crop length")
    check_int(context, "context")
    length = min(length, edit_frames - start)
    if length == 0:
        return {"edit_start": start, "edit_length": 0, "raw_start": 0, "raw_end": sample.raw_frames}
    lowest, highest = (int(end) for end in torch.aminmax(sample.pointers[start:start + length]))
    raw_start = max(0, lowest - context)
    raw_end = min(sample.raw_frames, highest + context + 1)
    return {"edit_start": start, "edit_length": length, "raw_start": raw_start, "raw_end": raw_end}


def cut_sample(sample: Sample, edit_start: int, edit_length: int, raw_start: int, raw_end: int) -> Sample:
    """``sample`` with the edit cut to ``[edit_start, edit_start + edit_length)`` and the raw mel to
    ``[raw_start, raw_end)``; pointers shifted by ``-raw_start``.

    Shapes: ``raw_mel (n_mels, raw_end - raw_start)``, ``edit_mel (n_mels, edit_length)``,
    ``pointers (edit_length,)``; dtypes kept. Cuts are copies (the inputs can be freed). A cut that
    keeps everything returns ``sample`` itself. A raw range that would drop a frame the edit
    window points to raises ``ValueError``: pointers are never clamped.

    >>> s = Sample("a", torch.arange(10.0).view(1, 10), torch.tensor([[7.0, 3.0]]), torch.tensor([7, 3]))
    >>> out = cut_sample(s, 0, 2, 2, 9)
    >>> out.raw_mel.tolist(), out.pointers.tolist()
    ([[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]], [5, 1])
    """
    edit_frames, raw_frames = sample.edit_frames, sample.raw_frames
    if not (0 <= edit_start and 0 <= edit_length and edit_start + edit_length <= edit_frames):
        raise ValueError(f"edit window [{edit_start}, {edit_start + edit_length}) is outside the edit's "
                         f"{edit_frames} frames")
    if not 0 <= raw_start < raw_end <= raw_frames:
        raise ValueError(f"raw range [{raw_start}, {raw_end}) must be non-empty and inside the raw mel's "
                         f"{raw_frames} frames")
    pointers = sample.pointers[edit_start:edit_start + edit_length]
    if pointers.numel():
        lowest, highest = (int(end) for end in torch.aminmax(pointers))
        if lowest < raw_start or highest >= raw_end:
            raise ValueError(f"raw range [{raw_start}, {raw_end}) drops frames the edit window points to "
                             f"(pointers span [{lowest}, {highest}]); widen the raw range")
    if edit_length == edit_frames and raw_start == 0 and raw_end == raw_frames:
        return sample
    return sample.replace(raw_mel=sample.raw_mel[:, raw_start:raw_end].clone(),
                          edit_mel=sample.edit_mel[:, edit_start:edit_start + edit_length].clone(),
                          pointers=pointers - raw_start)


def crop_sample(sample: Sample, start: int, length: int, context: int = 100) -> Sample:
    """The edit window ``[start, start + length)`` (clipped to the edit) and the raw frames its
    pointers reach, ``context`` more on each side (clipped to the recording).

    >>> s = Sample("a", torch.arange(10.0).view(1, 10), torch.tensor([[4.0, 5.0, 9.0]]), torch.tensor([4, 5, 9]))
    >>> out = crop_sample(s, start=0, length=2, context=1)
    >>> out.raw_mel.tolist(), out.edit_mel.tolist(), out.pointers.tolist()
    ([[3.0, 4.0, 5.0, 6.0]], [[4.0, 5.0]], [1, 2])
    """
    return cut_sample(sample, **crop_bounds(sample, start, length, context))


class CropSettings(StageSettings):
    """The ``crop`` block (B2), ``probability`` as in the plan; :class:`CropStage` documents the fields."""

    probability: float = 0.5
    min_len: int = 500
    max_len: int = 5000
    context: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ordered(check_int(self.min_len, "min_len", minimum=1), check_int(self.max_len, "max_len", minimum=1),
                      "min_len", "max_len")
        check_int(self.context, "context")


@register_stage("crop", CropSettings)
class CropStage(AugmentStage):
    """Crop a random window of the edit and the raw frames it needs (see the module docstring).

    Args:
        min_len, max_len: window length range in edit frames (plan: 500 .. 5000), ``>= 1``.
        context: raw frames kept on each side of the pointed span (plan: 100).

    The length is uniform in ``[min_len, min(max_len, T_edit)]`` and the start uniform where the
    window fits, as in the plan. An edit of at most ``min_len`` frames (including an empty one)
    is left whole, raw included: it is already as short as the shortest crop. A drawn window
    that covers a longer edit whole still trims the raw mel to the pointed span plus context.
    Params recorded:
    ``{"edit_start", "edit_length", "raw_start", "raw_end"}``; cost: one copy of the kept frames.

    >>> from streams.stages.crop import CropStage
    >>> from streams.sample import Sample
    >>> raw = torch.arange(50.0).view(1, 50)
    >>> s = Sample("a", raw, raw[:, 10:40], torch.arange(10, 40))
    >>> out = CropStage(probability=1.0, min_len=5, max_len=5, context=2).augment(s)
    >>> out.edit_frames, out.raw_frames, bool(torch.equal(out.edit_mel, out.raw_mel[:, out.pointers]))
    (5, 9, True)
    """

    name = "crop"
    keyed_generator = staticmethod(sample_rng)

    def draw(self, sample: Sample, generator: np.random.Generator) -> dict[str, Any] | None:
        edit_frames = sample.edit_frames
        if edit_frames <= self.min_len:
            return None  # left whole, raw included: nothing to do, nothing recorded
        length_fraction, start_fraction = generator.random(2).tolist()  # both in one draw (53-bit uniforms)
        length = self.min_len + int(length_fraction * (min(self.max_len, edit_frames) - self.min_len + 1))
        start = int(start_fraction * (edit_frames - length + 1))
        return crop_bounds(sample, start, length, self.context)

    def apply(self, sample: Sample, params: dict[str, Any]) -> Sample:
        return cut_sample(sample, params["edit_start"], params["edit_length"], params["raw_start"], params["raw_end"])
