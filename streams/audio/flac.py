"""FLAC bytes in and out, for audio shards: mono float32 audio <-> 24-bit FLAC, losslessly up to 24 bits.

FLAC holds integers, so a float signal is stored as 24-bit PCM (a step of ``2**-23``, about -138 dB
below full scale: far under the mels' -100 dB floor). A signal that peaks at or above full scale
(a resampler's overshoot, a loud export) would clip, so :func:`encode_flac` scales it down by the
``decode_gain`` it returns (1.0 for every other signal) and :func:`decode_flac` multiplies it back:
the decoded signal is the one given, to within the 24-bit step times that gain.

Needs the ``audio`` extra (soundfile); imported when called.
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["FLAC_SUBTYPE", "FULL_SCALE", "decode_flac", "encode_flac", "flac_frames"]

FLAC_SUBTYPE = "PCM_24"
"""libsndfile's subtype for the FLAC members: 24-bit integers."""
FULL_SCALE = 1.0 - 2.0 ** -22
"""The largest magnitude stored unscaled (a little under 1.0, so 24-bit rounding never clips)."""


def encode_flac(audio: np.ndarray, sample_rate: int) -> tuple[bytes, float]:
    """``(FLAC bytes, decode_gain)`` of mono ``audio`` ``(n,)`` at ``sample_rate`` Hz.

    ``decode_gain`` is 1.0 unless the signal peaks above :data:`FULL_SCALE`; then the stored signal is
    ``audio / decode_gain`` (peak at full scale). Non-finite samples raise ``ValueError``.

    >>> data, gain = encode_flac(np.array([0.0, 0.5, -2.0], dtype=np.float32), 8000)
    >>> round(gain, 6), np.round(decode_flac(data, gain)[0], 6).tolist()
    (2.0, [0.0, 0.5, -2.0])
    """
    import soundfile  # the audio extra

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"encode_flac needs a non-empty mono (samples,) signal (shape {audio.shape} given)")
    peak = float(np.max(np.abs(audio)))
    if not np.isfinite(peak):
        raise ValueError("encode_flac: the signal holds NaN or Inf samples")
    gain = peak / FULL_SCALE if peak > FULL_SCALE else 1.0
    buffer = io.BytesIO()
    soundfile.write(buffer, audio / np.float32(gain) if gain != 1.0 else audio, sample_rate, format="FLAC",
                    subtype=FLAC_SUBTYPE)
    return buffer.getvalue(), gain


def decode_flac(data: bytes | bytearray, decode_gain: float = 1.0) -> tuple[np.ndarray, int]:
    """``(audio, sample_rate)``: float32 ``(n,)`` of the FLAC bytes ``data`` (mixed to mono if not), times
    ``decode_gain``. libsndfile's errors propagate (the caller names the member)."""
    import soundfile  # the audio extra

    audio, rate = soundfile.read(io.BytesIO(bytes(data)), dtype="float32", always_2d=True)
    mono = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1, dtype=np.float32)
    if decode_gain != 1.0:
        mono = mono * np.float32(decode_gain)
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


def flac_frames(data: bytes | bytearray) -> tuple[int, int]:
    """``(samples, sample_rate)`` from the header of FLAC bytes, without decoding the audio."""
    import soundfile  # the audio extra

    info = soundfile.info(io.BytesIO(bytes(data)))
    return int(info.frames), int(info.samplerate)
