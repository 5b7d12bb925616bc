"""Log-mels with ``torch.stft`` and librosa's mel filterbank: the numbers of :func:`streams.audio.mel.log_mel`, faster.

The same transform step by step: a periodic Hann window (librosa's ``get_window("hann", fftbins=True)``),
``center=True`` framing with zero padding of ``n_fft // 2`` each side, power 2, librosa's Slaney mel
filterbank (:func:`librosa.filters.mel`, ``htk=False``, ``norm="slaney"``; built once per settings and
kept), then ``10 * log10(max(power, amin))`` relative to the reference (``power_to_db`` without
``top_db``). It differs from librosa's only by float32 rounding in a different FFT (pocketfft inside
torch vs numpy's): ``tests/test_audio_shards.py`` holds it within :data:`TOLERANCE_DB` of librosa on
every bin above -80 dB, and within 10x that everywhere. The benchmark (``bench --parts audio``) measures
it against librosa.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .mel import DB_FLOOR_AMIN, DB_REFERENCE, MelSettings, mel_frames

__all__ = ["TOLERANCE_DB", "mel_filterbank", "torch_log_mel"]

TOLERANCE_DB = 0.01
"""Largest difference from librosa's log-mel the tests allow on bins above -80 dB (dB)."""


@functools.lru_cache(maxsize=8)
def mel_filterbank(settings: MelSettings) -> torch.Tensor:
    """librosa's mel filterbank for ``settings``: float32 ``(n_mels, 1 + n_fft // 2)``, read-only, cached."""
    import librosa  # the audio extra

    basis = librosa.filters.mel(sr=settings.sample_rate, n_fft=settings.n_fft, n_mels=settings.n_mels,
                                fmin=settings.f_min, fmax=settings.f_max, htk=False, norm="slaney")
    return torch.from_numpy(np.ascontiguousarray(basis, dtype=np.float32))


@functools.lru_cache(maxsize=8)
def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, dtype=torch.float32)


def torch_log_mel(audio: torch.Tensor | np.ndarray, settings: MelSettings) -> torch.Tensor:
    """Log-mel of mono ``audio`` ``(samples,)`` at ``settings.sample_rate``: float32 ``(n_mels, frames)`` in dB,
    ``frames = 1 + samples // hop_length``.

    >>> torch_log_mel(torch.zeros(2560), MelSettings(n_mels=40)).shape
    torch.Size([40, 11])
    """
    signal = torch.as_tensor(audio, dtype=torch.float32)
    if signal.ndim != 1 or signal.shape[0] == 0:
        raise ValueError(f"torch_log_mel needs a non-empty mono (samples,) signal (shape {tuple(signal.shape)} given)")
    n_fft, hop = settings.n_fft, settings.hop_length
    if signal.shape[0] <= n_fft // 2:  # torch refuses a pad longer than the signal; librosa pads with zeros too
        signal = torch.nn.functional.pad(signal, (0, n_fft // 2 + 1 - signal.shape[0]))
    spectrum = torch.stft(signal, n_fft, hop_length=hop, window=_window(n_fft), center=True, pad_mode="constant",
                          return_complex=True)
    frames = mel_frames(int(audio.shape[0]), hop)
    magnitude = np.abs(spectrum[:, :frames].numpy())  # numpy's complex abs is several times faster than torch's
    mel = mel_filterbank(settings) @ torch.from_numpy(np.square(magnitude, out=magnitude))
    offset = 10.0 * math.log10(max(DB_FLOOR_AMIN, DB_REFERENCE))
    return mel.clamp_min_(DB_FLOOR_AMIN).log10_().mul_(10.0).sub_(offset)
