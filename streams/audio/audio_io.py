"""Audio files in and out: decode with libsndfile (``soundfile``), mix to mono, resample with ``soxr``.

Needs the ``audio`` extra (``pip install 'pointer-streams[audio]'``). Every problem with a file is a
:class:`~streams.sample.SampleError` naming the file, with a ``reason`` for skip counts:
``unreadable_audio``, ``empty_audio``, ``nan_audio``, ``bad_sample_rate``.
"""

from __future__ import annotations

import dataclasses
import wave
from typing import BinaryIO

import numpy as np
import soundfile
import soxr

from ..sample import SampleError

__all__ = ["AUDIO_SUFFIXES", "AudioInfo", "audio_info", "read_audio", "resample", "write_audio"]

AUDIO_SUFFIXES = tuple(f".{name.lower()}" for name in soundfile.available_formats()) + (".oga", ".opus")
"""File name endings taken for audio: every container libsndfile reads (``.wav``, ``.flac``, ``.ogg``, ``.mp3``...)."""

RESAMPLE_QUALITY = "HQ"
"""soxr's quality for every resampling here (``"HQ"``: 20-bit precision, about -120 dB aliasing)."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What the file's header says: ``sample_rate`` (Hz), ``channels``, ``frames`` (samples per channel)."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def _wav_header_rate(path: str) -> int | None:
    """The sample rate a PCM WAV header states (Python's ``wave``), or ``None`` when it is no such file."""
    try:
        with wave.open(path, "rb") as f:
            return f.getframerate()
    except (wave.Error, EOFError, OSError):
        return None


def audio_info(path: str) -> AudioInfo:
    """Header facts of ``path`` without decoding it; ``SampleError`` naming the file if unusable."""
    try:
        info = soundfile.info(path)
    except Exception as err:  # libsndfile's errors come as RuntimeError/LibsndfileError/OSError
        if _wav_header_rate(path) == 0:  # libsndfile refuses such a header without saying why
            raise SampleError(f"{path}: its WAV header gives a sample rate of 0 Hz; a recording needs a positive "
                              "sample rate: re-export it", reason="bad_sample_rate") from err
        raise SampleError(f"{path}: libsndfile cannot read it ({type(err).__name__}: {err}); is it an audio "
                          "file in a format libsndfile knows (wav, flac, ogg, mp3...)?",
                          reason="unreadable_audio") from err
    if info.samplerate <= 0:
        raise SampleError(f"{path}: sample rate {info.samplerate} Hz; a recording needs a positive sample rate",
                          reason="bad_sample_rate")
    if info.frames <= 0:
        raise SampleError(f"{path}: no audio in it (0 samples)", reason="empty_audio")
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))


def read_audio(path: str) -> tuple[np.ndarray, int]:
    """Decode ``path`` to mono float32 ``(samples,)`` (the mean of its channels) and its sample rate (Hz).

    Raises ``SampleError`` naming the file when it cannot be decoded, holds no samples, has a sample
    rate of 0, or has non-finite samples (a float WAV with NaN or Inf).
    """
    audio_info(path)
    try:
        audio, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as err:
        raise SampleError(f"{path}: libsndfile cannot decode it ({type(err).__name__}: {err})",
                          reason="unreadable_audio") from err
    if audio.shape[0] == 0:
        raise SampleError(f"{path}: no audio in it (0 samples)", reason="empty_audio")
    mono = audio.mean(axis=1, dtype=np.float32) if audio.shape[1] > 1 else audio[:, 0]
    bad = ~np.isfinite(mono)
    if bad.any():
        first = int(np.argmax(bad))
        raise SampleError(f"{path}: {int(bad.sum())} non-finite sample(s) (NaN or Inf), the first at sample {first} "
                          f"({first / sample_rate:.3f} s); fix or re-export the file", reason="nan_audio")
    return np.ascontiguousarray(mono), int(sample_rate)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``audio`` ``(samples,)`` at ``from_rate`` Hz resampled to ``to_rate`` Hz with soxr (float32 out).

    >>> resample(np.zeros(44100, dtype=np.float32), 44100, 22050).shape
    (22050,)
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive (got from_rate={from_rate}, to_rate={to_rate})")
    if from_rate == to_rate:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, from_rate, to_rate, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)


def write_audio(path: str | BinaryIO, audio: np.ndarray, sample_rate: int, *, format: str | None = None,
                subtype: str | None = None, compression_level: float | None = None, block_samples: int = 1 << 16
                ) -> None:
    """Write mono ``audio`` ``(samples,)`` to ``path`` (a file name or a binary file) in blocks of ``block_samples``.

    Block writes because libsndfile's Vorbis encoder has crashed on one very large write. ``format``,
    ``subtype`` and ``compression_level`` are soundfile's (``"OGG"``/``"VORBIS"``, ``"WAV"``/``"PCM_16"``; a
    level in ``[0, 1]``); format and subtype by default from the name.
    """
    with soundfile.SoundFile(path, "w", samplerate=sample_rate, channels=1, format=format, subtype=subtype,
                             compression_level=compression_level) as f:
        for start in range(0, len(audio), block_samples):
            f.write(audio[start: start + block_samples])
