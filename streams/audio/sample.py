"""The unit audio stages pass along: a recording, its edit, and the map between them, before mels.

An :class:`AudioSample` is what a :class:`~streams.sample.Sample` is made from: mels of ``raw`` and
``edit`` with ``mel`` (:func:`streams.audio.mel.log_mel`) and pointers from ``edit_map``
(:func:`streams.audio.timeline.frame_pointers`). Audio stages (re-edit, export, speed, tempo) return new
audio samples and keep ``edit_map`` true: edit sample ``e`` holds the content of raw position
``edit_map.raw_positions(e)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..origin import Origin
from ..sample import SampleError
from .mel import MelSettings
from .timeline import EditMap

__all__ = ["AudioSample", "check_audio_sample"]


@dataclasses.dataclass(frozen=True, eq=False)
class AudioSample:
    """One recording and its edit, as audio.

    Attributes:
        key: unique name of the sample within its set (as :attr:`streams.sample.Sample.key`).
        raw: ``(n,)`` float32 tensor, the mono recording at ``sample_rate``.
        edit: ``(m,)`` float32 tensor, the mono edit at ``sample_rate``.
        sample_rate: Hz, of both signals (the mel settings' rate).
        edit_map: edit samples -> raw samples (:class:`~streams.audio.timeline.EditMap`); its
            ``edit_samples`` is ``m``.
        mel: the mel settings the sample's mels are to be made with.
        meta: free-form metadata; stages append to ``meta["augmentations"]``.
        url: the shard it was read from (``None`` in memory).
        origin: where to read it again on resume (:mod:`streams.origin`); ``None`` in memory.

    Immutable: stages return new samples and never write into tensors they received.
    """

    key: str
    raw: torch.Tensor
    edit: torch.Tensor
    sample_rate: int
    edit_map: EditMap
    mel: MelSettings = dataclasses.field(default_factory=MelSettings)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    url: str | None = None
    origin: Origin | None = None

    @property
    def raw_seconds(self) -> float:
        return int(self.raw.shape[0]) / self.sample_rate

    @property
    def edit_seconds(self) -> float:
        return int(self.edit.shape[0]) / self.sample_rate

    def replace(self, **changes: Any) -> AudioSample:
        """A copy with some fields replaced (tensors are shared, not copied)."""
        return dataclasses.replace(self, **changes)

    def with_record(self, stage: str, **params: Any) -> AudioSample:
        """A copy whose ``meta["augmentations"]`` ends with ``{"stage": stage, **params}``."""
        records = [*self.meta.get("augmentations", ()), {"stage": stage, **params}]
        return self.replace(meta={**self.meta, "augmentations": records})

    def __repr__(self) -> str:
        return (f"AudioSample(key={self.key!r}, sample_rate={self.sample_rate}, raw={self.raw_seconds:.3f} s, "
                f"edit={self.edit_seconds:.3f} s, pieces={len(self.edit_map.pieces)})")


def check_audio_sample(sample: AudioSample) -> AudioSample:
    """Return ``sample`` unchanged if well-formed, else :class:`~streams.sample.SampleError` naming its key.

    Checks: ``raw`` and ``edit`` are non-empty 1-D float32 tensors of finite values, ``sample_rate``
    is a positive int equal to ``mel.sample_rate``, ``edit_map`` is an :class:`EditMap` whose
    ``edit_samples`` is the edit's length. Reasons: ``bad_shape``, ``bad_dtype``, ``empty``,
    ``not_finite``, ``bad_sample_rate``, ``length_mismatch``.

    >>> s = AudioSample("a", torch.zeros(4), torch.zeros(3), 22050, EditMap.identity(4))
    >>> check_audio_sample(s)
    Traceback (most recent call last):
    ...
    streams.sample.SampleError: audio sample 'a': edit_map covers 4 edit samples but the edit has 3; \
a stage that changes the edit's length must remap it
    """

    def fail(reason: str, message: str) -> SampleError:
        shard = f" in shard {sample.url}" if sample.url else ""
        return SampleError(f"audio sample {sample.key!r}{shard}: {message}", reason=reason, key=sample.key,
                           url=sample.url)

    for name in ("raw", "edit"):
        signal = getattr(sample, name)
        if not isinstance(signal, torch.Tensor) or signal.ndim != 1:
            shape = tuple(signal.shape) if isinstance(signal, torch.Tensor) else type(signal).__name__
            raise fail("bad_shape", f"{name} must be a 1-D (samples,) mono tensor, got {shape}; mix it to mono")
        if signal.dtype != torch.float32:
            raise fail("bad_dtype", f"{name} has dtype {signal.dtype}; audio samples are float32")
        if signal.shape[0] == 0:
            raise fail("empty", f"{name} holds no samples")
        if not math.isfinite(float(signal.sum())) and not bool(torch.isfinite(signal).all()):
            raise fail("not_finite", f"{name} holds {int((~torch.isfinite(signal)).sum())} NaN or Inf values")
    rate = sample.sample_rate
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
        raise fail("bad_sample_rate", f"sample_rate must be an int >= 1 ({rate!r} given)")
    if not isinstance(sample.mel, MelSettings) or sample.mel.sample_rate != rate:
        mel_rate = getattr(sample.mel, "sample_rate", None)
        raise fail("bad_sample_rate", f"the audio is at {rate} Hz but the mel settings are at {mel_rate!r} Hz; "
                                      "resample the audio to the mel rate")
    if not isinstance(sample.edit_map, EditMap):
        raise fail("bad_shape", f"edit_map must be an EditMap ({type(sample.edit_map).__name__} given)")
    if sample.edit_map.edit_samples != sample.edit.shape[0]:
        raise fail("length_mismatch", f"edit_map covers {float(sample.edit_map.edit_samples):g} edit samples but "
                                      f"the edit has {sample.edit.shape[0]}; a stage that changes the edit's "
                                      "length must remap it")
    return sample
