"""The unit that flows through a pipe: one (raw mel, edit mel, pointers) triple and its metadata."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from .origin import Origin
from .worker_buffers import register_transport

__all__ = ["Origin", "Sample", "SampleError", "check_sample"]


class SampleError(ValueError):
    """A sample (or the shard member it came from) is malformed.

    ``reason`` is a short machine-readable tag used when skipped samples are counted
    (``"pointer_out_of_range"``, ``"missing_member"``...: :data:`streams.reading.decode.DECODE_REASONS`,
    the grouping reasons of :mod:`streams.reading.tar_records`, and those of :func:`check_sample`);
    ``key``, ``url`` and ``member`` (``"pointers.npy"``) say where; the message says what to fix.
    Every argument but the message has a default, so the error survives pickling and DataLoader's
    re-raise in the main process.
    """

    def __init__(self, message: str, *, reason: str = "bad_sample", key: str | None = None,
                 url: str | None = None, member: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.key = key
        self.url = url
        self.member = member


@register_transport
@dataclasses.dataclass(frozen=True, eq=False)
class Sample:
    """One training example for a pointer network.

    Attributes:
        key: unique name of the sample within its shard set (the tar member prefix).
        raw_mel: ``(n_mels, T_raw)`` float tensor, the unedited recording.
        edit_mel: ``(n_mels, T_edit)`` float tensor of the same dtype, the edited recording.
        pointers: ``(T_edit,)`` int64 tensor; edit frame ``i`` was taken from raw frame
            ``pointers[i]``, so every value lies in ``[0, T_raw)``.
        meta: free-form metadata (from ``KEY.meta.json``); stages add an ``"augmentations"`` list
            recording what they applied, with their parameters.
        url: the shard the sample was read from (``None`` for samples made in memory).
        origin: where to read it again on resume (see :data:`Origin`); ``None`` in memory.

    Samples are immutable: stages return new samples and never write into tensors they received.
    """

    key: str
    raw_mel: torch.Tensor
    edit_mel: torch.Tensor
    pointers: torch.Tensor
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    url: str | None = None
    origin: Origin | None = None

    @property
    def n_mels(self) -> int:
        return int(self.raw_mel.shape[0])

    @property
    def raw_frames(self) -> int:
        return int(self.raw_mel.shape[1])

    @property
    def edit_frames(self) -> int:
        return int(self.edit_mel.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes held by the three tensors."""
        return sum(t.element_size() * t.nelement() for t in (self.raw_mel, self.edit_mel, self.pointers))

    def replace(self, **changes: Any) -> Sample:
        """A copy with some fields replaced (tensors are shared, not copied).

        What ``dataclasses.replace`` does, in about a fifth of its time (a stage makes two or three
        copies per sample, which counts on short samples): the fields are copied as they are,
        since a ``Sample`` checks nothing when it is built. Unknown fields raise ``TypeError``.

        >>> s = Sample("a", torch.zeros(1, 2), torch.zeros(1, 1), torch.tensor([0]))
        >>> s.replace(key="b").key, s.key, s.replace(key="b").raw_mel is s.raw_mel
        ('b', 'a', True)
        """
        if type(self) is not Sample:  # a subclass may check or derive fields in its __init__
            return dataclasses.replace(self, **changes)
        if not changes.keys() <= _FIELDS:
            raise TypeError(f"Sample has no field(s) {sorted(changes.keys() - _FIELDS)}; "
                            f"fields are {', '.join(sorted(_FIELDS))}")
        copy = object.__new__(Sample)
        state = copy.__dict__
        state.update(self.__dict__)
        state.update(changes)
        return copy

    def with_record(self, stage: str, **params: Any) -> Sample:
        """A copy whose ``meta["augmentations"]`` ends with ``{"stage": stage, **params}``."""
        records = [*self.meta.get("augmentations", ()), {"stage": stage, **params}]
        return self.replace(meta={**self.meta, "augmentations": records})

    def __repr__(self) -> str:
        return (
            f"Sample(key={self.key!r}, n_mels={self.n_mels}, raw_frames={self.raw_frames}, "
            f"edit_frames={self.edit_frames}, dtype={self.raw_mel.dtype})"
        )


_FIELDS = frozenset(field.name for field in dataclasses.fields(Sample))


def _all_finite(mel: torch.Tensor) -> bool:
    """Whether every value of float ``mel`` is finite, from one reduction that allocates nothing.

    A float32 sum is NaN or Inf when any value is (NaN and Inf propagate through additions), so
    a finite sum proves every value finite; ``torch.isfinite(mel).all()`` would allocate a bool
    tensor of ``mel``'s size and make two passes (about 30 times the sum's cost). A sum can also
    overflow on huge finite values, so only a non-finite sum is re-checked value by value.

    >>> _all_finite(torch.tensor([[1.0, 2.0]])), _all_finite(torch.tensor([[1.0, float("nan")]]))
    (True, False)
    >>> _all_finite(torch.full((1, 4), 3e38))  # the sum overflows; every value is finite
    True
    """
    if math.isfinite(float(mel.sum(dtype=torch.float32 if mel.element_size() < 4 else None))):
        return True
    return bool(torch.isfinite(mel).all())


def check_sample(sample: Sample) -> Sample:
    """Return ``sample`` unchanged if it is well-formed, else raise :class:`SampleError`.

    Checks: mels are 2-D floating tensors with the same dtype and ``n_mels``, at least one frame
    and one mel bin each; pointers are a 1-D integer tensor with one entry per edit frame, each in
    ``[0, T_raw)``; mels hold no NaN or Inf. Cost is one pass over the tensors, no copies and no
    tensor-sized allocation (finiteness is one sum per mel; see :func:`_all_finite`).

    The error's ``member`` is the shard member at fault (``"raw_mel.npy"``, ``"edit_mel.npy"`` or
    ``"pointers.npy"``; a disagreement between raw and edit names the edit member, a pointer count
    that does not match the edit frames names the pointers). Reasons: ``bad_shape``,
    ``bad_dtype``, ``empty``, ``length_mismatch``, ``pointer_out_of_range``, ``not_finite``.

    >>> import torch
    >>> s = Sample("a", torch.zeros(2, 3), torch.zeros(2, 2), torch.tensor([0, 2]))
    >>> check_sample(s) is s
    True
    >>> check_sample(s.replace(pointers=torch.tensor([0, 3])))
    Traceback (most recent call last):
    ...
    streams.sample.SampleError: sample 'a', member pointers.npy: pointers[1] = 3 is outside [0, 3) (T_raw = 3); \
pointers index raw frames from 0
    """

    def fail(reason: str, field: str, message: str) -> SampleError:
        member = f"{field}.npy"  # the shard member the field is stored in
        shard = f" in shard {sample.url}" if sample.url else ""
        return SampleError(f"sample {sample.key!r}{shard}, member {member}: {message}", reason=reason,
                           key=sample.key, url=sample.url, member=member)

    for name in ("raw_mel", "edit_mel"):
        mel = getattr(sample, name)
        if not isinstance(mel, torch.Tensor) or mel.ndim != 2:
            shape = tuple(mel.shape) if isinstance(mel, torch.Tensor) else type(mel).__name__
            raise fail("bad_shape", name, f"{name} must be a 2-D (n_mels, frames) tensor, got {shape}; "
                                          "re-export it as a 2-D array")
        if not mel.is_floating_point():
            raise fail("bad_dtype", name, f"{name} has dtype {mel.dtype}; mels must be float16 or float32")
        if mel.shape[1] == 0:
            raise fail("empty", name, f"{name} has zero frames; drop this sample when packing")
        if mel.shape[0] == 0:
            raise fail("bad_shape", name, f"{name} has zero mel bins; re-export it as (n_mels, frames)")
    if sample.raw_mel.dtype != sample.edit_mel.dtype:
        raise fail("bad_dtype", "edit_mel", f"raw_mel is {sample.raw_mel.dtype} but edit_mel is "
                                            f"{sample.edit_mel.dtype}; store both with one dtype")
    if sample.raw_mel.shape[0] != sample.edit_mel.shape[0]:
        raise fail("bad_shape", "edit_mel", f"raw_mel has {sample.raw_mel.shape[0]} mel bins but edit_mel has "
                                            f"{sample.edit_mel.shape[0]}; both must use the same mel filterbank")
    pointers = sample.pointers
    if not isinstance(pointers, torch.Tensor) or pointers.ndim != 1:
        shape = tuple(pointers.shape) if isinstance(pointers, torch.Tensor) else type(pointers).__name__
        raise fail("bad_shape", "pointers", f"pointers must be a 1-D (T_edit,) tensor, got {shape}; "
                                            "save one raw frame index per edit frame")
    if pointers.is_floating_point() or pointers.is_complex() or pointers.dtype == torch.bool:
        raise fail("bad_dtype", "pointers", f"pointers have dtype {pointers.dtype}; store them as integers "
                                            "(int64 or int32)")
    if pointers.shape[0] != sample.edit_mel.shape[1]:
        raise fail("length_mismatch", "pointers",
                   f"{pointers.shape[0]} pointers for {sample.edit_mel.shape[1]} edit frames; "
                   "there must be exactly one pointer per edit frame")
    if pointers.numel():
        low, high = int(pointers.min()), int(pointers.max())
        if low < 0 or high >= sample.raw_mel.shape[1]:
            bad = low if low < 0 else high
            index = int((pointers == bad).nonzero()[0, 0])
            raise fail("pointer_out_of_range", "pointers",
                       f"pointers[{index}] = {bad} is outside [0, {sample.raw_mel.shape[1]}) "
                       f"(T_raw = {sample.raw_mel.shape[1]}); pointers index raw frames from 0")
    for name in ("raw_mel", "edit_mel"):
        mel = getattr(sample, name)
        if not _all_finite(mel):
            count = int((~torch.isfinite(mel)).sum())
            raise fail("not_finite", name, f"{name} holds {count} NaN or Inf values; recompute the mel "
                                           "(a log of zero is the usual cause)")
    return sample
