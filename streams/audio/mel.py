"""Log-mel spectrograms of audio: one set of settings for raw and edit, computed with librosa.

:class:`MelSettings` needs only numpy; :func:`log_mel` needs the ``audio`` extra (librosa).

The transform is librosa's: a Hann-window STFT with ``center=True`` (frame ``i`` centred at sample
``i * hop_length``, the signal zero-padded by ``n_fft // 2`` each side), power 2, the Slaney-style mel
filterbank (``htk=False``, ``norm="slaney"``), then ``power_to_db`` with reference 1.0 (an absolute
scale: a full-scale 1 kHz sine peaks at about +33 dB with the defaults, so gain differences between
raw and edit stay visible) and a floor of ``amin = 1e-10`` (-100 dB), no ``top_db`` clipping. A signal
of ``n`` samples gives ``1 + n // hop_length`` frames.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["DB_FLOOR_AMIN", "DB_REFERENCE", "MelSettings", "log_mel", "mel_frames"]

DB_REFERENCE = 1.0
"""``power_to_db``'s ``ref``: decibels relative to a mel power of 1.0."""
DB_FLOOR_AMIN = 1e-10
"""``power_to_db``'s ``amin``: powers below it count as it, so the floor is -100 dB."""


@dataclasses.dataclass(frozen=True)
class MelSettings:
    """Mel settings shared by raw and edit (the ``pack-audio`` flags of the same names).

    ``sample_rate`` in Hz (audio is resampled to it), ``n_fft`` and ``hop_length`` in samples,
    ``f_min``/``f_max`` in Hz (``f_max=None``: ``sample_rate / 2``).
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1 ({value!r} given)")
        nyquist = self.sample_rate / 2
        f_max = nyquist if self.f_max is None else self.f_max
        if not (math.isfinite(self.f_min) and 0 <= self.f_min < f_max <= nyquist):
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2 = {nyquist:g} Hz "
                             f"(f_min={self.f_min!r}, f_max={self.f_max!r} given)")

    def as_meta(self) -> dict:
        """Every setting of the transform, for a sample's ``meta``."""
        return {**dataclasses.asdict(self), "window": "hann", "center": True, "pad_mode": "constant", "power": 2.0,
                "mel_scale": "slaney", "mel_norm": "slaney", "db_reference": DB_REFERENCE, "db_amin": DB_FLOOR_AMIN,
                "db_floor": 10 * math.log10(DB_FLOOR_AMIN / DB_REFERENCE)}


def mel_frames(samples: int, hop_length: int) -> int:
    """Frames of a ``samples``-long signal with ``center=True`` framing: ``1 + samples // hop_length``."""
    return 1 + samples // hop_length


def log_mel(audio: np.ndarray, settings: MelSettings) -> np.ndarray:
    """Log-mel of mono ``audio`` ``(samples,)`` at ``settings.sample_rate``: float32 ``(n_mels, frames)`` in dB.

    >>> log_mel(np.zeros(2560, dtype=np.float32), MelSettings(n_mels=40)).shape
    (40, 11)
    """
    import librosa  # the audio extra; imported here so MelSettings needs only numpy

    power = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32), sr=settings.sample_rate, n_fft=settings.n_fft,
        hop_length=settings.hop_length, window="hann", center=True, pad_mode="constant", power=2.0,
        n_mels=settings.n_mels, fmin=settings.f_min, fmax=settings.f_max, htk=False, norm="slaney")
    return librosa.power_to_db(power, ref=DB_REFERENCE, amin=DB_FLOOR_AMIN, top_db=None).astype(np.float32)
