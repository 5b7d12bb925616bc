"""Synthetic music to point into: the one note generator of the demo audio, the tests and the benchmarks.

A recording is a run of notes of 0.3-0.6 s, each a bright harmonic tone (harmonics up to 0.4 of the
sample rate, sawtooth-like; at least the fundamental) with a 40 ms attack, a decay and a 100 ms
release that rings on under the next note, plus a little noise: enough structure for a frame to
have one right place in the raw. The 40 ms attack matters: a frame shifted by part of a hop against
an onset sharper than the mel window changes more than the pack tests' > 0.99 similarity allows;
bowed or blown onsets stay within it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_music"]

_TABLE = 2048  # samples in one period of a note's wavetable


def synthetic_music(seconds: float, seed: int, sample_rate: int = 22050) -> np.ndarray:
    """A mono float32 recording of ``int(seconds * sample_rate)`` samples; same seed, same recording.

    Each pitch's tone is one period in a wavetable, read at the note's frequency, so three minutes
    take a fraction of a second.

    >>> audio = synthetic_music(2.0, seed=0)
    >>> audio.shape, audio.dtype, bool(abs(audio).max() < 1)
    ((44100,), dtype('float32'), True)
    """
    if not seconds > 0 or not sample_rate > 0:
        raise ValueError(f"seconds and sample_rate must be positive ({seconds!r}, {sample_rate!r} given)")
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sample_rate), dtype=np.float64)
    phase = np.arange(_TABLE) / _TABLE
    tables: dict[int, np.ndarray] = {}
    position = 0
    while position < len(out):
        length = int(rng.uniform(0.3, 0.6) * sample_rate)
        sounding = length + int(0.2 * sample_rate)  # rings on under the next note, then fades out in 100 ms
        t = np.arange(min(sounding, len(out) - position)) / sample_rate
        pitch = int(rng.integers(0, 36))
        f0 = 110 * 2 ** (pitch / 12)
        if pitch not in tables:
            harmonics = range(1, max(2, int(sample_rate / 2.5 / f0)))
            tables[pitch] = sum(np.sin(2 * np.pi * h * phase) / h for h in harmonics)
        note = np.interp((f0 * t) % 1.0, phase, tables[pitch], period=1.0)
        envelope = np.exp(-3 * t) * np.minimum(1, t * 25) * np.clip((sounding / sample_rate - t) * 10, 0, 1)
        out[position: position + len(t)] += 0.2 * note * envelope
        position += length
    return (out + 0.001 * rng.standard_normal(len(out))).astype(np.float32)
