"""Speed and tempo: play the edit (or the recording) faster or slower by a drawn factor, pointers remapped exactly.

``speed`` resamples (soxr, the ``audio`` extra): ``factor`` times faster, pitch up by the same factor,
like a tape or a sample-rate mismatch. ``tempo`` time-stretches with librosa's phase vocoder
(:func:`librosa.effects.time_stretch`, at the mel settings' ``n_fft`` and hop): ``factor`` times faster,
pitch kept. Either way old sample ``t``
of the stretched signal is now at ``t / factor``: on the edit the map becomes
``edit_map.stretch_edit(1 / factor)``, on the recording ``edit_map.stretch_raw(1 / factor)``, exact in
fractions (:mod:`streams.audio.timeline`); the length is what the resampler gives (``round(n / factor)``
or within a sample of it), set with :meth:`~streams.audio.timeline.EditMap.with_edit_samples`.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from ..audio.sample import AudioSample
from ..checks import check_choice, check_float_range, check_probability
from ..pipe import pipe_method
from .audio_augment import AudioAugmentStage

__all__ = ["TARGETS", "SpeedSettings", "SpeedStage", "TempoSettings", "TempoStage", "apply_stretch", "change_speed",
           "change_tempo", "draw_stretch"]

TARGETS = ("edit", "raw")
"""Which signal a speed or tempo stage changes."""


def change_speed(audio: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """``audio`` ``(n,)`` played ``factor`` times faster by resampling (pitch follows): float32 ``(~n / factor,)``.

    soxr's one-shot resampler at "HQ" (linear phase, its delay removed), from ``sample_rate * factor`` to
    ``sample_rate``.

    >>> change_speed(np.zeros(8000, dtype=np.float32), 8000, 1.25).shape
    (6400,)
    """
    import soxr  # the audio extra

    return soxr.resample(np.asarray(audio, dtype=np.float32), sample_rate * factor, sample_rate,
                         quality="HQ").astype(np.float32, copy=False)


def change_tempo(audio: np.ndarray, sample_rate: int, factor: float, *, n_fft: int = 2048,
                 hop_length: int | None = None) -> np.ndarray:
    """``audio`` ``(n,)`` played ``factor`` times faster, pitch kept (phase vocoder): float32 ``(round(n / factor),)``.

    librosa's :func:`~librosa.effects.time_stretch` with an ``n_fft`` window and ``hop_length`` hop
    (default ``n_fft // 4``); centred frames, output frame ``j`` is input time ``j * factor``, so no shift.
    The stage passes the sample's mel ``n_fft`` and hop, so the vocoder smears time no more than the
    features resolve it. ``sample_rate`` is unused by the vocoder, kept so both stretches take the same
    arguments.

    >>> change_tempo(np.zeros(8000, dtype=np.float32), 8000, 0.8).shape
    (10000,)
    """
    import librosa  # the audio extra

    stretched = librosa.effects.time_stretch(np.asarray(audio, dtype=np.float32), rate=factor, n_fft=n_fft,
                                             hop_length=hop_length or n_fft // 4)
    return stretched.astype(np.float32, copy=False)


@dataclasses.dataclass(frozen=True)
class SpeedSettings:
    """Settings of :class:`SpeedStage` (and, the same fields, :class:`TempoStage`).

    Args:
        probability: chance to fire per sample, in [0, 1].
        factor: ``[min, max]`` of the factor (> 0; 1.1 = 10% faster), drawn uniformly; ``[1.0, 1.0]``
            does nothing but record it.
        target: ``"edit"`` (default: the edit was exported at another speed) or ``"raw"`` (the
            recording was).
    """

    probability: float = 0.5
    factor: tuple[float, float] = (0.9, 1.1)
    target: str = "edit"

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "probability", check_probability(self.probability))
        set_field(self, "factor", check_float_range(self.factor, "factor", minimum=0.0, include_minimum=False))
        set_field(self, "target", check_choice(self.target, "target", TARGETS))


@dataclasses.dataclass(frozen=True)
class TempoSettings(SpeedSettings):
    """Settings of :class:`TempoStage`: the fields of :class:`SpeedSettings`."""


def draw_stretch(settings: SpeedSettings, generator: np.random.Generator) -> dict[str, Any]:
    """``{"factor": f, "target": t}``, ``f`` uniform in ``settings.factor``."""
    low, high = settings.factor
    return {"factor": low + (high - low) * float(generator.random()), "target": settings.target}


def apply_stretch(sample: AudioSample, params: dict[str, Any], kind: str) -> AudioSample:
    """``sample`` with ``params["target"]`` (``"edit"`` or ``"raw"``) sped up by ``params["factor"]``
    (``kind`` ``"speed"`` or ``"tempo"``), and ``edit_map`` remapped exactly (module docstring)."""
    factor, target = params["factor"], params["target"]
    signal = getattr(sample, target).numpy()
    if kind == "speed":
        out = torch.from_numpy(change_speed(signal, sample.sample_rate, factor))
    else:
        out = torch.from_numpy(change_tempo(signal, sample.sample_rate, factor, n_fft=sample.mel.n_fft,
                                            hop_length=sample.mel.hop_length))
    ratio = 1 / Fraction(factor)
    if target == "edit":
        return sample.replace(edit=out, edit_map=sample.edit_map.stretch_edit(ratio).with_edit_samples(len(out)))
    return sample.replace(raw=out, edit_map=sample.edit_map.stretch_raw(ratio))


@pipe_method("speed")
class SpeedStage(AudioAugmentStage):
    """Resample the edit (or the recording) ``factor`` times faster, pitch following; pointers remapped.

    Params recorded: ``{"factor": f, "target": "edit" | "raw"}``. Pointers: edit frame ``i`` maps through
    the factor to the source frame (:mod:`streams.stages.stretch`). Cost: one soxr pass over the signal.
    """

    name = "speed"
    settings_class = SpeedSettings

    def draw(self, sample: AudioSample, generator: np.random.Generator) -> dict[str, Any]:
        return draw_stretch(self.settings, generator)

    def apply(self, sample: AudioSample, params: dict[str, Any]) -> AudioSample:
        return apply_stretch(sample, params, "speed")


@pipe_method("tempo")
class TempoStage(AudioAugmentStage):
    """Time-stretch the edit (or the recording) ``factor`` times faster, pitch kept; pointers remapped.

    Params recorded: ``{"factor": f, "target": "edit" | "raw"}``. Cost: an STFT, a phase vocoder and an
    inverse STFT (librosa), several times the cost of ``speed``.
    """

    name = "tempo"
    settings_class = TempoSettings

    def draw(self, sample: AudioSample, generator: np.random.Generator) -> dict[str, Any]:
        return draw_stretch(self.settings, generator)

    def apply(self, sample: AudioSample, params: dict[str, Any]) -> AudioSample:
        return apply_stretch(sample, params, "tempo")
